"""repeat_explore: the model contract, the interleave at a share, and shares learned on an inner
validation that follow what the next baskets hold."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from features import columns as col
from tests import model_contract
from tests.model_contract import RecommenderContract
from training.dataset import TrainingData, build_training_data
from training.models.repeat_explore import ACTIVITY_LEVELS, RepeatExploreRecommender
from training.models.top_personal import TopPersonalRecommender

two_group_data = model_contract.two_group_data


class TestRepeatExploreContract(RecommenderContract):
    def make_model(self) -> RepeatExploreRecommender:
        return RepeatExploreRecommender()


def _store(repeat: bool, members: int = 40, orders: int = 6, seed: int = 0) -> pl.DataFrame:
    """Member-day baskets of 3 items. ``repeat``: every member buys from 4 staples of their own
    every time; otherwise each basket is 3 items the member never bought before, drawn from
    their group's items, so only a collaborative model can find the next one."""
    rng = np.random.default_rng(seed)
    rows = []
    start = datetime(2024, 1, 1)
    for member in range(members):
        group = [item for item in range(60) if item % 2 == member % 2]
        staples = rng.choice(group, size=4, replace=False)
        unseen = list(rng.permutation(group))
        for order in range(orders):
            stamp = start + timedelta(days=7 * order + member % 5)
            basket = (
                rng.choice(staples, size=3, replace=False)
                if repeat
                else [unseen.pop() for _ in range(3)]
            )
            rows += [(f"m{member}", f"i{item}", col.PURCHASE, stamp) for item in basket]
    return pl.DataFrame(
        rows,
        schema={col.MEMBER_ID: pl.Utf8, col.ITEM_ID: pl.Utf8, col.EVENT: pl.Utf8,
                col.TIMESTAMP: pl.Datetime("us")},
        orient="row",
    )  # fmt: skip


@pytest.fixture(scope="module")
def staples() -> TrainingData:
    return build_training_data(_store(repeat=True))


def test_the_shares_follow_what_the_next_baskets_hold(staples: TrainingData) -> None:
    assert RepeatExploreRecommender().fit(staples).shares.max() == 1.0
    novelty = build_training_data(_store(repeat=False))
    learned = RepeatExploreRecommender().fit(novelty).shares
    level = np.digitize(5, ACTIVITY_LEVELS)  # 6 orders, less the inner validation's last one
    assert learned[level] <= 0.2


def test_a_list_holds_the_share_of_repeats_at_any_length(staples: TrainingData) -> None:
    model = RepeatExploreRecommender().fit(staples)
    model.shares[:] = 0.5
    members = np.arange(staples.n_members)
    bought = staples.matrix.toarray() > 0
    for n in (2, 4, 8):
        ids, _ = model.recommend(members, staples.matrix, n)
        repeats = np.take_along_axis(bought, ids, axis=1).sum(axis=1)
        assert (repeats == n // 2).all()  # every member has 4 staples: room for n/2 <= 4


def test_without_the_item_prior_repeats_rank_as_top_personal_does(
    staples: TrainingData,
) -> None:
    model = RepeatExploreRecommender(rebuy_weight=0.0, trend_weight=0.0).fit(staples)
    model.shares[:] = 1.0
    baseline = TopPersonalRecommender().fit(staples)
    members = np.arange(staples.n_members)
    popularity = np.asarray((staples.matrix > 0).sum(axis=0), np.float32).ravel()
    ids, _ = model.recommend(members, staples.matrix, 4)
    expected, _ = baseline.recommend(
        members, staples.matrix, 4, tie_breaker=1e-4 * popularity / popularity.max()
    )
    np.testing.assert_array_equal(ids, expected)
