"""The member's own most-bought items: the frequency baseline of next-basket recommendation.

P-TopFreq in Li et al. 2023 ("A Next Basket Recommendation Reality Check"): a member's score
for an item is the number of purchase occasions (orders, :func:`features.baskets.order_key`:
one per order however many lines or units) on which they bought it. Items they never bought
score 0, and the popularity tie breaker that evaluation and serving add orders those, so a
list is the member's staples completed by popular items (G-TopFreq). On next-basket data this
beats most neural models, which is why every next-basket model is measured against it.

``half_life_days`` optionally weights each occasion by ``0.5 ** (age / half_life)`` (age back
from the data's last event), so that what a member bought lately outranks an old habit.

Which row scores a member: members known at fit time are scored from the occasions counted
at fit time; a member unknown at fit time (index -1) from the history row passed in. A history
cell is the sum of the event weights of the member's interactions with the item (each row
adds its event's weight, purchase 8, cart 4, click 2, view 1 by default, times its decay when
the run decays; :func:`features.matrices.build_interaction_matrix`): it counts lines, not
orders, and counts looking as a fraction of buying, so it ranks like occasions would when
members buy an item once per order, and is the best a row without orders can tell. Events of
a known member after training (live history) reach this model through the exclusions, until
the next training run counts them as occasions: a history row says what was added, not in
which order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from training.dataset import TrainingData
from training.models.base import ModelParams, Recommender
from training.models.orders import member_orders
from training.models.sparse_arrays import load_csr, save_csr

__all__ = ["TopPersonalParams", "TopPersonalRecommender"]


class TopPersonalParams(ModelParams):
    """``half_life_days``: recency weight of an occasion (None: every occasion counts 1)."""

    half_life_days: float | None = Field(default=None, gt=0)


class TopPersonalRecommender(Recommender):
    """Scores each member's items by their purchase occasions; see the module docstring."""

    name = "top_personal"
    Params = TopPersonalParams
    params: TopPersonalParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        #: Members x items (float32 CSR): occasions, recency-weighted when asked for.
        self.occasions = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: TrainingData) -> Self:
        """Count every member's purchase occasions per item."""
        orders = member_orders(data)
        weights = (
            np.ones(len(orders.members))
            if self.params.half_life_days is None
            else np.power(0.5, np.maximum(orders.ages, 0.0) / self.params.half_life_days)
        )
        self.occasions = sp.csr_matrix(
            (weights, (orders.members, orders.items)),
            shape=(data.n_members, data.n_items),
            dtype=np.float32,
        )
        self.n_items = data.n_items
        return self

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Stored occasions for known members, the history row for unknown ones (index -1)."""
        members = np.asarray(members, dtype=np.int64)
        known = (members >= 0) & (members < self.occasions.shape[0])
        scores = np.zeros((len(members), self.n_items), dtype=np.float32)
        if known.any():
            scores[known] = self.occasions[members[known]].toarray()
        if not known.all():
            scores[~known] = histories[np.flatnonzero(~known)].toarray()
        return scores

    def _save_arrays(self, directory: Path) -> None:
        save_csr(directory, "occasions", self.occasions)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        self.occasions = load_csr(directory, "occasions", self.n_items, mmap)
