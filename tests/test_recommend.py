from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features import columns as col
from tests import model_contract
from tests.model_contract import two_group_interactions, two_group_items
from training.bundle import Bundle, load_bundle, write_bundle
from training.dataset import TrainingData, build_training_data
from training.models import MODEL_CLASSES
from training.models.item_knn import ItemKNNRecommender
from training.models.popular import PopularityRecommender
from training.recommend import FALLBACK_MODEL, BundleRecommender

two_group_data = model_contract.two_group_data


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    items = two_group_items().with_columns(
        (pl.col(col.ITEM_ID) != "i28").alias(col.AVAILABLE)  # one discontinued item
    )
    data: TrainingData = build_training_data(two_group_interactions(), items=items)
    models = {
        "item_knn": ItemKNNRecommender(neighbors=10).fit(data),
        "popular": PopularityRecommender().fit(data),
    }
    purchases = (data.matrix > 0).astype(np.float32).tocsr()
    out = tmp_path_factory.mktemp("bundle") / "b"
    write_bundle(
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
    return load_bundle(out, model_classes=MODEL_CLASSES)


def test_known_member_gets_n_distinct_unpurchased_available_items(bundle: Bundle) -> None:
    [answer] = BundleRecommender(bundle).recommend(["m0"], 8)
    assert len(answer.item_ids) == len(set(answer.item_ids)) == 8
    purchased = set(
        bundle.item_ids.to_external(bundle.purchases[bundle.member_ids.index_of("m0")].indices)
    )
    assert not purchased & set(answer.item_ids)
    assert "i28" not in answer.item_ids
    assert answer.model == "item_knn"
    assert answer.scores == sorted(answer.scores, reverse=True)


def test_unknown_member_gets_flagged_popularity(bundle: Bundle) -> None:
    [answer] = BundleRecommender(bundle).recommend(["stranger"], 5)
    assert answer.fallback and answer.model == FALLBACK_MODEL
    assert len(answer.item_ids) == 5


def test_category_filter_is_applied_before_the_cut(bundle: Bundle) -> None:
    [answer] = BundleRecommender(bundle).recommend(["m1"], 5, category="even")
    assert all(int(item[1:]) % 2 == 0 for item in answer.item_ids)
    assert len(answer.item_ids) == 5


def test_items_without_model_evidence_come_by_popularity(bundle: Bundle) -> None:
    # m0 is in the even group: item-kNN has no evidence for any odd item.
    [answer] = BundleRecommender(bundle).recommend(["m0"], 14, category="odd")
    assert len(answer.item_ids) == len(set(answer.item_ids)) == 14
    popularity = bundle.popularity[bundle.item_ids.to_internal(answer.item_ids)]
    assert (np.diff(popularity) <= 0).all()


def test_unknown_member_list_is_filled_to_n_within_a_category(bundle: Bundle) -> None:
    [answer] = BundleRecommender(bundle).recommend(["stranger"], 14, category="odd")
    assert len(answer.item_ids) == len(set(answer.item_ids)) == 14
    assert answer.fallback
    assert answer.scores == sorted(answer.scores, reverse=True)


def test_catalog_smaller_than_n_gives_what_there_is(bundle: Bundle) -> None:
    [answer] = BundleRecommender(bundle).recommend(["m3"], 100, exclude_purchased=False)
    assert len(answer.item_ids) == len(bundle.item_ids) - 1  # all but the unavailable item


def test_asking_for_a_model_by_name(bundle: Bundle) -> None:
    [answer] = BundleRecommender(bundle).recommend(["m2"], 3, model="popular")
    assert answer.model == "popular" and not answer.fallback


def test_unknown_category_gives_an_empty_list(bundle: Bundle, tmp_path: Path) -> None:
    [answer] = BundleRecommender(bundle).recommend(["m2"], 3, category="garden")
    assert answer.item_ids == []
