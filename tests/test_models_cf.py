"""Popularity, item-kNN, EASE and ALS: the shared contract plus each model's own promises."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.nearest_neighbours import bm25_weight

from features import columns as col
from tests import model_contract
from tests.model_contract import RecommenderContract
from training.dataset import TrainingData, build_training_data
from training.models.als import ALSRecommender
from training.models.base import ModelFitError, Recommender
from training.models.ease import EASERecommender
from training.models.item_knn import ItemKNNRecommender
from training.models.popular import PopularityRecommender

#: The contract's data set, shared with this module's own tests (pytest finds it by name).
two_group_data = model_contract.two_group_data

# -- the contract, once per model ---------------------------------------------------------------


class TestPopularityContract(RecommenderContract):
    personalised = False

    def make_model(self) -> Recommender:
        return PopularityRecommender()


class TestItemKNNCosineContract(RecommenderContract):
    def make_model(self) -> Recommender:
        return ItemKNNRecommender(similarity="cosine", neighbors=10)


class TestItemKNNBM25Contract(RecommenderContract):
    def make_model(self) -> Recommender:
        return ItemKNNRecommender(similarity="bm25", neighbors=10)


class TestEASEContract(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASERecommender(l2=10.0)


class TestALSContract(RecommenderContract):
    def make_model(self) -> Recommender:
        return ALSRecommender(factors=8, iterations=15, regularization=0.01)


# -- popularity ---------------------------------------------------------------------------------

START = datetime(2024, 3, 1)


def _purchases(*events: tuple[str, str, int]) -> pl.DataFrame:
    """Interactions from (member, item, day) purchases."""
    return pl.DataFrame(
        {
            col.MEMBER_ID: [member for member, _, _ in events],
            col.ITEM_ID: [item for _, item, _ in events],
            col.EVENT: ["purchase"] * len(events),
            col.TIMESTAMP: [START + timedelta(days=day) for _, _, day in events],
        }
    )


@pytest.fixture(scope="module")
def shop() -> TrainingData:
    """Gold members bought "old" a month ago; silver members bought "new" lately; one member
    bought "bulk" five times; m7 has no segment. The reference time is day 30."""
    interactions = _purchases(
        ("m1", "old", 0),
        ("m2", "old", 0),
        ("m3", "old", 1),
        ("m1", "mid", 25),
        ("m4", "new", 28),
        ("m4", "new", 29),
        ("m5", "new", 30),
        *[("m6", "bulk", day) for day in range(2, 7)],
        ("m7", "mid", 3),
    )
    segments = pl.DataFrame(
        {
            col.MEMBER_ID: ["m1", "m2", "m3", "m4", "m5", "m6", "ghost"],
            "segment": ["gold", "gold", "gold", "silver", "silver", "silver", "gold"],
        }
    )
    return build_training_data(interactions, member_segment_of=segments)


def _scores_by_item(
    model: PopularityRecommender, data: TrainingData, member: str
) -> dict[str, float]:
    """The member's popularity scores keyed by item id (a stranger scores as index -1)."""
    member_index = data.member_ids.index_of(member) if member in data.member_ids else -1
    no_history = sp.csr_matrix((1, data.n_items), dtype=np.float32)
    row = model.score(np.array([member_index]), no_history)[0]
    return dict(zip(data.item_ids.external_ids.tolist(), row.tolist(), strict=True))


def test_popularity_counts_distinct_members_or_summed_weights(shop: TrainingData) -> None:
    by_members = PopularityRecommender().fit(shop)
    by_events = PopularityRecommender(weighting="events").fit(shop)
    assert by_members.global_scores.dtype == np.float32
    assert _scores_by_item(by_members, shop, "m1") == {"old": 3, "mid": 2, "new": 2, "bulk": 1}
    purchase = 8.0  # the default purchase weight
    assert _scores_by_item(by_events, shop, "m1") == {
        "old": 3 * purchase,
        "mid": 2 * purchase,
        "new": 3 * purchase,
        "bulk": 5 * purchase,
    }


def test_popularity_window_counts_only_recent_events(shop: TrainingData) -> None:
    recent = PopularityRecommender(window_days=10).fit(shop)
    assert _scores_by_item(recent, shop, "m1") == {"old": 0, "mid": 1, "new": 2, "bulk": 0}
    ids, _ = recent.recommend(np.array([-1]), shop.matrix[:1], n=2)
    assert shop.item_ids.to_external(ids[0]).tolist() == ["new", "mid"]


def test_popularity_by_segment_falls_back_to_global(shop: TrainingData, tmp_path: Path) -> None:
    model = PopularityRecommender(by_segment=True).fit(shop)
    assert shop.segment_names == ("gold", "silver")
    assert model.segment_scores.shape == (2, shop.n_items)
    global_row = _scores_by_item(model, shop, "m7")  # interacted, but in no segment
    assert global_row == {"old": 3, "mid": 2, "new": 2, "bulk": 1}
    assert _scores_by_item(model, shop, "stranger") == global_row
    assert _scores_by_item(model, shop, "m2") == {"old": 3, "mid": 1, "new": 0, "bulk": 0}
    assert _scores_by_item(model, shop, "m5") == {"old": 0, "mid": 0, "new": 2, "bulk": 1}

    model.save(tmp_path / "popular")
    loaded = PopularityRecommender.load(tmp_path / "popular")
    members = np.array([-1, *range(shop.n_members)])
    histories = sp.csr_matrix((len(members), shop.n_items), dtype=np.float32)
    np.testing.assert_array_equal(loaded.score(members, histories), model.score(members, histories))


def test_popularity_ignores_segments_unless_asked(shop: TrainingData) -> None:
    model = PopularityRecommender().fit(shop)
    assert model.segment_scores.shape == (0, shop.n_items)
    assert _scores_by_item(model, shop, "m5") == _scores_by_item(model, shop, "m2")


# -- EASE ---------------------------------------------------------------------------------------


def test_ease_weights_are_the_closed_form(two_group_data: TrainingData) -> None:
    model = EASERecommender(l2=10.0).fit(two_group_data)
    binary = (two_group_data.matrix.toarray() > 0).astype(np.float64)
    precision = np.linalg.inv(binary.T @ binary + 10.0 * np.eye(two_group_data.n_items))
    expected = np.eye(two_group_data.n_items) - precision / np.diag(precision)
    np.testing.assert_allclose(model.weights, expected, atol=1e-6)


# -- ALS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def als(two_group_data: TrainingData) -> ALSRecommender:
    return ALSRecommender(factors=8, iterations=15, regularization=0.01).fit(two_group_data)


def test_als_folds_in_a_stranger_like_the_member_with_the_same_history(
    als: ALSRecommender,
    two_group_data: TrainingData,
) -> None:
    overlaps = []
    for member in range(10):
        history = two_group_data.matrix[[member]]
        as_member, _ = als.recommend(np.array([member]), history, n=5, exclude=history)
        as_stranger, _ = als.recommend(np.array([-1]), history, n=5, exclude=history)
        overlaps.append(len(set(as_member[0]) & set(as_stranger[0])) / 5)
    assert np.mean(overlaps) >= 0.8


def test_als_uses_stored_factors_only_for_unchanged_histories(
    als: ALSRecommender,
    two_group_data: TrainingData,
) -> None:
    history = sp.csr_matrix(two_group_data.matrix[[0]])
    np.testing.assert_array_equal(als.member_vectors(np.array([0]), history), als.user_factors[:1])
    changed = history.tolil()
    changed[0, np.flatnonzero(history.toarray()[0] == 0)[0]] = 8.0
    changed = changed.tocsr()
    np.testing.assert_array_equal(als.member_vectors(np.array([0]), changed), als.fold_in(changed))


@pytest.mark.parametrize("bm25_weighting", [False, True])
def test_als_fold_in_is_implicits_recalculate_user(
    two_group_data: TrainingData,
    bm25_weighting: bool,
) -> None:
    model = ALSRecommender(factors=8, iterations=5, alpha=2.0, bm25_weighting=bm25_weighting).fit(
        two_group_data
    )
    matrix = two_group_data.matrix
    weighted = bm25_weight(matrix.T, K1=100.0, B=0.8).T.tocsr() if bm25_weighting else matrix
    reference = AlternatingLeastSquares(factors=8, regularization=0.05, alpha=2.0)
    reference.item_factors = model.item_factors
    reference.user_factors = model.user_factors
    expected = reference.recalculate_user(np.arange(matrix.shape[0]), weighted)
    np.testing.assert_allclose(model.fold_in(matrix), expected, rtol=1e-4, atol=1e-5)


def test_als_refuses_non_finite_factors(two_group_data: TrainingData) -> None:
    poisoned = two_group_data.matrix.copy()
    poisoned.data[0] = np.inf
    data = dataclasses.replace(two_group_data, matrix=poisoned)
    with pytest.raises(ModelFitError, match="NaN encountered in factors"):
        ALSRecommender(factors=8, iterations=2).fit(data)
