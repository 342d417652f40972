from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from features import columns as col
from tests import model_contract
from tests.model_contract import two_group_interactions, two_group_items
from training.artifact import ModelArtifact, load_artifact, write_artifact
from training.dataset import TrainingData, build_training_data
from training.models import MODEL_CLASSES
from training.models.item_knn import ItemKNNRecommender
from training.models.popular import PopularityRecommender
from training.recommend import FALLBACK_MODEL, ArtifactRecommender, MemberContext

two_group_data = model_contract.two_group_data


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    items = two_group_items().with_columns(
        (pl.col(col.ITEM_ID) != "i28").alias(col.AVAILABLE)  # one discontinued item
    )
    data: TrainingData = build_training_data(two_group_interactions(), items=items)
    models = {
        "item_knn": ItemKNNRecommender(neighbors=10).fit(data),
        "popular": PopularityRecommender().fit(data),
    }
    purchases = (data.matrix > 0).astype(np.float32).tocsr()
    out = tmp_path_factory.mktemp("artifact") / "b"
    write_artifact(
        out,
        models=models,
        chosen="item_knn",
        member_ids=data.member_ids,
        item_ids=data.item_ids,
        histories=data.matrix,
        purchases=purchases,
        popularity=models["popular"].global_scores,
        data_fingerprint="test",
        catalog=items,
    )
    return load_artifact(out, model_classes=MODEL_CLASSES)


def test_known_member_gets_n_distinct_unpurchased_available_items(artifact: ModelArtifact) -> None:
    [answer] = ArtifactRecommender(artifact).recommend(["m0"], 8)
    assert len(answer.item_ids) == len(set(answer.item_ids)) == 8
    purchased = set(
        artifact.item_ids.to_external(
            artifact.purchases[artifact.member_ids.index_of("m0")].indices
        )
    )
    assert not purchased & set(answer.item_ids)
    assert "i28" not in answer.item_ids
    assert answer.model == "item_knn"
    assert answer.scores == sorted(answer.scores, reverse=True)


def test_unknown_member_gets_flagged_popularity(artifact: ModelArtifact) -> None:
    [answer] = ArtifactRecommender(artifact).recommend(["stranger"], 5)
    assert answer.fallback and answer.model == FALLBACK_MODEL
    assert len(answer.item_ids) == 5


def test_category_filter_is_applied_before_the_cut(artifact: ModelArtifact) -> None:
    [answer] = ArtifactRecommender(artifact).recommend(["m1"], 5, category="even")
    assert all(int(item[1:]) % 2 == 0 for item in answer.item_ids)
    assert len(answer.item_ids) == 5


def test_items_without_model_evidence_come_by_popularity(artifact: ModelArtifact) -> None:
    # m0 is in the even group: item-kNN has no evidence for any odd item.
    [answer] = ArtifactRecommender(artifact).recommend(["m0"], 14, category="odd")
    assert len(answer.item_ids) == len(set(answer.item_ids)) == 14
    popularity = artifact.popularity[artifact.item_ids.to_internal(answer.item_ids)]
    assert (np.diff(popularity) <= 0).all()


def test_unknown_member_list_is_filled_to_n_within_a_category(artifact: ModelArtifact) -> None:
    [answer] = ArtifactRecommender(artifact).recommend(["stranger"], 14, category="odd")
    assert len(answer.item_ids) == len(set(answer.item_ids)) == 14
    assert answer.fallback
    assert answer.scores == sorted(answer.scores, reverse=True)


def test_catalog_smaller_than_n_gives_what_there_is(artifact: ModelArtifact) -> None:
    [answer] = ArtifactRecommender(artifact).recommend(["m3"], 100, exclude_purchased=False)
    assert len(answer.item_ids) == len(artifact.item_ids) - 1  # all but the unavailable item


def test_asking_for_a_model_by_name(artifact: ModelArtifact) -> None:
    [answer] = ArtifactRecommender(artifact).recommend(["m2"], 3, model="popular")
    assert answer.model == "popular" and not answer.fallback


def test_unknown_category_gives_an_empty_list(artifact: ModelArtifact, tmp_path: Path) -> None:
    [answer] = ArtifactRecommender(artifact).recommend(["m2"], 3, category="garden")
    assert answer.item_ids == []


def assert_same_answers(
    read: ArtifactRecommender, scored: ArtifactRecommender, members: list[str], **options: Any
) -> None:
    for ours, theirs in zip(
        read.recommend(members, **options), scored.recommend(members, **options), strict=True
    ):
        assert (ours.item_ids, ours.model, ours.fallback) == (
            theirs.item_ids, theirs.model, theirs.fallback
        )  # fmt: skip
        np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {"n": 1},
        {"n": 6},
        {"n": 25},  # the catalog runs out for members who bought much
        {"n": 2, "max_per_category": 1},
        {"n": 30},  # deeper than the lists: scored
        {"n": 4, "category": "odd"},  # a filter the lists do not hold: scored
        {"n": 4, "exclude_purchased": False},
        {"n": 4, "model": "popular"},
    ],
)
def test_precomputed_lists_answer_exactly_what_scoring_answers(
    artifact: ModelArtifact, options: dict[str, Any]
) -> None:
    lists = ArtifactRecommender(artifact).member_lists(25, batch=5)
    assert lists.model == "item_knn" and lists.depth == 25
    assert (lists.items < 0).any()  # some rows hold all a member may still be shown
    members = [*artifact.member_ids.external_ids.tolist(), "stranger"]
    read = ArtifactRecommender(replace(artifact, lists=lists))
    assert_same_answers(read, ArtifactRecommender(artifact), members, **options)


@pytest.mark.parametrize("with_lists", [True, False])
@pytest.mark.parametrize(
    "options",
    [{}, {"category": "odd"}, {"exclude_purchased": False}, {"model": "popular"}],
)
def test_ranked_arrays_hold_what_recommend_lists(
    artifact: ModelArtifact, with_lists: bool, options: dict[str, Any]
) -> None:
    if with_lists:
        artifact = replace(artifact, lists=ArtifactRecommender(artifact).member_lists(25))
    recommender = ArtifactRecommender(artifact)
    members = [*artifact.member_ids.external_ids.tolist(), "stranger", "m3"]
    clicked = MemberContext(items=[2, 3], weights=[2.0, 2.0])
    contexts = [None] * (len(members) - 1) + [clicked]  # m3 again, with fresh clicks
    ranked = recommender.ranked(members, 6, contexts=contexts, **options)
    listed = recommender.recommend(members, 6, contexts=contexts, **options)
    for row, answer in enumerate(listed):
        found = ranked.items[row] >= 0
        assert ranked.items[row][found].tolist() == answer.item_indices
        np.testing.assert_allclose(ranked.scores[row][found], answer.scores, rtol=1e-6)
        assert (ranked.models[row], bool(ranked.fallback[row])) == (answer.model, answer.fallback)


def test_precomputed_lists_are_what_answers_a_known_member(artifact: ModelArtifact) -> None:
    lists = ArtifactRecommender(artifact).member_lists(5)
    # Every member gets the next member's row: an answer that only the lists can give.
    shifted = replace(lists, items=np.roll(lists.items, -1, axis=0))
    [answer] = ArtifactRecommender(replace(artifact, lists=shifted)).recommend(["m0"], 5)
    assert answer.item_ids == artifact.item_ids.to_external(lists.items[1]).tolist()


def test_fresh_behaviour_is_scored_not_read_from_the_lists(artifact: ModelArtifact) -> None:
    lists = ArtifactRecommender(artifact).member_lists(5)
    recommender = ArtifactRecommender(replace(artifact, lists=lists))
    [before] = recommender.recommend(["m0"], 5)
    top = artifact.item_ids.index_of(before.item_ids[0])
    context = MemberContext(items=[top], weights=[4.0], purchased=[top])
    [after] = recommender.recommend(["m0"], 5, contexts=[context])
    assert before.item_ids[0] not in after.item_ids
    assert len(after.item_ids) == 5


def test_lists_through_a_faiss_index_match_exact_scoring(tiny_trained: tuple[Path, Path]) -> None:
    """Lists computed through ALS's FAISS index hold what scoring the whole catalog ranks
    there (the reference has no index, so it cannot take the FAISS path too). Exact scores
    carry the popularity tie-breaker (at most 1e-4) and the index's do not, so two items
    closer than that may trade places: every listed item must score, exactly, what the exact
    list holds at its rank, within the tie-breaker."""
    served = load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES)
    assert served.lists is not None and served.lists.model == served.chosen  # written by train
    assert "als" in served.indexes
    plain = replace(served, lists=None)
    lists = ArtifactRecommender(plain).member_lists(20, model="als")
    exact = ArtifactRecommender(replace(plain, indexes={}))
    read = ArtifactRecommender(replace(plain, lists=lists))
    members = plain.member_ids.external_ids[:300].tolist()
    answers = zip(
        read.recommend(members, 10, model="als"),
        exact.recommend(members, 10, model="als"),
        exact.recommend(members, len(plain.item_ids), model="als"),  # every item's exact score
        strict=True,
    )
    same = 0
    for ours, theirs, ranking in answers:
        assert (ours.model, ours.fallback) == (theirs.model, theirs.fallback)
        exact_score = dict(zip(ranking.item_ids, ranking.scores, strict=True))
        np.testing.assert_allclose(
            [exact_score[item] for item in ours.item_ids], theirs.scores, atol=2e-4
        )
        same += ours.item_ids == theirs.item_ids
    assert same >= 0.9 * len(members)  # near-ties are rare
