"""User-based collaborative filtering: what the members most like you have.

The source material's User-BasedCF: a member's neighbours are the ``neighbors`` members whose
histories are most similar to theirs (cosine over the members x items matrix, binary or
weighted), and an item's score is the sum over the neighbours of their similarity (raised to
``exponent``: above 1 the closest neighbours count for more) times their history cell.

Everything is computed from the history row passed in: a member unknown at fit time, or one
with live events, finds neighbours for the row as it is now. A known member is not their own
neighbour (their stored row would only add their own items back); a stranger is matched
against every stored member. The neighbour search is :class:`~training.models.neighbours.
MemberNeighbours`, exact below its member threshold and FAISS above, shared with TIFU-KNN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from training.dataset import TrainingData
from training.models.base import ModelFitError, ModelParams, Recommender
from training.models.neighbours import (
    EXACT_BELOW,
    MemberNeighbours,
    NeighbourConfig,
    neighbour_weights,
)

__all__ = ["UserKNNParams", "UserKNNRecommender"]

_NEIGHBOURS_DIR = "neighbours"


class UserKNNParams(ModelParams):
    """``neighbors``: members whose histories score an item. ``weighting``: ``binary``
    counts every item a member interacted with once; ``weights`` uses the matrix weights
    (repeat and stronger events count more) for the similarity and the scores alike.
    ``exponent``: similarity ** exponent weighs each neighbour. ``exact_below``: stores with
    at least this many members search neighbours through FAISS."""

    neighbors: int = Field(default=50, ge=1)
    weighting: Literal["binary", "weights"] = "binary"
    exponent: float = Field(default=1.0, gt=0)
    exact_below: int = Field(default=EXACT_BELOW, ge=0)


class UserKNNRecommender(Recommender):
    """Scores ``Σ_v sim(u, v)^exponent · history_v`` over the member's nearest members."""

    name = "user_knn"
    Params = UserKNNParams
    params: UserKNNParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.neighbours = MemberNeighbours(
            sp.csr_matrix((0, 0), dtype=np.float32), "cosine", NeighbourConfig()
        )

    def fit(self, data: TrainingData) -> Self:
        """Index the members' (binary or weighted) histories for cosine search."""
        if data.matrix.nnz == 0:
            raise ModelFitError("user_knn cannot fit an interaction matrix without interactions")
        self.neighbours = MemberNeighbours.build(
            self._weighted(data.matrix),
            "cosine",
            NeighbourConfig(exact_below=self.params.exact_below),
        )
        self.n_items = data.n_items
        return self

    def _weighted(self, histories: sp.csr_matrix) -> sp.csr_matrix:
        if self.params.weighting == "binary":
            return sp.csr_matrix(histories > 0, dtype=np.float32)
        return sp.csr_matrix(histories, dtype=np.float32)

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Similarity-weighted sums of the nearest members' rows (dense float32)."""
        members = np.asarray(members, dtype=np.int64)
        queries = self._weighted(histories)
        # One more than asked for: a known member finds themself first, and is dropped.
        ids, similarities = self.neighbours.search(queries, self.params.neighbors + 1)
        weights = neighbour_weights(
            ids,
            np.power(np.maximum(similarities, 0.0), self.params.exponent),
            self.params.neighbors,
            self.neighbours.n_rows,
            drop=members,
        )
        return np.asarray((weights @ self.neighbours.rows).toarray(), dtype=np.float32)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Items held by the same members (cosine over the members' rows)."""
        return self.neighbours.similar_items(items, n)

    def _save_arrays(self, directory: Path) -> None:
        self.neighbours.save(directory / _NEIGHBOURS_DIR)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        self.neighbours = MemberNeighbours.load(directory / _NEIGHBOURS_DIR, mmap)
