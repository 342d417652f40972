"""The contract every recommender must pass, on data with a known right answer.

Members and items come in two groups (even and odd indices). Each member interacted with a
seeded random 60% of the items of its own group and none of the other. A personalised model
must therefore recommend unseen items of the member's own group. Every model, personalised or
not, must honour ``n``, exclusions and the allowed mask, and survive a save/load round trip.

A model's test module subclasses :class:`RecommenderContract` and provides ``make_model``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features import columns as col
from training.dataset import TrainingData, build_training_data
from training.models.base import Recommender

N_MEMBERS = 40
N_ITEMS = 30


def two_group_interactions(seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    start = datetime(2024, 1, 1)
    for member in range(N_MEMBERS):
        own = [item for item in range(N_ITEMS) if item % 2 == member % 2]
        liked = rng.choice(own, size=int(0.6 * len(own)), replace=False)
        for step, item in enumerate(sorted(liked)):
            rows.append(
                {
                    col.MEMBER_ID: f"m{member}",
                    col.ITEM_ID: f"i{item}",
                    col.EVENT: "purchase",
                    col.TIMESTAMP: start + timedelta(days=member + step),
                    col.QUANTITY: 1.0,
                    col.PRICE: 1.0 + item,
                    col.ORDER_ID: f"o{member}-{step}",
                    col.VALUE: None,
                }
            )
    return pl.DataFrame(rows, schema_overrides={col.VALUE: pl.Float64})


def two_group_items() -> pl.DataFrame:
    return pl.DataFrame(
        {
            col.ITEM_ID: [f"i{item}" for item in range(N_ITEMS)],
            col.TITLE: [
                f"{'red' if item % 2 == 0 else 'blue'} thing {item}" for item in range(N_ITEMS)
            ],
            col.CATEGORY: ["even" if item % 2 == 0 else "odd" for item in range(N_ITEMS)],
            col.PRICE: [1.0 + item for item in range(N_ITEMS)],
        }
    )


@pytest.fixture(scope="module")
def two_group_data() -> TrainingData:
    return build_training_data(two_group_interactions(), items=two_group_items())


def item_group(data: TrainingData, item_indices: np.ndarray) -> np.ndarray:
    names = data.item_ids.to_external(item_indices)
    return np.array([int(name[1:]) % 2 for name in names])


def member_group(data: TrainingData, member_indices: np.ndarray) -> np.ndarray:
    names = data.member_ids.to_external(member_indices)
    return np.array([int(name[1:]) % 2 for name in names])


class RecommenderContract:
    """Subclass and implement :meth:`make_model`; set ``personalised = False`` for baselines."""

    personalised = True
    #: Whether a member unknown at fit time (index -1) is scored from its history.
    folds_in_history = True

    def make_model(self) -> Recommender:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, two_group_data: TrainingData) -> Recommender:
        # A classmethod: pytest 9 rejects class-scoped fixtures defined on the instance.
        return cls().make_model().fit(two_group_data)

    def _all_members(self, data: TrainingData) -> tuple[np.ndarray, sp.csr_matrix]:
        members = np.arange(data.n_members)
        return members, data.matrix[members]

    def test_scores_have_one_row_per_member_and_one_column_per_item(
        self, fitted: Recommender, two_group_data: TrainingData
    ) -> None:
        members, histories = self._all_members(two_group_data)
        scores = fitted.score(members, histories)
        assert scores.shape == (two_group_data.n_members, two_group_data.n_items)
        assert np.isfinite(scores).all()

    def test_recommends_exactly_n_distinct_unseen_items(
        self, fitted: Recommender, two_group_data: TrainingData
    ) -> None:
        members, histories = self._all_members(two_group_data)
        ids, scores = fitted.recommend(members, histories, n=5, exclude=histories)
        assert ids.shape == (len(members), 5)
        assert (ids >= 0).all()
        for row, member in enumerate(members):
            assert len(set(ids[row])) == 5
            assert not histories[member, ids[row]].toarray().any()
            assert (np.diff(scores[row]) <= 0).all()

    def test_personalised_models_recommend_the_members_own_group(
        self, fitted: Recommender, two_group_data: TrainingData
    ) -> None:
        if not self.personalised:
            pytest.skip("a baseline is not personalised")
        members, histories = self._all_members(two_group_data)
        ids, _ = fitted.recommend(members, histories, n=3, exclude=histories)
        same = item_group(two_group_data, ids.ravel()) == np.repeat(
            member_group(two_group_data, members), 3
        )
        assert same.mean() >= 0.9

    def test_allowed_mask_and_padding_when_too_few_items_remain(
        self, fitted: Recommender, two_group_data: TrainingData
    ) -> None:
        members, histories = self._all_members(two_group_data)
        allowed = np.zeros(two_group_data.n_items, dtype=bool)
        allowed[:4] = True
        ids, scores = fitted.recommend(members[:3], histories[:3], n=6, allowed=allowed)
        assert ids.shape == (3, 6)
        assert set(ids[:, :4].ravel()) <= {0, 1, 2, 3}
        assert (ids[:, 4:] == -1).all() and np.isneginf(scores[:, 4:]).all()

    def test_unknown_member_with_history_is_answered(
        self, fitted: Recommender, two_group_data: TrainingData
    ) -> None:
        history = sp.csr_matrix(two_group_data.matrix[0])  # member 0's tastes, as a stranger
        ids, _ = fitted.recommend(np.array([-1]), history, n=3, exclude=history)
        assert (ids >= 0).all()
        if self.personalised and self.folds_in_history:
            groups = item_group(two_group_data, ids[0])
            assert (groups == member_group(two_group_data, np.array([0]))[0]).mean() >= 2 / 3

    def test_similar_items_exclude_the_item_itself(
        self, fitted: Recommender, two_group_data: TrainingData
    ) -> None:
        if not self.personalised:
            pytest.skip("a baseline has no item similarity")
        items = np.arange(4)
        ids, _ = fitted.similar_items(items, 3)
        assert ids.shape == (4, 3)
        assert all(item not in row for item, row in zip(items, ids, strict=True))

    def test_save_load_round_trip_scores_identically(
        self, fitted: Recommender, two_group_data: TrainingData, tmp_path: Path
    ) -> None:
        fitted.save(tmp_path / fitted.name)
        loaded = type(fitted).load(tmp_path / fitted.name)
        members, histories = self._all_members(two_group_data)
        np.testing.assert_allclose(
            loaded.score(members, histories), fitted.score(members, histories), rtol=1e-5, atol=1e-6
        )
        assert loaded.get_params() == fitted.get_params()
