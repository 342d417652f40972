"""Content-based recommender: recommend items that look like what the member already chose.

Why: it needs no co-purchase statistics, so it answers for brand-new items (they have content
from day one) and for any member with a history, known at fit time or not. It is also the
sanity baseline that tells whether collaborative models beat "more of the same category".

A member's profile is the history-weighted sum of the content rows of their items, scaled to
unit length; an item's score is the cosine between profile and content row (the rows of
:class:`~features.item_content.ItemFeatures` are already unit length). Everything is computed
from the history passed in, so new events count at once, and there is nothing to learn
beyond keeping the feature matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

import numpy as np
import scipy.sparse as sp

from training.dataset import TrainingData
from training.models.base import ModelFitError, ModelParams, Recommender, top_n

__all__ = ["ContentParams", "ContentRecommender"]

#: :meth:`ContentRecommender.item_vectors` densifies the feature matrix only up to this many
#: cells (64 MiB of float32): beyond it (large catalogs x thousands of TF-IDF words) a dense
#: copy would dwarf the sparse one, and FAISS would search vectors that are mostly zeros.
_DENSE_VECTOR_CELLS = 1 << 24

_FEATURES_FILE = "item_features.npz"


class ContentParams(ModelParams):
    """``history_weighting``: ``weights`` lets repeat and stronger events (a purchase over a
    view) pull the profile harder; ``binary`` counts every item of the history once."""

    history_weighting: Literal["weights", "binary"] = "weights"


class ContentRecommender(Recommender):
    """Cosine between a member's content profile and each item's content features."""

    name = "content"
    Params = ContentParams
    params: ContentParams
    _features: sp.csr_matrix

    def fit(self, data: TrainingData) -> Self:
        if data.item_features is None or data.item_features.matrix.shape[1] == 0:
            raise ModelFitError(
                "the content model needs item content features, and this training data has "
                "none; pass --items with a catalog that has a title, description, tags, "
                "category, brand or price column"
            )
        self._features = sp.csr_matrix(data.item_features.matrix, dtype=np.float32)
        self.n_items = data.n_items
        return self

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Cosine scores; ``members`` is not needed, the profile comes from ``histories``.

        A member with an empty history has a zero profile and scores 0 everywhere: content
        alone has nothing to say about them (a caller should fall back to popularity).
        """
        profiles = self._profiles(histories)
        return (profiles @ self._features.T).toarray().astype(np.float32)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Items by cosine of content rows, computed sparse (no dense copy of the catalog).

        Only items sharing some content count as similar: rows with fewer such items are
        padded with -1, rather than filled with arbitrary unrelated items.
        """
        items = np.asarray(items, np.int64)
        similarity = (self._features[items] @ self._features.T).toarray().astype(np.float32)
        similarity[similarity <= 0] = -np.inf
        similarity[np.arange(len(items)), items] = -np.inf
        return top_n(similarity, n)

    def item_vectors(self) -> np.ndarray | None:
        """The dense content rows when the catalog is small enough (see ``_DENSE_VECTOR_CELLS``),
        else ``None``: inner products with :meth:`member_vectors` are the scores."""
        return self._features.toarray() if self._fits_dense() else None

    def member_vectors(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray | None:
        """Dense unit profiles, when :meth:`item_vectors` gives vectors to match them."""
        return self._profiles(histories).toarray() if self._fits_dense() else None

    def _save_arrays(self, directory: Path) -> None:
        sp.save_npz(directory / _FEATURES_FILE, self._features)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        """Load the features (an ``.npz`` cannot be memory-mapped, so ``mmap`` has no effect)."""
        self._features = sp.csr_matrix(sp.load_npz(directory / _FEATURES_FILE), dtype=np.float32)

    def _fits_dense(self) -> bool:
        n_items, n_features = self._features.shape
        return n_items * n_features <= _DENSE_VECTOR_CELLS

    def _profiles(self, histories: sp.csr_matrix) -> sp.csr_matrix:
        """Unit-length weighted sums of the content rows of each member's history items."""
        weights = sp.csr_matrix(histories, dtype=np.float32, copy=True)  # caller's stays intact
        if self.params.history_weighting == "binary":
            weights.data = (weights.data != 0).astype(np.float32)
        profiles = sp.csr_matrix(weights @ self._features)
        lengths = sp.linalg.norm(profiles, axis=1)
        scale = np.divide(1.0, lengths, out=np.zeros_like(lengths), where=lengths > 0)
        return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ profiles)
