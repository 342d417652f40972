"""Implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008), fit by ``implicit``.

A member's score for an item is the inner product of their factors, which is what FAISS
retrieval needs. ``implicit`` reads each matrix cell as the confidence c_ui itself (cells left
empty have confidence 1 and preference 0), so the weights are scaled by ``alpha`` (and
optionally BM25-weighted) before the fit; the same transform is applied to histories at
fold-in.

Which member factors score a member: the factors stored by the fit when the member was known
at fit time and their history is still the training row, so offline evaluation ranks exactly
as trained; otherwise (unknown members, changed histories) the factors are folded in, i.e. the
exact least-squares solve against the fixed item factors (``implicit``'s ``recalculate_user``).
That is why the training histories are kept with the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.recommender_base import ModelFitError as ImplicitModelFitError
from pydantic import Field
from threadpoolctl import threadpool_limits

from training.dataset import TrainingData
from training.models.base import ModelFitError, ModelParams, Recommender

__all__ = ["ALSParams", "ALSRecommender"]


class ALSParams(ModelParams):
    """Factorisation size and confidence scaling.

    ``alpha`` multiplies the weights into confidences (higher: trust observed events more
    relative to the unobserved). ``bm25_weighting`` applies ``implicit``'s BM25 weighting with
    items as documents (its lastfm convention) first, damping very popular items and heavy
    members; ``bm25_k1`` and ``bm25_b`` are its K1 and B.
    """

    factors: int = Field(default=64, ge=1)
    regularization: float = Field(default=0.05, ge=0)
    alpha: float = Field(default=1.0, gt=0)
    iterations: int = Field(default=15, ge=1)
    random_state: int = 42
    bm25_weighting: bool = False
    bm25_k1: float = Field(default=100.0, gt=0)
    bm25_b: float = Field(default=0.8, ge=0, le=1)


class ALSRecommender(Recommender):
    """Scores ``member_factors @ item_factors.T``; see the module docstring for fold-in."""

    name = "als"
    Params = ALSParams
    params: ALSParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        factors = self.params.factors
        #: Member and item factors from the fit, float32 (members x factors, items x factors).
        self.user_factors = np.zeros((0, factors), dtype=np.float32)
        self.item_factors = np.zeros((0, factors), dtype=np.float32)
        #: The raw training matrix: a history equal to its member's row uses stored factors.
        self.training_histories = sp.csr_matrix((0, 0), dtype=np.float32)
        #: BM25 length normalisation per item, from the training matrix (empty without BM25).
        self.item_length_norms = np.zeros(0, dtype=np.float64)
        self._item_gram = np.zeros((factors, factors), dtype=np.float64)

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, data: TrainingData) -> Self:
        """Factorise the confidence matrix; refuse non-finite factors."""
        if data.matrix.nnz == 0:
            raise ModelFitError("ALS cannot fit an interaction matrix without any interaction")
        self._hold_histories(data.matrix)
        with threadpool_limits(1, "blas"):
            factorisation = AlternatingLeastSquares(
                factors=self.params.factors,
                regularization=self.params.regularization,
                alpha=1.0,  # the confidences below are already scaled by alpha
                dtype=np.float32,
                iterations=self.params.iterations,
                calculate_training_loss=False,
                random_state=self.params.random_state,
            )
            try:
                factorisation.fit(self._confidences(data.matrix), show_progress=False)
            except ImplicitModelFitError as error:
                raise _non_finite_factors_error() from error
        return self._hold_factors(factorisation.user_factors, factorisation.item_factors)

    @classmethod
    def from_factors(
        cls,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        training_histories: sp.csr_matrix,
        params: ModelParams | None = None,
        **overrides: Any,
    ) -> Self:
        """A model of factors fit elsewhere (Spark MLlib's ALS): rows of ``user_factors`` and
        ``item_factors`` are the member and item indices of ``training_histories``, the matrix
        they were fit on, so that the model scores, folds in and saves as one fit here would."""
        model = cls(params, **overrides)
        n_members, n_items = training_histories.shape
        rank = model.params.factors
        if (user_factors.shape, item_factors.shape) != ((n_members, rank), (n_items, rank)):
            raise ModelFitError(
                f"factors of shapes {user_factors.shape} and {item_factors.shape} do not fit a "
                f"matrix of shape {training_histories.shape} with {model.params.factors} factors"
            )
        model._hold_histories(training_histories)
        return model._hold_factors(user_factors, item_factors)

    def _hold_histories(self, matrix: sp.csr_matrix) -> None:
        """Keep the training matrix (and its BM25 lengths): fold-in compares and weights by it."""
        self.n_items = matrix.shape[1]
        self.training_histories = sp.csr_matrix(matrix, dtype=np.float32)
        if self.params.bm25_weighting:
            self.item_length_norms = _bm25_item_length_norms(matrix, self.params.bm25_b)

    def _hold_factors(self, user_factors: np.ndarray, item_factors: np.ndarray) -> Self:
        """Keep the factors as float32, refusing non-finite ones, and their Gram matrix."""
        self.user_factors = np.asarray(user_factors, dtype=np.float32)
        self.item_factors = np.asarray(item_factors, dtype=np.float32)
        if not (np.isfinite(self.user_factors).all() and np.isfinite(self.item_factors).all()):
            raise _non_finite_factors_error()
        self._item_gram = _gram(self.item_factors)
        return self

    def _confidences(self, histories: sp.csr_matrix) -> sp.csr_matrix:
        """The confidence matrix ``implicit`` fits on: alpha x (BM25-weighted) weights."""
        weighted = self._bm25_weighted(histories) if self.params.bm25_weighting else histories
        return sp.csr_matrix(self.params.alpha * weighted, dtype=np.float32)

    def _bm25_weighted(self, histories: sp.csr_matrix) -> sp.csr_matrix:
        """``implicit.nearest_neighbours.bm25_weight(X.T, K1, B).T`` with the *training* item
        lengths, so that a history folded in later is weighted like the rows the model saw.

        Items are the documents and members the terms: a member's idf falls with the number of
        items they hold, an item's length norm grows with its popularity.
        """
        histories = sp.csr_matrix(histories, dtype=np.float64)
        items_per_member = np.diff(histories.indptr)
        member_idf = np.log(self.n_items) - np.log1p(items_per_member)
        cell_member = np.repeat(np.arange(histories.shape[0]), items_per_member)
        weights = histories.data
        k1 = self.params.bm25_k1
        histories.data = (
            weights
            * (k1 + 1.0)
            / (k1 * self.item_length_norms[histories.indices] + weights)
            * member_idf[cell_member]
        )
        return histories

    # -- scoring -------------------------------------------------------------------------------

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Inner products of member factors (stored or folded in) with all item factors."""
        return np.asarray(self.member_vectors(members, histories) @ self.item_factors.T)

    def item_vectors(self) -> np.ndarray:
        """The item factors (items x factors, float32)."""
        return self.item_factors

    def member_vectors(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Stored factors for known members with their training history, folded in otherwise."""
        members = np.asarray(members, dtype=np.int64)
        unchanged = self._has_training_history(members, histories)
        vectors = np.empty((len(members), self.params.factors), dtype=np.float32)
        vectors[unchanged] = self.user_factors[members[unchanged]]
        changed = np.flatnonzero(~unchanged)
        if len(changed):
            vectors[changed] = self.fold_in(histories[changed])
        return vectors

    def _has_training_history(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Per member: known at fit time and its history row equal to its training row.

        Compared on the canonical CSR arrays, cell by cell: a serving request asks for one
        member, and a sparse subtraction (row slicing, a difference matrix) costs far more
        than the few cells it compares.
        """
        trained = self.training_histories
        if not histories.has_canonical_format:  # equal rows must list equal cells in order
            histories = sp.csr_matrix(histories, copy=True)
            histories.sum_duplicates()
        unchanged = np.zeros(len(members), dtype=bool)
        rows = np.flatnonzero((members >= 0) & (members < trained.shape[0]))
        stored = members[rows]
        lengths = np.diff(histories.indptr)[rows]
        same_length = lengths == trained.indptr[stored + 1] - trained.indptr[stored]
        rows, stored, lengths = rows[same_length], stored[same_length], lengths[same_length]
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        held = np.repeat(histories.indptr[rows], lengths) + offsets
        kept = np.repeat(trained.indptr[stored], lengths) + offsets
        differs = (histories.indices[held] != trained.indices[kept]) | (
            histories.data[held] != trained.data[kept]
        )
        changed = np.bincount(
            np.repeat(np.arange(len(rows)), lengths)[differs], minlength=len(rows)
        )
        unchanged[rows[changed == 0]] = True
        return unchanged

    def fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        """Member factors for arbitrary histories against the fixed item factors.

        Solves x_u = (YᵀY + Yᵀ(C_u − I)Y + λI)⁻¹ Yᵀ C_u p_u per row in float64, exactly like
        ``implicit``'s ``recalculate_user`` (negative confidences count as dislikes: weight
        ``|c|``, preference 0). An empty history gets the zero vector, i.e. all scores 0.
        """
        confidences = self._confidences(histories)
        # Only the held items' factors are gathered: a copy of all of them would cost
        # n_items x factors per call, far more than a serving request needs.
        held_factors = np.asarray(self.item_factors[confidences.indices], dtype=np.float64)
        regularised_gram = self._item_gram + self.params.regularization * np.eye(
            self.params.factors
        )
        vectors = np.zeros((confidences.shape[0], self.params.factors), dtype=np.float32)
        for row in range(confidences.shape[0]):
            cells = slice(confidences.indptr[row], confidences.indptr[row + 1])
            vectors[row] = _least_squares_member(
                regularised_gram,
                held_factors[cells],
                confidences.data[cells].astype(np.float64),
            )
        return vectors

    # -- persistence ---------------------------------------------------------------------------

    def _save_arrays(self, directory: Path) -> None:
        np.save(directory / "user_factors.npy", self.user_factors, allow_pickle=False)
        np.save(directory / "item_factors.npy", self.item_factors, allow_pickle=False)
        np.save(directory / "item_length_norms.npy", self.item_length_norms, allow_pickle=False)
        sp.save_npz(directory / "training_histories.npz", self.training_histories, compressed=False)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        mode = "r" if mmap else None
        self.user_factors = np.load(
            directory / "user_factors.npy", mmap_mode=mode, allow_pickle=False
        )
        self.item_factors = np.load(
            directory / "item_factors.npy", mmap_mode=mode, allow_pickle=False
        )
        self.item_length_norms = np.load(directory / "item_length_norms.npy", allow_pickle=False)
        self.training_histories = sp.load_npz(directory / "training_histories.npz").tocsr()
        self._item_gram = _gram(self.item_factors)


def _least_squares_member(
    regularised_gram: np.ndarray, held_factors: np.ndarray, confidences: np.ndarray
) -> np.ndarray:
    """One member's factors from the factors and confidences of the items they hold."""
    weight = np.abs(confidences)
    system = regularised_gram + (held_factors * (weight - 1.0)[:, None]).T @ held_factors
    target = held_factors.T @ np.where(confidences > 0, weight, 0.0)
    return np.linalg.solve(system, target)


def _gram(factors: np.ndarray) -> np.ndarray:
    """YᵀY in float64: computed once per fit or load, shared by every fold-in."""
    as_float64 = np.asarray(factors, dtype=np.float64)
    return as_float64.T @ as_float64


def _bm25_item_length_norms(matrix: sp.csr_matrix, bm25_b: float) -> np.ndarray:
    """BM25's ``(1 - B) + B * length / mean length`` per item, the length being its weight sum."""
    item_weight = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()
    return (1.0 - bm25_b) + bm25_b * item_weight / item_weight.mean()


def _non_finite_factors_error() -> ModelFitError:
    return ModelFitError(
        "NaN encountered in factors (ALS produced non-finite member or item factors); check the "
        "interaction matrix for NaN or inf weights, or lower alpha / raise regularization"
    )
