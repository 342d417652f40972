"""EASE (Steck 2019): a dense item-item linear model with a closed-form solution.

EASE is often the strongest model on small and mid-sized catalogues and needs no iterations or
seeds, but its weight matrix is dense, items x items: memory grows with the square of the
catalogue, so fitting refuses above ``max_items`` instead of exhausting the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from pydantic import Field

from training.dataset import TrainingData
from training.models.base import ModelFitError, ModelParams, Recommender, top_n

__all__ = ["EASEParams", "EASERecommender"]

#: Dense float64 item x item matrices alive at the peak of a fit (Gram, inverse, weights).
_PEAK_DENSE_COPIES = 3


class EASEParams(ModelParams):
    """``l2`` is the ridge penalty λ (larger: smoother, more popularity-like); ``binary`` fits
    on "interacted or not" instead of event weights, which is usually more robust; ``max_items``
    is the catalogue size above which fitting is refused (memory is quadratic in it)."""

    l2: float = Field(default=500.0, gt=0)
    max_items: int = Field(default=20_000, ge=1)
    binary: bool = True


class EASERecommender(Recommender):
    """Scores ``histories @ B`` with B the closed-form EASE weights (zero diagonal)."""

    name = "ease"
    Params = EASEParams
    params: EASEParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        #: B, items x items float32: row i holds how much holding item i raises each item.
        self.weights = np.zeros((0, 0), dtype=np.float32)

    def fit(self, data: TrainingData) -> Self:
        """Solve B = -P / diag(P) with P = (XᵀX + λI)⁻¹, in float64 for a stable inverse."""
        self._refuse_oversized(data.n_items)
        gram = _gram_matrix(self._prepared(data.matrix))
        gram[np.diag_indices_from(gram)] += self.params.l2
        precision = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        precision /= -np.diag(precision)  # column j divided by -P_jj
        np.fill_diagonal(precision, 0.0)
        self.weights = precision.astype(np.float32)
        self.n_items = data.n_items
        return self

    def _refuse_oversized(self, n_items: int) -> None:
        """Fail fast, with the numbers and the way out, before allocating anything quadratic."""
        if n_items <= self.params.max_items:
            return
        estimated_gib = n_items**2 * 8 * _PEAK_DENSE_COPIES / 2**30
        raise ModelFitError(
            f"EASE refuses to fit {n_items} items (max_items={self.params.max_items}): it needs "
            f"dense {n_items}x{n_items} matrices, about {estimated_gib:.1f} GiB "
            f"(n_items² x 8 bytes x {_PEAK_DENSE_COPIES}). Raise max_items if the machine has "
            "that memory, or use item_knn or als for a catalogue this large."
        )

    def _prepared(self, histories: sp.csr_matrix) -> sp.csr_matrix:
        """The histories as the model sees them: binarised when ``binary``, else as weighted."""
        if not self.params.binary:
            return histories
        return sp.csr_matrix(histories != 0, dtype=np.float32)

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Dense ``histories @ B``; member indices are not needed, only histories."""
        return np.asarray(self._prepared(histories) @ self.weights, dtype=np.float32)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Rank by B's rows: row i is exactly the score a member holding only item i would get.

        This is "members who have this also get", the relation a product page wants.
        """
        items = np.asarray(items, dtype=np.int64)
        scores = np.array(self.weights[items], dtype=np.float32)
        scores[np.arange(len(items)), items] = -np.inf
        return top_n(scores, n)

    def _save_arrays(self, directory: Path) -> None:
        np.save(directory / "weights.npy", self.weights, allow_pickle=False)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        self.weights = np.load(
            directory / "weights.npy", mmap_mode="r" if mmap else None, allow_pickle=False
        )


def _gram_matrix(histories: sp.csr_matrix) -> np.ndarray:
    """Dense float64 XᵀX (item co-occurrence), computed sparse and densified once."""
    as_float64 = histories.astype(np.float64)
    return np.asarray((as_float64.T @ as_float64).toarray())
