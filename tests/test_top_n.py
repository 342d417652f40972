"""top_n: the best n per row, ties broken by lower item index, whatever the row holds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from training.models.base import top_n

#: Few distinct values, so that ties (also at the cut-off) are the rule, and some -inf cells
#: (excluded items), which must come back as -1.
_SCORES = st.sampled_from([-np.inf, 0.0, 0.5, 1.0, 2.0])


@settings(max_examples=300, deadline=None)
@given(
    scores=st.sampled_from([np.float32, np.float64]).flatmap(
        lambda dtype: arrays(
            dtype, st.tuples(st.integers(1, 4), st.integers(1, 30)), elements=_SCORES
        )
    ),
    n=st.integers(1, 35),
)
def test_top_n_is_a_stable_sort_by_score_then_index(scores: np.ndarray, n: int) -> None:
    """float32 rows go through the heap, others through a partition: the same answers."""
    ids, best = top_n(scores, n)
    assert ids.shape == best.shape == (scores.shape[0], n)
    for row in range(scores.shape[0]):
        order = np.lexsort((np.arange(scores.shape[1]), -scores[row]))
        order = order[np.isfinite(scores[row, order])][:n]
        expected = np.full(n, -1)
        expected[: len(order)] = order
        np.testing.assert_array_equal(ids[row], expected)
        np.testing.assert_array_equal(best[row, : len(order)], scores[row, order])


def test_a_prefix_of_a_longer_list_is_the_shorter_list() -> None:
    scores = np.random.default_rng(0).integers(0, 3, size=(50, 200)).astype(np.float32)
    long_ids, _ = top_n(scores, 40)
    short_ids, _ = top_n(scores, 7)
    np.testing.assert_array_equal(long_ids[:, :7], short_ids)


def test_many_rows_with_ties_at_the_cut_off_keep_the_lowest_indices() -> None:
    """Rows where a tie crosses the cut-off are redone together: many of them, wide rows."""
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 40, size=(300, 5_000)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    ids, best = top_n(scores, 25)
    for row in range(len(scores)):
        order = np.lexsort((np.arange(scores.shape[1]), -scores[row]))[:25]
        np.testing.assert_array_equal(ids[row], order)
        np.testing.assert_array_equal(best[row], scores[row, order])
