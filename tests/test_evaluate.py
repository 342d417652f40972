"""The evaluation protocol on a tiny hand-made split, with a model of fixed scores.

Train (before Feb 1):            Test (from Feb 1):
  a buys x, buys y, views z        a re-buys x, buys z, buys w (w never seen in train)
  b buys z                         b clicks x
  c buys x                         c re-buys x
  d views y                        d buys y;   e (never seen in train) buys x

Items are indexed x=0, y=1, z=2 and members a=0, b=1, c=2, d=3 (order of first appearance).
With the default protocol (relevant: new purchases) a has {z, w} and d has {y}; b clicked only,
c only re-bought and e is unknown, so exactly a and d are evaluated.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Self

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features import columns as col
from features.errors import DataError
from features.ids import IdMap
from training.dataset import TrainingData, build_training_data
from training.evaluate import (
    EvaluationTask,
    evaluate_by_segment,
    evaluate_model,
    evaluate_recommended,
    item_category_codes,
    recommended_lists,
)
from training.models import base
from training.models.base import Recommender, popularity_tie_breaker

X, Y, Z = 0, 1, 2
A, D = 0, 3  # member indices of the two evaluated members


def frame(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    """Interactions from (member, item, event, day of 2024; day 32 is Feb 1)."""
    return pl.DataFrame(
        [(member, item, event, datetime(2023, 12, 31) + timedelta(days=day))
         for member, item, event, day in rows],
        schema={col.MEMBER_ID: pl.Utf8, col.ITEM_ID: pl.Utf8, col.EVENT: pl.Utf8,
                col.TIMESTAMP: pl.Datetime("us")},
        orient="row",
    )  # fmt: skip


TRAIN = frame(
    [
        ("a", "x", "purchase", 1),
        ("a", "y", "purchase", 2),
        ("a", "z", "view", 3),
        ("b", "z", "purchase", 4),
        ("c", "x", "purchase", 5),
        ("d", "y", "view", 6),
    ]
)
TEST = frame(
    [
        ("a", "x", "purchase", 33),
        ("a", "z", "purchase", 34),
        ("a", "w", "purchase", 35),
        ("b", "x", "click", 36),
        ("c", "x", "purchase", 37),
        ("d", "y", "purchase", 38),
        ("e", "x", "purchase", 39),
    ]
)


@pytest.fixture(scope="module")
def train() -> TrainingData:
    return build_training_data(TRAIN)


@pytest.fixture(scope="module")
def task(train: TrainingData) -> EvaluationTask:
    segments = pl.DataFrame({col.MEMBER_ID: ["a", "b"], "segment": ["active", "new"]})
    return EvaluationTask.from_split(train, TEST, member_segment_of=segments)


class FixedScores(Recommender):
    """Scores every member alike: x above y above z (a stand-in for any fitted model)."""

    name = "fixed-scores"

    def fit(self, data: TrainingData) -> Self:
        self.n_items = data.n_items
        return self

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        ranking = np.arange(self.n_items, 0, -1, dtype=np.float32)  # x: 3, y: 2, z: 1
        return np.tile(ranking, (len(members), 1))

    def _save_arrays(self, directory: Path) -> None:
        """Nothing to save: the scores are fixed."""

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        """Nothing to load: the scores are fixed."""


class TableScores(Recommender):
    """Scores member i with row i of a given table (any scores, ties and NaN included)."""

    name = "table-scores"

    def __init__(self, table: np.ndarray) -> None:
        super().__init__()
        self.table = np.asarray(table, dtype=np.float32)
        self.n_items = self.table.shape[1]

    def fit(self, data: TrainingData) -> Self:
        return self

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        return self.table[members]

    def _save_arrays(self, directory: Path) -> None:
        """Nothing to save: the scores are given."""

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        """Nothing to load: the scores are given."""


def lists_task(exclude: sp.csr_matrix) -> EvaluationTask:
    """A task over members 0..n-1 with the given exclusions; only what listing reads is real."""
    n_members, n_items = exclude.shape
    empty = sp.csr_matrix((n_members, n_items), dtype=np.float32)
    return EvaluationTask(
        members=np.arange(n_members),
        histories=empty,
        exclude=exclude,
        relevant=empty,
        n_relevant=np.ones(n_members, dtype=np.int64),
        engaged=empty,
        purchased=empty,
        item_popularity=np.ones(n_items),
    )


def rows_of(matrix: sp.csr_matrix) -> list[list[int]]:
    return [sorted(matrix[row].indices.tolist()) for row in range(matrix.shape[0])]


def test_split_evaluates_known_members_with_a_new_relevant_purchase(task: EvaluationTask) -> None:
    assert task.members.tolist() == [A, D]


def test_new_items_only_drops_rebought_items_and_unknown_items_count_as_relevant(
    task: EvaluationTask,
) -> None:
    # a: x was bought in train -> dropped; z only viewed -> relevant; w unknown -> no column.
    assert rows_of(task.relevant) == [[Z], [Y]]
    assert task.n_relevant.tolist() == [2, 1]  # a's w stays in the denominator


def test_repeat_purchases_count_when_new_items_only_is_off(train: TrainingData) -> None:
    task = EvaluationTask.from_split(train, TEST, new_items_only=False)
    # c is now evaluated (it re-bought x) and a's x is relevant again.
    assert task.members.tolist() == [A, 2, D]
    assert rows_of(task.relevant) == [[X, Z], [X], [Y]]
    assert task.n_relevant.tolist() == [3, 1, 1]


def test_the_next_basket_protocol_marks_repeats_and_excludes_nothing(train: TrainingData) -> None:
    task = EvaluationTask.from_split(train, TEST, new_items_only=False, exclude_purchased=False)
    assert task.repeats is not None
    assert rows_of(task.repeats) == [[X], [X], []]  # a and c re-bought x; d's y is new to d
    assert task.exclude.nnz == 0
    assert EvaluationTask.from_split(train, TEST).repeats is None  # new items only: no repeats


def test_a_next_basket_task_reports_the_repeat_and_explore_parts(train: TrainingData) -> None:
    task = EvaluationTask.from_split(train, TEST, new_items_only=False, exclude_purchased=False)
    lists = np.array([[X, Z, -1], [Y, X, -1], [Y, -1, -1]])  # a: a repeat, then a new item
    metrics = evaluate_recommended(lists, task, ks=(1, 2))
    # a: 2 of 3 (x repeat, z new); c: x at rank 2 of 1; d: y new at rank 1.
    assert metrics["recall@2"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert metrics["repeat_recall@2"] == pytest.approx((1 / 3 + 1) / 3)
    assert metrics["explore_recall@2"] == pytest.approx((1 / 3 + 1) / 3)
    assert metrics["phr@1"] == pytest.approx(2 / 3)
    assert metrics["repeat_phr@1"] == pytest.approx(1 / 3)
    assert metrics["explore_phr@1"] == pytest.approx(1 / 3)


def test_training_purchases_are_excluded_and_histories_are_the_training_rows(
    task: EvaluationTask, train: TrainingData
) -> None:
    assert rows_of(task.exclude) == [[X, Y], []]  # a viewed z: not excluded; d only viewed
    assert (task.histories != train.matrix[[A, D]]).nnz == 0


def test_engaged_and_purchased_hold_later_events_on_known_items(task: EvaluationTask) -> None:
    assert rows_of(task.engaged) == [[X, Z], [Y]]
    assert rows_of(task.purchased) == [[X, Z], [Y]]


def test_segments_come_from_the_segment_table_with_unknown_for_the_rest(
    task: EvaluationTask,
) -> None:
    assert task.member_segment_names.tolist() == ["active", "unknown"]


def test_segments_fall_back_to_the_training_datas_own(train: TrainingData) -> None:
    segments = pl.DataFrame({col.MEMBER_ID: ["d"], "segment": ["sleeping"]})
    with_segments = build_training_data(TRAIN, member_segment_of=segments)
    task = EvaluationTask.from_split(with_segments, TEST)
    assert task.member_segment_names.tolist() == ["unknown", "sleeping"]
    assert EvaluationTask.from_split(train, TEST).member_segment_names is None


def test_sampling_is_seeded_and_keeps_rows_aligned(train: TrainingData) -> None:
    first = EvaluationTask.from_split(train, TEST, max_members=1, seed=3)
    again = EvaluationTask.from_split(train, TEST, max_members=1, seed=3)
    assert first.members.tolist() == again.members.tolist()
    assert first.n_members == 1
    expected = {A: ([Z], 2), D: ([Y], 1)}[int(first.members[0])]
    assert (rows_of(first.relevant)[0], int(first.n_relevant[0])) == expected


def test_a_split_without_any_evaluable_member_is_a_data_error(train: TrainingData) -> None:
    with pytest.raises(DataError, match="no test member"):
        EvaluationTask.from_split(train, TEST.filter(pl.col(col.MEMBER_ID) == "e"))


def test_evaluate_model_excludes_purchases_and_counts_unknown_items_as_misses(
    task: EvaluationTask, train: TrainingData
) -> None:
    model = FixedScores().fit(train)
    metrics = evaluate_model(model, task, ks=(1, 2))
    # Lists: a has x, y excluded -> [z, -1]; d -> [x, y]. Hits: a at 1 (z), d at 2 (y).
    # precision@2 = (1/2 + 1/2) / 2 = 0.5;  recall@1 = (1/2 + 0) / 2 = 0.25 (a's w is a miss)
    # recall@2 = (1/2 + 1/1) / 2 = 0.75;    map@2 = (1/2 + (1/2)/1) / 2 = 0.5
    # ndcg@2: a = 1 / (1 + 1/log2 3) = 0.61315, d = (1/log2 3) / 1 = 0.63093 -> 0.62204
    # ctr proxy@1: a's z was bought (engaged), d's x was not -> 0.5
    assert metrics["precision@2"] == pytest.approx(0.5)
    assert metrics["recall@1"] == pytest.approx(0.25)
    assert metrics["recall@2"] == pytest.approx(0.75)
    assert metrics["map@2"] == pytest.approx(0.5)
    assert metrics["ndcg@2"] == pytest.approx(0.62204, abs=1e-5)
    assert metrics["ctr_proxy@1"] == pytest.approx(0.5)
    assert metrics["coverage@2"] == pytest.approx(1.0)  # x, y, z all shown


def test_evaluate_recommended_scores_lists_from_elsewhere_like_the_model(
    task: EvaluationTask, train: TrainingData
) -> None:
    model = FixedScores().fit(train)
    ids, _ = model.recommend(task.members, task.histories, n=20, exclude=task.exclude)
    assert evaluate_recommended(ids, task) == evaluate_model(model, task)


def test_metrics_by_segment_score_each_segments_members_alone(
    task: EvaluationTask, train: TrainingData
) -> None:
    model = FixedScores().fit(train)
    by_segment = evaluate_by_segment(model, task, ks=(2,))
    assert list(by_segment) == ["active", "unknown"]
    assert by_segment["active"]["recall@2"] == pytest.approx(0.5)  # a: z of {z, w}
    assert by_segment["unknown"]["recall@2"] == pytest.approx(1.0)  # d: y of {y}
    lists = np.array([[Z, -1], [X, Y]])
    assert evaluate_by_segment(lists, task, ks=(2,)) == by_segment


def test_metrics_by_segment_need_segments(train: TrainingData) -> None:
    task = EvaluationTask.from_split(train, TEST)
    with pytest.raises(ValueError, match="no member segments"):
        evaluate_by_segment(np.array([[Z], [X]]), task, ks=(1,))


def test_diversity_is_reported_when_item_categories_are_given(train: TrainingData) -> None:
    items = pl.DataFrame(
        {col.ITEM_ID: ["z", "x", "y", "q"], col.CATEGORY: ["toys", "food", None, "toys"]}
    )
    codes = item_category_codes(items, train.item_ids)
    assert codes.tolist() == [0, -1, 1]  # x: food, y: none, z: toys; q is not a training item
    task = EvaluationTask.from_split(train, TEST, item_categories=codes)
    # d's list [x, y] has one categorised item -> no pair; a's [z] none: no list has a pair.
    assert evaluate_recommended(np.array([[Z, -1], [X, Y]]), task, ks=(2,))["diversity@2"] == 0.0
    assert evaluate_recommended(np.array([[Z, X], [X, Z]]), task, ks=(2,))["diversity@2"] == 1.0


def test_per_item_inputs_must_align_with_the_training_items(train: TrainingData) -> None:
    with pytest.raises(ValueError, match="item_categories must hold one value per training item"):
        EvaluationTask.from_split(train, TEST, item_categories=np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="tie_breaker must hold one value per training item"):
        EvaluationTask.from_split(train, TEST, tie_breaker=np.zeros(2, dtype=np.float32))


def test_category_codes_cover_every_item_of_the_map() -> None:
    items = pl.DataFrame({col.ITEM_ID: ["b", "a"], col.CATEGORY: ["k", "j"]})
    assert item_category_codes(items, IdMap.from_values(["a", "b", "c"])).tolist() == [0, 1, -1]


def test_recommended_lists_are_the_lists_recommend_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    table = rng.standard_normal((50, 300))  # continuous scores: no ties
    exclude = sp.random(50, 300, density=0.05, format="csr", random_state=7, dtype=np.float32)
    model, task = TableScores(table), lists_task(exclude)
    expected, _ = model.recommend(task.members, task.histories, n=20, exclude=task.exclude)
    monkeypatch.setattr(base, "_SCORE_CELLS_PER_BATCH", 7 * 300)  # several batches
    np.testing.assert_array_equal(recommended_lists(model, task, 20), expected)


def test_recommended_lists_break_ties_by_item_index_and_pad_what_is_not_finite() -> None:
    nan, inf = np.nan, np.inf
    table = [
        [1.0, 3.0, 3.0, 3.0, 2.0, nan],  # three-way tie at the top: lower index first
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # all tied: the first items
        [5.0, nan, -inf, 9.0, nan, 1.0],  # 9 excluded below; NaN and -inf never listed
    ]
    exclude = sp.csr_matrix(([1.0], ([2], [3])), shape=(3, 6), dtype=np.float32)
    lists = recommended_lists(TableScores(np.array(table)), lists_task(exclude), 4)
    assert lists.tolist() == [[1, 2, 3, 4], [0, 1, 2, 3], [0, 5, -1, -1]]
    wider = recommended_lists(TableScores(np.array(table)), lists_task(exclude), 8)
    assert wider[0].tolist() == [1, 2, 3, 4, 0, -1, -1, -1]  # n above the catalog: padded


def test_evaluated_lists_break_ties_by_popularity_as_serving_does() -> None:
    """Items a model scores alike come in popularity order, as the served lists have them."""
    table = np.array([[0.0, 0.0, 0.0, 0.0, 1.0], [2.0, 2.0, 0.0, 0.0, 0.0]])
    popularity = np.array([1.0, 5.0, 3.0, 9.0, 0.0], dtype=np.float32)
    exclude = sp.csr_matrix((2, 5), dtype=np.float32)
    task = replace(lists_task(exclude), tie_breaker=popularity_tie_breaker(popularity))
    lists = recommended_lists(TableScores(table), task, 3)
    assert lists.tolist() == [[4, 3, 1], [1, 0, 3]]
    served, _ = TableScores(table).recommend(
        task.members, task.histories, 3, exclude=exclude, tie_breaker=task.tie_breaker
    )
    np.testing.assert_array_equal(lists, served)


def test_a_sample_is_drawn_from_the_evaluable_members_before_anything_is_built(
    train: TrainingData,
) -> None:
    segments = pl.DataFrame({col.MEMBER_ID: ["a", "d"], "segment": ["active", "new"]})
    whole = EvaluationTask.from_split(train, TEST, member_segment_of=segments)
    for seed in range(6):
        sample = EvaluationTask.from_split(
            train, TEST, member_segment_of=segments, max_members=1, seed=seed
        )
        drawn = np.random.default_rng(seed).choice(whole.n_members, size=1, replace=False)
        row = whole.subset(np.sort(drawn))
        assert sample.members.tolist() == row.members.tolist()
        assert rows_of(sample.relevant) == rows_of(row.relevant)
        assert rows_of(sample.exclude) == rows_of(row.exclude)
        assert sample.member_segment_names.tolist() == row.member_segment_names.tolist()
