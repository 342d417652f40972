"""Ranking metrics: hand-computed cases, MS Recommenders' MAP, padding, and invariants."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from training.metrics import (
    ConversionProxyAtK,
    CoverageAtK,
    CtrProxyAtK,
    DiversityAtK,
    F1AtK,
    HitRateAtK,
    MAPAtK,
    NDCGAtK,
    NoveltyAtK,
    PrecisionAtK,
    RecallAtK,
    calc_metrics,
    hit_matrix,
    item_popularity,
    next_basket_metrics,
)

N_ITEMS = 10


def relevance(rows: list[set[int]], n_items: int = N_ITEMS) -> sp.csr_matrix:
    """A binary CSR with one row per member holding its relevant items."""
    matrix = np.zeros((len(rows), n_items), dtype=np.float32)
    for row, items in enumerate(rows):
        matrix[row, sorted(items)] = 1.0
    return sp.csr_matrix(matrix)


def lists(*rows: list[int]) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


# One member: hits at positions 2 and 3 of the list; 3 relevant items (1, 7, 9).
ONE_LIST = lists([3, 1, 7, -1, -1])
ONE_RELEVANT = relevance([{1, 7, 9}])


def test_hits_mark_relevant_positions_only() -> None:
    assert hit_matrix(ONE_LIST, ONE_RELEVANT).tolist() == [[False, True, True, False, False]]


def test_padding_never_hits_even_when_its_key_matches_the_previous_rows_last_item() -> None:
    # Keys are row * n_items + item, so padding in row 1 has key 1 * 10 - 1 = 9: the key of
    # item 9 in row 0, which is relevant there. It must still not count.
    recommended = lists([0, 1], [-1, -1])
    relevant = relevance([{9}, {9}])
    assert not hit_matrix(recommended, relevant).any()


def per_member_at(metric_type: type, k: int) -> float:
    hits = hit_matrix(ONE_LIST, ONE_RELEVANT)
    return metric_type(k).calc(hits, np.array([3]))


def test_precision_recall_f1_at_3() -> None:
    # 2 hits in the top 3, 3 relevant: precision 2/3, recall 2/3, F1 = 2pr/(p+r) = 2/3.
    assert per_member_at(PrecisionAtK, 3) == pytest.approx(2 / 3)
    assert per_member_at(RecallAtK, 3) == pytest.approx(2 / 3)
    assert per_member_at(F1AtK, 3) == pytest.approx(2 / 3)


def test_f1_when_precision_and_recall_differ() -> None:
    # top 5: 2 hits -> precision 2/5, recall 2/3; F1 = 2 * (2/5)(2/3) / (2/5 + 2/3) = 1/2.
    assert per_member_at(F1AtK, 5) == pytest.approx(0.5)


def test_precision_counts_padding_as_a_miss() -> None:
    # The list holds 3 real items; at k=5 precision is 2/5, not 2/3.
    assert per_member_at(PrecisionAtK, 5) == pytest.approx(2 / 5)


def test_ndcg_at_3() -> None:
    # DCG = 1/log2(3) + 1/log2(4) = 0.63093 + 0.5 = 1.13093
    # IDCG over min(3, 3) = 3 ideal hits = 1 + 0.63093 + 0.5 = 2.13093 -> 0.53072
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert per_member_at(NDCGAtK, 3) == pytest.approx(expected)
    assert per_member_at(NDCGAtK, 3) == pytest.approx(0.53072, abs=1e-5)


def test_ndcg_ideal_is_limited_to_k_hits() -> None:
    # k = 2: DCG = 1/log2(3) (hit at 2); IDCG over min(3, 2) = 2 hits = 1 + 1/log2(3).
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert per_member_at(NDCGAtK, 2) == pytest.approx(expected)


def test_map_divides_by_relevant_count_like_ms_recommenders() -> None:
    # k = 3: precision at the hit positions: @2 = 1/2, @3 = 2/3; sum = 7/6.
    # MS Recommenders divides by |relevant| = 3 -> 7/18; "divide by hits" would give 7/12.
    assert per_member_at(MAPAtK, 3) == pytest.approx(7 / 18)
    # k = 2: one hit at 2 -> sum = 1/2. |relevant| = 3 -> 1/6; by hits 1/2; by min(3, 2) 1/4.
    assert per_member_at(MAPAtK, 2) == pytest.approx(1 / 6)


def test_hit_rate_is_share_of_members_with_a_hit() -> None:
    recommended = lists([0, 1], [2, 3], [4, 5])
    relevant = relevance([{1}, {9}, {4, 5}])
    hits = hit_matrix(recommended, relevant)
    counts = np.array([1, 1, 2])
    # member 0 hits at 2, member 1 never, member 2 at 1: 2 of 3 at k=2, 1 of 3 at k=1.
    assert HitRateAtK(2).calc(hits, counts) == pytest.approx(2 / 3)
    assert HitRateAtK(1).calc(hits, counts) == pytest.approx(1 / 3)


def test_members_without_relevant_items_are_left_out_of_accuracy_averages() -> None:
    with_empty = calc_metrics(
        lists([3, 1, 7, -1, -1], [0, 2, 4, 5, 6]), relevance([{1, 7, 9}, set()]), ks=(3,)
    )
    alone = calc_metrics(ONE_LIST, ONE_RELEVANT, ks=(3,))
    for name in ("precision@3", "recall@3", "f1@3", "ndcg@3", "map@3", "hit_rate@3"):
        assert with_empty[name] == pytest.approx(alone[name]), name


def test_no_member_with_relevant_items_is_an_error() -> None:
    with pytest.raises(ValueError, match="no member has a relevant item"):
        calc_metrics(lists([0, 1]), relevance([set()]), ks=(2,))


def test_relevant_items_without_a_column_stay_in_the_denominators() -> None:
    # The member also bought 2 items the model never saw: |relevant| = 3 + 2 = 5.
    # recall@3 = 2/5; MAP@3 = (1/2 + 2/3) / 5 = 7/30; IDCG over min(5, 3) = 3 hits as before.
    metrics = calc_metrics(ONE_LIST, ONE_RELEVANT, ks=(3,), n_relevant=np.array([5]))
    assert metrics["recall@3"] == pytest.approx(2 / 5)
    assert metrics["map@3"] == pytest.approx(7 / 30)
    assert metrics["ndcg@3"] == pytest.approx(per_member_at(NDCGAtK, 3))
    assert metrics["precision@3"] == pytest.approx(2 / 3)


def test_relevant_count_below_the_matrix_nonzeros_is_refused() -> None:
    with pytest.raises(ValueError, match="n_relevant"):
        calc_metrics(ONE_LIST, ONE_RELEVANT, ks=(3,), n_relevant=np.array([2]))


@pytest.mark.parametrize(
    ("recommended", "message"),
    [(lists([0, 1]), "fewer than k"), (lists([0, 1, 2], [0, 1, 2]), "one row per row"),
     (lists([0, 1, 10]), "must lie in")],
    ids=["too-short", "misaligned", "out-of-range"],
)  # fmt: skip
def test_bad_lists_are_refused(recommended: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calc_metrics(recommended, ONE_RELEVANT, ks=(3,))


def test_coverage_counts_distinct_items_over_the_catalog() -> None:
    recommended = lists([0, 1], [1, 2], [-1, -1])
    # top 2: {0, 1, 2} of 10 items; top 1: {0, 1}.
    assert CoverageAtK(2, N_ITEMS).calc(recommended) == pytest.approx(0.3)
    assert CoverageAtK(1, N_ITEMS).calc(recommended) == pytest.approx(0.2)


def test_item_popularity_is_add_one_smoothed_member_share() -> None:
    # 3 members: item 0 bought by all 3 -> (3+1)/(3+1) = 1; item 1 by one -> 2/4; item 2 by
    # nobody -> 1/4. A repeat purchase (value 2) still counts its member once.
    history = sp.csr_matrix(np.array([[1, 2, 0], [1, 0, 0], [1, 0, 0]], dtype=np.float32))
    np.testing.assert_allclose(item_popularity(history), [1.0, 0.5, 0.25])


def test_novelty_is_mean_self_information_of_shown_items() -> None:
    popularity = np.array([1.0, 0.5, 0.25])
    # shown items 0, 1, 2 -> -log2 p = 0, 1, 2 bits; padding ignored; mean = 1.
    assert NoveltyAtK(2, popularity).calc(lists([0, 1], [2, -1])) == pytest.approx(1.0)
    assert NoveltyAtK(2, popularity).calc(lists([-1, -1])) == 0.0


def test_diversity_is_mean_share_of_pairs_in_different_categories() -> None:
    categories = np.array([0, 0, 1, 2, -1])
    recommended = lists([0, 1, 2], [3, 4, -1], [0, 3, -1])
    # list 0: pairs (0,1) same, (0,2) and (1,2) differ -> 2/3
    # list 1: item 4 has no category, one categorised item -> no pair, left out
    # list 2: (0,3) differ -> 1.   mean = (2/3 + 1) / 2 = 5/6
    assert DiversityAtK(3, categories).calc(recommended) == pytest.approx(5 / 6)
    # top 1: no list has a pair.
    assert DiversityAtK(1, categories).calc(recommended) == 0.0


def test_event_proxies_are_shares_of_lists_with_a_later_event() -> None:
    recommended = lists([0, 1], [2, 3])
    clicked = relevance([{1}, {9}])  # member 0 clicked its second item, member 1 nothing shown
    bought = relevance([set(), {2}])
    # click proxy: 1 of 2 lists at k=2, none at k=1 (the clicked item is second).
    assert CtrProxyAtK(2, clicked).calc(recommended) == pytest.approx(0.5)
    assert CtrProxyAtK(1, clicked).calc(recommended) == 0.0
    assert ConversionProxyAtK(1, bought).calc(recommended) == pytest.approx(0.5)


def test_calc_metrics_reports_every_metric_at_every_k_and_plain_map() -> None:
    rng = np.random.default_rng(0)
    recommended = np.vstack([rng.permutation(40)[:20] for _ in range(6)])
    relevant = relevance([set(rng.choice(40, 4, replace=False).tolist()) for _ in range(6)], 40)
    metrics = calc_metrics(
        recommended,
        relevant,
        n_relevant=None,
        item_popularity=np.full(40, 0.5),
        item_categories=np.arange(40) % 3,
        engaged=relevant,
        purchased=relevant,
    )
    names = (
        *("precision", "recall", "f1", "ndcg", "map", "hit_rate"),
        *("coverage", "novelty", "diversity", "ctr_proxy", "conversion_proxy"),
    )
    assert set(metrics) == {f"{name}@{k}" for name in names for k in (5, 10, 20)} | {"map"}
    assert metrics["map"] == metrics["map@10"]
    assert all(isinstance(value, float) for value in metrics.values())


def test_optional_metrics_are_skipped_without_their_inputs() -> None:
    metrics = calc_metrics(ONE_LIST, ONE_RELEVANT, ks=(3,))
    assert "coverage@3" in metrics
    assert not any(
        name.startswith(("novelty", "diversity", "ctr_proxy", "conversion")) for name in metrics
    )
    assert "map" not in metrics  # 10 is not among ks


def test_next_basket_parts_add_up_to_the_total_and_share_its_ideal() -> None:
    # One basket {1, 7, 9}; 1 and 9 are repeats. Hits: 1 (repeat) at rank 2, 7 (new) at rank 3.
    repeats = relevance([{1, 9}])
    metrics = next_basket_metrics(ONE_LIST, ONE_RELEVANT, repeats, ks=(3,))
    assert metrics["recall@3"] == pytest.approx(2 / 3)
    assert metrics["repeat_recall@3"] == pytest.approx(1 / 3)
    assert metrics["explore_recall@3"] == pytest.approx(1 / 3)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics["repeat_ndcg@3"] == pytest.approx((1 / math.log2(3)) / ideal)
    assert metrics["explore_ndcg@3"] == pytest.approx((1 / math.log2(4)) / ideal)
    assert metrics["ndcg@3"] == pytest.approx(metrics["repeat_ndcg@3"] + metrics["explore_ndcg@3"])
    assert metrics["phr@3"] == metrics["repeat_phr@3"] == metrics["explore_phr@3"] == 1.0


def test_next_basket_repeats_must_be_relevant() -> None:
    with pytest.raises(ValueError, match="subset of the relevant cells"):
        next_basket_metrics(ONE_LIST, ONE_RELEVANT, relevance([{2}]), ks=(3,))


# --- properties -------------------------------------------------------------------------------


@st.composite
def ranking_cases(draw: st.DrawFn) -> tuple[np.ndarray, sp.csr_matrix]:
    """Lists of distinct items (some padded) and relevant sets, one member at least relevant."""
    n_items = draw(st.integers(1, 12))
    width = draw(st.integers(1, 8))
    rows, relevant_rows = [], []
    for _ in range(draw(st.integers(1, 5))):
        order = draw(st.permutations(range(n_items)))
        length = draw(st.integers(0, min(width, n_items)))
        rows.append([*order[:length], *[-1] * (width - length)])
        relevant_rows.append(draw(st.sets(st.integers(0, n_items - 1))))
    assume(any(relevant_rows))
    return np.array(rows, dtype=np.int64), relevance(relevant_rows, n_items)


BOUNDED = ("precision", "recall", "f1", "ndcg", "map", "hit_rate")


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_accuracy_metrics_lie_in_unit_interval_and_recall_grows_with_k(
    case: tuple[np.ndarray, sp.csr_matrix],
) -> None:
    recommended, relevant = case
    ks = tuple(range(1, recommended.shape[1] + 1))
    metrics = calc_metrics(recommended, relevant, ks=ks)
    for name in BOUNDED:
        for k in ks:
            assert -1e-12 <= metrics[f"{name}@{k}"] <= 1 + 1e-12, f"{name}@{k}"
    recalls = [metrics[f"recall@{k}"] for k in ks]
    assert all(later >= earlier - 1e-12 for earlier, later in pairwise(recalls))


@settings(max_examples=100, deadline=None)
@given(ranking_cases())
def test_ranking_every_relevant_item_first_gives_ndcg_one(
    case: tuple[np.ndarray, sp.csr_matrix],
) -> None:
    _, relevant = case
    n_items = relevant.shape[1]
    dense = relevant.toarray() > 0
    # relevant items first (stable order), then the rest: a perfect ranking of the full catalog.
    perfect = np.argsort(~dense, axis=1, kind="stable")
    metrics = calc_metrics(perfect, relevant, ks=tuple(range(1, n_items + 1)))
    for k in range(1, n_items + 1):
        assert metrics[f"ndcg@{k}"] == pytest.approx(1.0)


def reference_map_and_ndcg(recommended: np.ndarray, relevant_rows: list[set[int]], k: int):
    """Plain loops over the textbook definitions, to check the vectorised versions."""
    maps, ndcgs = [], []
    for row, relevant in zip(recommended, relevant_rows, strict=True):
        if not relevant:
            continue
        hits, precision_sum, dcg = 0, 0.0, 0.0
        for position, item in enumerate(row[:k], start=1):
            if item >= 0 and item in relevant:
                hits += 1
                precision_sum += hits / position
                dcg += 1 / math.log2(position + 1)
        ideal = sum(1 / math.log2(position + 1) for position in range(1, min(len(relevant), k) + 1))
        maps.append(precision_sum / len(relevant))
        ndcgs.append(dcg / ideal)
    return float(np.mean(maps)), float(np.mean(ndcgs))


@settings(max_examples=100, deadline=None)
@given(ranking_cases())
def test_map_and_ndcg_match_a_plain_loop_reference(case: tuple[np.ndarray, sp.csr_matrix]) -> None:
    recommended, relevant = case
    relevant_rows = [set(relevant[row].indices.tolist()) for row in range(relevant.shape[0])]
    for k in range(1, recommended.shape[1] + 1):
        metrics = calc_metrics(recommended, relevant, ks=(k,))
        expected_map, expected_ndcg = reference_map_and_ndcg(recommended, relevant_rows, k)
        assert metrics[f"map@{k}"] == pytest.approx(expected_map)
        assert metrics[f"ndcg@{k}"] == pytest.approx(expected_ndcg)
