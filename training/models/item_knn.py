"""Item-item nearest neighbours ("members who bought this also bought"), via ``implicit``.

The model is a sparse item x item similarity matrix keeping the ``neighbors`` strongest
similarities per item. Scoring a history is one sparse product, so any history (a new member,
new events) is answered without refitting, and the similarity rows double as "similar items".
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, ItemItemRecommender
from implicit.utils import ParameterWarning
from pydantic import Field
from threadpoolctl import threadpool_limits

from training.dataset import TrainingData
from training.models.base import ModelParams, Recommender, top_n

__all__ = ["ItemKNNParams", "ItemKNNRecommender"]


class ItemKNNParams(ModelParams):
    """Similarity measure and sparsity of the item-item matrix.

    ``neighbors`` is implicit's ``K``: the number of similarities kept per item, the item itself
    included when it is among its own strongest (always for cosine). ``bm25_k1`` and ``bm25_b``
    only apply to ``similarity="bm25"``, which damps heavy members and very popular items.
    """

    similarity: Literal["cosine", "bm25"] = "bm25"
    neighbors: int = Field(default=100, ge=1)
    bm25_k1: float = Field(default=1.2, gt=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)


class ItemKNNRecommender(Recommender):
    """Scores ``histories @ similarity``: each item gathers the similarity of the items held."""

    name = "item_knn"
    Params = ItemKNNParams
    params: ItemKNNParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        #: Item x item similarity, float32 CSR; row i holds item i's neighbours.
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: TrainingData) -> Self:
        """Compute the item-item similarity of the interaction matrix's columns."""
        neighbours = self._implicit_model()
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # implicit's own weighting hands a COO matrix to its kNN, which then warns that it
            # converts it to CSR; nothing on our side can avoid that.
            warnings.simplefilter("ignore", ParameterWarning)
            neighbours.fit(data.matrix, show_progress=False)
        self.similarity = sp.csr_matrix(neighbours.similarity, dtype=np.float32)
        self.n_items = data.n_items
        return self

    def _implicit_model(self) -> ItemItemRecommender:
        if self.params.similarity == "cosine":
            return CosineRecommender(K=self.params.neighbors)
        return BM25Recommender(
            K=self.params.neighbors, K1=self.params.bm25_k1, B=self.params.bm25_b
        )

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Dense ``histories @ similarity``; member indices are not needed, only histories."""
        return np.asarray((histories @ self.similarity).toarray(), dtype=np.float32)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The strongest stored neighbours of each item (fewer than ``n``: padded with -1).

        Items outside an item's kept neighbours are not similar at all, so they get ``-inf``
        rather than a score of 0.
        """
        items = np.asarray(items, dtype=np.int64)
        neighbours = self.similarity[items].tocoo()
        scores = np.full((len(items), self.n_items), -np.inf, dtype=np.float32)
        scores[neighbours.row, neighbours.col] = neighbours.data
        scores[np.arange(len(items)), items] = -np.inf
        return top_n(scores, n)

    def _save_arrays(self, directory: Path) -> None:
        sp.save_npz(directory / "similarity.npz", self.similarity, compressed=False)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        # A sparse .npz cannot be memory-mapped; it is loaded whole (it is K x n_items small).
        self.similarity = sp.load_npz(directory / "similarity.npz").tocsr()
