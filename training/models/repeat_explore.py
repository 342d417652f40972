"""Repeat and explore in one list: the member's due staples mixed with new items, in a share
learned per activity level.

A next basket holds items the member bought before (repeats) and items new to them (explore),
and the two need different models: a member's own purchase counts rank repeats better than any
collaborative model (Li et al. 2023), while new items can only come from what similar baskets
hold. Scores of the two are not comparable, so the list is not a sum of them but an interleave
of two rankings: with a repeat share ``s``, the ``r``-th repeat candidate takes the virtual
position ``r / s`` and the ``e``-th explore candidate ``e / (1 - s)``, and the list is the
candidates in position order. Any top ``n`` then holds about ``s * n`` repeats, whatever ``n``.

* **Repeat score**: the member's purchase occasions of the item (orders, as
  :class:`~training.models.top_personal.TopPersonalRecommender` counts them) times an item
  prior, ``rebuy_rate ** rebuy_weight * trend ** trend_weight``. The rebuy rate, (members who
  bought the item on two occasions or more + 1) / (its buyers + 2), says a staple is bought
  again; the trend, (its buyers in the last ``trend_days`` + 1) / (its buyers + 5), that it is
  in season now. Both weights 0: top_personal's ranking.
* **Explore score**: BM25 item-kNN over the member's history (``explore_neighbors`` kept per
  item), items the member bought left out, ties in popularity order.
* **Share**: one per activity level (the member's number of orders in training, levels cut at
  :data:`ACTIVITY_LEVELS`), chosen at fit time on an inner validation: the model is fit again
  on the data without each member's last basket, and for each level the share of
  :data:`SHARES` whose lists of :data:`CHOSEN_AT` items get the best NDCG on those baskets is
  kept. Members new at scoring time take the first level's share.

The inner validation is carved from the data the model is given, never from a test: when the
run tunes on validation, the model's own shares come from the validation's training part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from features.errors import DataError
from features.splits import leave_last_baskets_out
from training.dataset import TrainingData, build_training_data
from training.metrics import NDCGAtK, hit_matrix
from training.models.base import ModelParams, Recommender, top_n
from training.models.item_knn import ItemKNNRecommender
from training.models.orders import MemberOrders, member_orders
from training.models.sparse_arrays import load_csr, save_csr

__all__ = [
    "ACTIVITY_LEVELS",
    "CHOSEN_AT",
    "SHARES",
    "RepeatExploreParams",
    "RepeatExploreRecommender",
]

#: Lower bounds (orders in training) of the activity levels after the first: 1, 2-3, 4-7,
#: 8-15 and 16 or more orders.
ACTIVITY_LEVELS: Final = (2, 4, 8, 16)
#: The repeat shares tried per level on the inner validation.
SHARES: Final = tuple(np.round(np.linspace(0.0, 1.0, 11), 1).tolist())
#: The list length the shares are chosen at (NDCG at it).
CHOSEN_AT: Final = 10
#: Explore candidates ranked per member; the other items follow them by explore score.
_EXPLORE_DEPTH: Final = 200
#: Members of the inner validation (a seeded sample beyond it): enough to pick 5 shares.
_INNER_MEMBERS: Final = 20_000
#: Virtual positions: a part with share 0 starts here; items beyond the explore candidates
#: start at twice it, ordered by explore score within one more of it. Float32 keeps these
#: apart (its spacing near 3e6 is 0.25).
_LAST: Final = 1e6


class RepeatExploreParams(ModelParams):
    """The repeat score's item prior and the explore model; see the module docstring."""

    rebuy_weight: float = Field(default=0.5, ge=0)
    trend_weight: float = Field(default=0.5, ge=0)
    trend_days: float = Field(default=60.0, gt=0)
    explore_neighbors: int = Field(default=100, ge=1)


class RepeatExploreRecommender(Recommender):
    """Due repeats interleaved with new items at a learned share; see the module docstring."""

    name = "repeat_explore"
    Params = RepeatExploreParams
    params: RepeatExploreParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        #: Members x items (float32 CSR): purchase occasions.
        self.occasions = sp.csr_matrix((0, 0), dtype=np.float32)
        #: Per item: the repeat score's prior (rebuy rate and trend, weighted).
        self.item_prior = np.zeros(0, dtype=np.float32)
        #: Per item: a popularity score in [0, 1) that orders explore ties.
        self.popularity = np.zeros(0, dtype=np.float32)
        #: Per member: their number of orders in training.
        self.member_orders = np.zeros(0, dtype=np.int32)
        #: Repeat share per activity level (``len(ACTIVITY_LEVELS) + 1`` of them).
        self.shares = np.ones(len(ACTIVITY_LEVELS) + 1, dtype=np.float32)
        self._explore = ItemKNNRecommender(similarity="bm25")

    def fit(self, data: TrainingData) -> Self:
        """Fit the repeat and explore parts on ``data``, then learn the shares on an inner
        validation: ``data`` less each member's last basket, judged on those baskets."""
        self._fit_parts(data)
        self.shares = self._learned_shares(data)
        return self

    def _fit_parts(self, data: TrainingData) -> None:
        orders = member_orders(data)
        if len(orders.members) == 0:
            raise DataError("repeat_explore needs purchases; the training data holds none")
        self.occasions = sp.csr_matrix(
            (np.ones(len(orders.members), np.float32), (orders.members, orders.items)),
            shape=(data.n_members, data.n_items),
        )
        self.item_prior = self._item_prior(orders, data.n_items)
        buyers = np.bincount(self.occasions.indices, minlength=data.n_items).astype(np.float32)
        self.popularity = buyers / (buyers.max() + 1.0)
        self.member_orders = np.zeros(data.n_members, dtype=np.int32)
        np.maximum.at(self.member_orders, orders.members, orders.order_counts.astype(np.int32))
        self._explore = ItemKNNRecommender(
            similarity="bm25", neighbors=self.params.explore_neighbors
        ).fit(data)
        self.n_items = data.n_items

    def _item_prior(self, orders: MemberOrders, n_items: int) -> np.ndarray:
        """``rebuy_rate ** rebuy_weight * trend ** trend_weight`` per item."""
        per_cell = self.occasions.tocoo()
        buyers = np.bincount(per_cell.col, minlength=n_items)
        rebuyers = np.bincount(per_cell.col[per_cell.data >= 2], minlength=n_items)
        recent = sp.csr_matrix(
            (
                (orders.ages < self.params.trend_days).astype(np.float32),
                (orders.members, orders.items),
            ),
            shape=self.occasions.shape,
        )
        recent.eliminate_zeros()
        recent_buyers = np.bincount(recent.indices, minlength=n_items)
        rebuy_rate = (rebuyers + 1.0) / (buyers + 2.0)
        trend = (recent_buyers + 1.0) / (buyers + 5.0)
        prior = rebuy_rate**self.params.rebuy_weight * trend**self.params.trend_weight
        return prior.astype(np.float32)

    # -- the shares ----------------------------------------------------------------------------

    def _learned_shares(self, data: TrainingData) -> np.ndarray:
        """Per activity level, the share of :data:`SHARES` with the best inner NDCG; 1 (repeats
        first) for a level the inner validation has no member of, or when it has none at all
        (every member bought once)."""
        from training.evaluate import EvaluationTask  # evaluate imports the models package

        inner = leave_last_baskets_out(data.interactions, 1)
        shares = np.ones(len(ACTIVITY_LEVELS) + 1, dtype=np.float32)
        if inner.test.height == 0:
            return shares
        inner_data = build_training_data(inner.train)
        try:
            task = EvaluationTask.from_split(
                inner_data, inner.test, new_items_only=False, exclude_purchased=False,
                max_members=_INNER_MEMBERS,
            )  # fmt: skip
        except DataError:  # no inner member has a basket to predict
            return shares
        part = RepeatExploreRecommender(self.params)
        part._fit_parts(inner_data)
        repeat_ids, explore_ids = part._top_candidates(task.members, task.histories, CHOSEN_AT)
        levels = _levels(part._orders_of(task.members))
        ranks = np.arange(1, CHOSEN_AT + 1)
        metric = NDCGAtK(CHOSEN_AT)
        for level in np.unique(levels):
            rows = np.flatnonzero(levels == level)
            figures = []
            for share in SHARES:
                positions = np.hstack([_positions(ranks, share), _positions(ranks, 1.0 - share)])
                candidates = np.hstack([repeat_ids[rows], explore_ids[rows]])
                order = np.argsort(np.where(candidates >= 0, positions, np.inf), axis=1)
                lists = np.take_along_axis(candidates, order, axis=1)[:, :CHOSEN_AT]
                hits = hit_matrix(lists, task.relevant[rows])
                figures.append(metric.calc(hits, task.n_relevant[rows]))
            shares[level] = SHARES[int(np.argmax(figures))]
        return shares

    # -- scoring -------------------------------------------------------------------------------

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Negative virtual positions (see the module docstring): repeats and the top explore
        candidates interleaved at the member's share, then every other item by explore score.

        Repeat candidates are the member's trained occasions; a member unknown at fit time
        (index -1) has none, so the history row's items stand in, its weights as counts.
        """
        members = np.asarray(members, dtype=np.int64)
        repeats, explore = self._parts(members, histories)
        scores = -(3 * _LAST - explore)  # every item after the candidates, by explore score
        share = self.shares[_levels(self._orders_of(members))][:, None]
        explore_ids, explore_scores = top_n(explore, min(_EXPLORE_DEPTH, self.n_items))
        ranked = np.isfinite(explore_scores)
        explore_rows = np.broadcast_to(np.arange(len(members))[:, None], explore_ids.shape)
        explore_positions = np.broadcast_to(
            _positions(np.arange(1, explore_ids.shape[1] + 1), 1.0 - share), explore_ids.shape
        )
        scores[explore_rows[ranked], explore_ids[ranked]] = -explore_positions[ranked]
        rows, items = repeats.nonzero()
        scores[rows, items] = -_positions(_ranks_within_rows(repeats), share[rows, 0])
        return scores.astype(np.float32)

    def _parts(
        self, members: np.ndarray, histories: sp.csr_matrix
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """The members' repeat scores (occasions x item prior; CSR, canonical) and explore
        scores (dense, in [0, 1] plus a popularity tie breaker; -inf on repeat candidates)."""
        known = (members >= 0) & (members < self.occasions.shape[0])
        trained = self.occasions[np.where(known, members, 0)].multiply(known[:, None])
        counts = sp.csr_matrix(trained + histories.multiply((~known)[:, None]))
        # Popularity breaks ties between equal repeat scores (most items are bought once or
        # twice), as the tie breaker breaks them for top_personal.
        prior = self.item_prior * (1.0 + 1e-3 * self.popularity)
        repeats = sp.csr_matrix(counts.multiply(prior[None, :]), dtype=np.float32)
        repeats.eliminate_zeros()
        repeats.sort_indices()
        explore = self._explore.score(members, histories)
        peak = explore.max(axis=1, keepdims=True) if explore.size else explore
        explore = explore / np.where(peak > 0, peak, 1.0) + 1e-3 * self.popularity
        rows, items = repeats.nonzero()
        explore[rows, items] = -np.inf
        return repeats, explore

    def _top_candidates(
        self, members: np.ndarray, histories: sp.csr_matrix, depth: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``depth`` best repeat and explore candidates per member (-1 padded), in
        batches of about 16M explore scores."""
        batch = max(1, (1 << 24) // max(self.n_items, 1))
        repeat_ids, explore_ids = [], []
        for start in range(0, len(members), batch):
            repeats, explore = self._parts(
                members[start : start + batch], histories[start : start + batch]
            )
            dense = repeats.toarray()
            dense[dense == 0] = -np.inf
            repeat_ids.append(top_n(dense, depth)[0])
            explore_ids.append(top_n(explore, depth)[0])
        return np.vstack(repeat_ids), np.vstack(explore_ids)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The explore part's item neighbours (BM25 item-kNN)."""
        return self._explore.similar_items(items, n)

    def _orders_of(self, members: np.ndarray) -> np.ndarray:
        known = (members >= 0) & (members < len(self.member_orders))
        return np.where(known, self.member_orders[np.where(known, members, 0)], 1)

    def _save_arrays(self, directory: Path) -> None:
        save_csr(directory, "occasions", self.occasions)
        save_csr(directory, "explore_similarity", self._explore.similarity)
        for name in ("item_prior", "popularity", "member_orders", "shares"):
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        mode = "r" if mmap else None
        self.occasions = load_csr(directory, "occasions", self.n_items, mmap)
        self._explore = ItemKNNRecommender(
            similarity="bm25", neighbors=self.params.explore_neighbors
        )
        self._explore.similarity = load_csr(directory, "explore_similarity", self.n_items, mmap)
        self._explore.n_items = self.n_items
        for name in ("item_prior", "popularity", "member_orders", "shares"):
            setattr(self, name, np.load(directory / f"{name}.npy", mmap_mode=mode))


def _levels(order_counts: np.ndarray) -> np.ndarray:
    """The activity level of each member from their number of orders."""
    return np.digitize(order_counts, ACTIVITY_LEVELS)


def _positions(ranks: np.ndarray, share: np.ndarray | float) -> np.ndarray:
    """Virtual positions ``rank / share`` of one part; a part of share 0 comes after the other
    part's candidates, in rank order."""
    share = np.asarray(share, dtype=np.float64)
    safe = np.where(share > 0, share, 1.0)
    return np.where(share > 0, ranks / safe, _LAST + ranks)


def _ranks_within_rows(matrix: sp.csr_matrix) -> np.ndarray:
    """1-based rank of each stored cell within its row by value, highest first, ties by item
    index; in the order of ``matrix.nonzero()`` (row-major, canonical CSR)."""
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    ranks = np.empty(len(order), dtype=np.int64)
    starts = matrix.indptr[rows[order]]
    ranks[order] = np.arange(len(order)) - starts + 1
    return ranks
