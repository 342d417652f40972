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


@settings(max_examples=200, deadline=None)
@given(
    scores=arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 30)), elements=_SCORES),
    n=st.integers(1, 35),
)
def test_top_n_is_a_stable_sort_by_score_then_index(scores: np.ndarray, n: int) -> None:
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
