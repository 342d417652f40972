"""The two-stage reranker: the shared contract, and that its ranker learns something."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features import columns as col
from tests import model_contract
from tests.model_contract import RecommenderContract
from training.dataset import TrainingData, build_training_data
from training.models.base import ModelFitError
from training.models.rerank import FEATURE_NAMES, RerankRecommender

#: The contract's data set, shared with this module's own tests (pytest finds it by name).
two_group_data = model_contract.two_group_data

#: Small enough for the contract's 40 members and ~7 weeks of purchases.
SMALL = {
    "candidates": 6,
    "validation_days": 14,
    "windows": 2,
    "window_step_days": 7,
    "trees": 30,
    "min_child_samples": 5,
    "early_stopping_rounds": 10,
    "ease_l2": 10.0,
    "als_factors": 8,
    "knn_neighbors": 10,
}


def small_rerank(**overrides: object) -> RerankRecommender:
    return RerankRecommender(**{**SMALL, **overrides})


class TestRerankContract(RecommenderContract):
    def make_model(self) -> RerankRecommender:
        return small_rerank()


@pytest.fixture(scope="module")
def small_fitted(two_group_data: TrainingData) -> RerankRecommender:
    return small_rerank().fit(two_group_data)


def test_candidates_score_above_every_other_item(
    small_fitted: RerankRecommender, two_group_data: TrainingData
) -> None:
    members = np.arange(two_group_data.n_members)
    scores = small_fitted.score(members, two_group_data.matrix)
    candidates = small_fitted.stage.candidates(members, two_group_data.matrix)
    is_candidate = np.zeros(scores.shape, dtype=bool)
    is_candidate[candidates.rows, candidates.items] = True
    assert candidates.features.shape == (len(candidates.rows), len(FEATURE_NAMES))
    for row in range(len(members)):
        assert scores[row, is_candidate[row]].min() >= 0 > scores[row, ~is_candidate[row]].max()


def test_unknown_member_gets_neutral_member_statistics(
    small_fitted: RerankRecommender, two_group_data: TrainingData
) -> None:
    history = sp.csr_matrix(two_group_data.matrix[0])
    known = small_fitted.stage.candidates(np.array([0]), history).features
    unknown = small_fitted.stage.candidates(np.array([-1]), history).features
    orders = FEATURE_NAMES.index("orders")
    assert np.isfinite(known[:, orders]).all() and np.isnan(unknown[:, orders]).all()
    distinct = FEATURE_NAMES.index("distinct_items")
    np.testing.assert_array_equal(known[:, distinct], unknown[:, distinct])


def test_a_label_window_longer_than_the_data_is_refused(two_group_data: TrainingData) -> None:
    with pytest.raises(ModelFitError, match="validation_days"):
        small_rerank(validation_days=400).fit(two_group_data)


def drifting_interactions(seed: int = 0) -> pl.DataFrame:
    """Purchases of 300 members whose taste moves between 4 groups of 40 items every ~60 days.

    Base models fit on the whole history cannot tell a member's current group from their old
    ones; the recency features can, so a ranker that learns anything beats them clearly.
    """
    rng = np.random.default_rng(seed)
    start, rows = datetime(2024, 1, 1), []
    for member in range(300):
        day, group, bought, order = rng.uniform(0, 60), int(rng.integers(4)), set(), 0
        phase_end = day + rng.uniform(30, 90)
        while day < 240:
            if day > phase_end:
                group, phase_end = (group + int(rng.integers(1, 4))) % 4, day + rng.uniform(30, 90)
            unbought = [item for item in range(group * 40, group * 40 + 40) if item not in bought]
            if unbought:
                item = int(rng.choice(unbought))
                bought.add(item)
                rows.append(
                    (f"m{member}", f"i{item}", start + timedelta(days=day), f"o{member}-{order}")
                )
                order += 1
            day += rng.exponential(3.0)
    return pl.DataFrame(
        rows, schema=[col.MEMBER_ID, col.ITEM_ID, col.TIMESTAMP, col.ORDER_ID], orient="row"
    ).with_columns(
        pl.lit("purchase").alias(col.EVENT),
        pl.lit(1.0).alias(col.QUANTITY),
        pl.lit(1.0).alias(col.PRICE),
    )


def test_ranker_beats_its_best_base_model_on_validation() -> None:
    """On held-out members of the latest label window, the reranked lists beat those of the
    best single base model by a wide margin (what the second stage is for)."""
    model = RerankRecommender(
        candidates=30,
        validation_days=30,
        windows=3,
        window_step_days=15,
        holdout_share=0.5,
        als_factors=16,
    ).fit(build_training_data(drifting_interactions()))
    report = model.validation_report
    best_base = max(report[name]["ndcg@10"] for name in ("ease", "als", "item_knn", "popular"))
    assert report["rerank"]["ndcg@10"] >= 1.15 * best_base
