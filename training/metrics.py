"""Ranking metrics of top-k recommendation lists, vectorised over members.

Each metric is a small frozen ``XAtK(k)`` whose ``name`` is the key it reports under
(``"ndcg@10"``), and :func:`calc_metrics` computes a whole set at once, resolving the hits only
one time (the RecTools layout). The formulas, with worked examples, are in ``docs/metrics.md``.

Inputs share one shape convention so that any producer of lists (a model, a reranker) can be
scored: ``recommended`` is an int array, members x K, best first, padded with ``-1`` (padding
never counts as a hit); ``relevant`` and the event matrices are CSR members x items aligned row
by row with it, a nonzero cell meaning "this member did that".

Two kinds of metric, averaged differently on purpose:

* accuracy metrics (precision, recall, F1, NDCG, MAP, hit rate) average over the members that
  have at least one relevant item; a member with nothing to find says nothing about the ranking
  (recall would be 0/0), so such members are left out rather than counted as 0 or 1;
* beyond-accuracy metrics (coverage, novelty, diversity, CTR and conversion proxies) describe
  what was shown, so they look at every list.

``n_relevant`` may exceed a row's nonzeros: relevant items that the model cannot represent
(unknown at training time) have no column, yet they stay in the denominators of recall, MAP and
the ideal DCG, so a model is not rewarded for the part of the catalog it never saw.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

import numpy as np
import scipy.sparse as sp

__all__ = [
    "ACCURACY_METRICS",
    "DEFAULT_KS",
    "MAP_K",
    "NEXT_BASKET_PARTS",
    "AccuracyMetric",
    "ConversionProxyAtK",
    "CoverageAtK",
    "CtrProxyAtK",
    "DiversityAtK",
    "EventShareAtK",
    "F1AtK",
    "HitRateAtK",
    "ListMetric",
    "MAPAtK",
    "NDCGAtK",
    "NoveltyAtK",
    "PHRAtK",
    "PrecisionAtK",
    "RecallAtK",
    "calc_metrics",
    "hit_matrix",
    "item_popularity",
    "next_basket_metrics",
]

DEFAULT_KS: Final[tuple[int, ...]] = (5, 10, 20)
#: The cut-off of the plain ``"map"`` key that ``metrics.json`` reports and model choice uses.
MAP_K: Final = 10


def hit_matrix(recommended: np.ndarray, positives: sp.csr_matrix) -> np.ndarray:
    """Boolean members x K: whether ``recommended[i, j]`` is a nonzero of row i of ``positives``.

    Cells are looked up as ``row * n_items + item`` keys with one ``np.isin``, which stays
    vectorised however long the lists are; padding (-1) is never a hit.
    """
    n_items = positives.shape[1]
    rows, items = positives.nonzero()
    positive_keys = rows.astype(np.int64) * n_items + items
    list_rows = np.arange(recommended.shape[0], dtype=np.int64)[:, None]
    keys = list_rows * n_items + recommended
    return np.isin(keys, positive_keys) & (recommended >= 0)


def item_popularity(matrix: sp.csr_matrix) -> np.ndarray:
    """Per item, the add-one smoothed share of members who interacted with it.

    ``(members_with_item + 1) / (n_members + 1)``: never 0, so an item nobody touched has a
    finite (maximal) self-information in :class:`NoveltyAtK`; an item everyone touched gets 1.
    """
    members_with_item = np.bincount(matrix.nonzero()[1], minlength=matrix.shape[1])
    return (members_with_item + 1.0) / (matrix.shape[0] + 1.0)


@dataclass(frozen=True, eq=False)  # identity equality: some metrics hold arrays
class _AtK:
    """A metric of the first ``k`` positions of each list, reported as ``"<prefix>@<k>"``."""

    k: int
    prefix: ClassVar[str]

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")

    @property
    def name(self) -> str:
        return f"{self.prefix}@{self.k}"


class AccuracyMetric(_AtK, ABC):
    """A per-member score of the hits, averaged over members with at least one relevant item."""

    def calc(self, hits: np.ndarray, n_relevant: np.ndarray) -> float:
        """Mean of :meth:`per_member` over members with ``n_relevant > 0``.

        ``hits`` is the boolean members x K output of :func:`hit_matrix` (K >= k).
        """
        evaluated = n_relevant > 0
        if not evaluated.any():
            raise ValueError("no member has a relevant item; accuracy metrics are undefined")
        scores = self.per_member(hits[evaluated, : self.k], n_relevant[evaluated])
        return float(scores.mean())

    @abstractmethod
    def per_member(self, hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
        """One score per member from its first ``k`` hits (``n_relevant`` is at least 1)."""


class PrecisionAtK(AccuracyMetric):
    """Hits in the top k divided by k (a list shorter than k cannot reach 1)."""

    prefix = "precision"

    def per_member(self, hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
        return hits.sum(axis=1) / self.k


class RecallAtK(AccuracyMetric):
    """Hits in the top k divided by the member's number of relevant items."""

    prefix = "recall"

    def per_member(self, hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
        return hits.sum(axis=1) / n_relevant


class F1AtK(AccuracyMetric):
    """Per member harmonic mean of precision@k and recall@k (0 when both are 0), then averaged."""

    prefix = "f1"

    def per_member(self, hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
        precision = PrecisionAtK(self.k).per_member(hits, n_relevant)
        recall = RecallAtK(self.k).per_member(hits, n_relevant)
        total = precision + recall
        return np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)


class NDCGAtK(AccuracyMetric):
    """Binary-gain DCG with a log2 discount, over the DCG of min(|relevant|, k) hits on top."""

    prefix = "ndcg"

    def per_member(self, hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
        discounts = 1.0 / np.log2(np.arange(2, self.k + 2))
        ideal_dcg = np.cumsum(discounts)[np.minimum(n_relevant, self.k) - 1]
        return (hits @ discounts) / ideal_dcg


class MAPAtK(AccuracyMetric):
    """Average precision at the hit positions, divided by the member's |relevant|.

    This is Microsoft Recommenders' ``map_at_k`` as long released (and its ``map`` today):
    the sum of precision@i over hit positions i <= k divided by |relevant|, not by the number
    of hits, so missing relevant items lowers the score. (Their newest ``map_at_k`` divides
    by min(|relevant|, k) instead.)
    """

    prefix = "map"

    def per_member(self, hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
        precision_at_position = np.cumsum(hits, axis=1) / np.arange(1, self.k + 1)
        return (precision_at_position * hits).sum(axis=1) / n_relevant


class HitRateAtK(AccuracyMetric):
    """1 when the top k hold at least one relevant item; averaged, the share of such members."""

    prefix = "hit_rate"

    def per_member(self, hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
        return hits.any(axis=1).astype(np.float64)


class PHRAtK(HitRateAtK):
    """The next-basket name of :class:`HitRateAtK`: the personal hit ratio (PHR), the share of
    members whose top k hold at least one item of their next basket."""

    prefix = "phr"


#: The accuracy metrics :func:`calc_metrics` reports for every k, in report order.
ACCURACY_METRICS: Final[tuple[type[AccuracyMetric], ...]] = (
    PrecisionAtK,
    RecallAtK,
    F1AtK,
    NDCGAtK,
    MAPAtK,
    HitRateAtK,
)


class ListMetric(_AtK, ABC):
    """A property of what was shown, computed over every list (relevant items or not)."""

    @abstractmethod
    def calc(self, recommended: np.ndarray) -> float:
        """The metric of the first ``k`` columns of ``recommended`` (members x K, -1 padded)."""


@dataclass(frozen=True, eq=False)
class CoverageAtK(ListMetric):
    """Distinct items shown in any top k, divided by the number of items."""

    prefix = "coverage"
    n_items: int

    def calc(self, recommended: np.ndarray) -> float:
        shown = recommended[:, : self.k]
        return np.unique(shown[shown >= 0]).size / self.n_items


@dataclass(frozen=True, eq=False)
class NoveltyAtK(ListMetric):
    """Mean self-information ``-log2 p(item)`` over every shown item (0 when nothing is shown).

    ``item_popularity`` is p per item, e.g. from :func:`item_popularity`: rarely bought items
    are more informative, so a high value means the lists go beyond the best sellers.
    """

    prefix = "novelty"
    item_popularity: np.ndarray

    def calc(self, recommended: np.ndarray) -> float:
        shown = recommended[:, : self.k]
        shown = shown[shown >= 0]
        if shown.size == 0:
            return 0.0
        return float(-np.log2(self.item_popularity[shown]).mean())


@dataclass(frozen=True, eq=False)
class DiversityAtK(ListMetric):
    """Mean over lists of the share of item pairs whose categories differ.

    ``item_categories`` holds a code per item; a negative code means "unknown" and such items
    take part in no pair. Lists with fewer than two categorised items have no pairs and are left
    out of the mean (0 when no list has a pair).
    """

    prefix = "diversity"
    item_categories: np.ndarray

    def calc(self, recommended: np.ndarray) -> float:
        shown = recommended[:, : self.k]
        categories = np.where(shown >= 0, self.item_categories[np.maximum(shown, 0)], -1)
        known = categories >= 0
        list_sizes = known.sum(axis=1)
        pairs = list_sizes * (list_sizes - 1) / 2
        same_pairs = self._same_category_pairs(categories, known)
        has_pairs = pairs > 0
        if not has_pairs.any():
            return 0.0
        return float((1.0 - same_pairs[has_pairs] / pairs[has_pairs]).mean())

    @staticmethod
    def _same_category_pairs(categories: np.ndarray, known: np.ndarray) -> np.ndarray:
        """Per list, the number of pairs sharing a category: sum over categories of C(n_c, 2)."""
        rows = np.nonzero(known)[0].astype(np.int64)
        n_codes = int(categories.max()) + 1 if known.any() else 1
        keys, counts = np.unique(rows * n_codes + categories[known], return_counts=True)
        return np.bincount(
            keys // n_codes, weights=counts * (counts - 1) / 2, minlength=categories.shape[0]
        )


@dataclass(frozen=True, eq=False)
class EventShareAtK(ListMetric):
    """Share of lists where the member later had an event on at least one shown item.

    An offline stand-in for an online rate: nothing was actually shown, so it only says that
    the lists contained something the member went on to engage with.
    """

    prefix = "event_share"
    events: sp.csr_matrix

    def calc(self, recommended: np.ndarray) -> float:
        return float(hit_matrix(recommended[:, : self.k], self.events).any(axis=1).mean())


class CtrProxyAtK(EventShareAtK):
    """:class:`EventShareAtK` of later click-or-stronger events (a stand-in for CTR)."""

    prefix = "ctr_proxy"


class ConversionProxyAtK(EventShareAtK):
    """:class:`EventShareAtK` of later purchases (a stand-in for the conversion rate)."""

    prefix = "conversion_proxy"


def calc_metrics(
    recommended: np.ndarray,
    relevant: sp.csr_matrix,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    n_relevant: np.ndarray | None = None,
    item_popularity: np.ndarray | None = None,
    item_categories: np.ndarray | None = None,
    engaged: sp.csr_matrix | None = None,
    purchased: sp.csr_matrix | None = None,
) -> dict[str, float]:
    """Every metric at every k, keyed ``"<metric>@<k>"``, plus ``"map"`` (= ``map@10``).

    ``n_relevant`` (default: the nonzeros of each ``relevant`` row) is |relevant| per member,
    including relevant items that have no column. Novelty, diversity and the CTR/conversion
    proxies are reported only when their input (``item_popularity``, ``item_categories``,
    ``engaged``, ``purchased``) is given; ``"map"`` only when 10 is among ``ks``.
    """
    _check_lists(recommended, relevant, ks)
    counts = _relevant_counts(relevant, n_relevant)
    top = recommended[:, : max(ks)]
    hits = hit_matrix(top, relevant)
    results = {
        metric.name: metric.calc(hits, counts)
        for metric in (metric_type(k) for metric_type in ACCURACY_METRICS for k in ks)
    }
    for metric in _list_metrics(
        ks, relevant.shape[1], item_popularity, item_categories, engaged, purchased
    ):
        results[metric.name] = metric.calc(top)
    if MAP_K in ks:
        results["map"] = results[MAPAtK(MAP_K).name]
    return results


#: The parts a next-basket figure splits into: hits on items the member bought before (repeat)
#: and on items new to them (explore).
NEXT_BASKET_PARTS: Final = ("repeat", "explore")
#: The next-basket figures, total and per part, in report order.
_NEXT_BASKET_METRICS: Final[tuple[type[AccuracyMetric], ...]] = (RecallAtK, NDCGAtK, PHRAtK)


def next_basket_metrics(
    recommended: np.ndarray,
    relevant: sp.csr_matrix,
    repeats: sp.csr_matrix,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    n_relevant: np.ndarray | None = None,
) -> dict[str, float]:
    """Recall, NDCG and PHR at every k, in total and split into repeat and explore parts.

    ``repeats`` marks the relevant cells the member had bought before the test (a subset of
    ``relevant``). A part counts only its own hits against the *whole* basket: its recall is
    its hits over |basket| and its NDCG its hits' DCG over the basket's ideal DCG, so that
    ``repeat_recall@k + explore_recall@k == recall@k`` (and the same for NDCG) and each part
    reads as its share of the total. A part's PHR is the share of members with a hit of that
    part; the two PHRs overlap and need not add up. Keys: ``recall@10``, ``repeat_recall@10``,
    ``explore_ndcg@5``, ``phr@20``, ...
    """
    _check_lists(recommended, relevant, ks)
    if repeats.shape != relevant.shape or (repeats.multiply(relevant) != repeats).nnz:
        raise ValueError("repeats must mark a subset of the relevant cells, in the same shape")
    counts = _relevant_counts(relevant, n_relevant)
    top = recommended[:, : max(ks)]
    hits = hit_matrix(top, relevant)
    repeat_hits = hit_matrix(top, repeats)
    parts = {"": hits, "repeat_": repeat_hits, "explore_": hits & ~repeat_hits}
    return {
        f"{prefix}{metric.name}": metric.calc(part_hits, counts)
        for metric in (metric_type(k) for metric_type in _NEXT_BASKET_METRICS for k in ks)
        for prefix, part_hits in parts.items()
    }


def _list_metrics(
    ks: Sequence[int],
    n_items: int,
    popularity: np.ndarray | None,
    categories: np.ndarray | None,
    engaged: sp.csr_matrix | None,
    purchased: sp.csr_matrix | None,
) -> list[ListMetric]:
    """The beyond-accuracy metrics whose inputs are available, metric by metric, then by k."""
    metrics: list[ListMetric] = [CoverageAtK(k, n_items) for k in ks]
    if popularity is not None:
        metrics += [NoveltyAtK(k, popularity) for k in ks]
    if categories is not None:
        metrics += [DiversityAtK(k, categories) for k in ks]
    if engaged is not None:
        metrics += [CtrProxyAtK(k, engaged) for k in ks]
    if purchased is not None:
        metrics += [ConversionProxyAtK(k, purchased) for k in ks]
    return metrics


def _relevant_counts(relevant: sp.csr_matrix, n_relevant: np.ndarray | None) -> np.ndarray:
    """|relevant| per member; an explicit count may only add items that have no column."""
    in_matrix = np.bincount(relevant.nonzero()[0], minlength=relevant.shape[0])
    if n_relevant is None:
        return in_matrix
    counts = np.asarray(n_relevant, dtype=np.int64)
    if counts.shape != in_matrix.shape or (counts < in_matrix).any():
        raise ValueError(
            "n_relevant must give one count per row of relevant, at least the row's nonzeros"
        )
    return counts


def _check_lists(recommended: np.ndarray, relevant: sp.csr_matrix, ks: Sequence[int]) -> None:
    """Fail on misaligned or too short lists instead of reporting a silently wrong number."""
    if not ks:
        raise ValueError("ks must name at least one cut-off")
    if recommended.ndim != 2 or recommended.shape[0] != relevant.shape[0]:
        raise ValueError(
            f"recommended must be members x K with one row per row of relevant "
            f"({relevant.shape[0]}), got shape {recommended.shape}"
        )
    if recommended.shape[1] < max(ks):
        raise ValueError(f"lists hold {recommended.shape[1]} items, fewer than k = {max(ks)}")
    if recommended.size and (recommended.min() < -1 or recommended.max() >= relevant.shape[1]):
        raise ValueError(f"item indices must lie in [0, {relevant.shape[1]}) or be -1 (padding)")
