"""The one interface every recommender implements, batch-first on internal indices.

A model is fit on :class:`~training.dataset.TrainingData` and then answers for a *batch* of
members at once. The caller passes each member's interaction history as a row of a CSR matrix;
models that can fold a history in (item-item models, ALS, content) use it, so a member with new
events gets a fresh answer without retraining, and a member unknown at fit time (index -1) is
scored from the history alone.

Filtering and top-n selection live here, once: models only produce dense scores. Excluded items
(e.g. already purchased) and items outside an allowed mask (e.g. a category) get ``-inf`` and
never appear; each row holds exactly ``n`` items when that many remain, padded with ``-1`` ids
and ``-inf`` scores otherwise.

Models save plain ``.npy``/``.npz`` arrays and a ``params.json`` (never pickle), so a bundle can
be memory-mapped and loaded by any worker.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict

from training.dataset import TrainingData

__all__ = ["ModelFitError", "ModelParams", "Recommender", "top_n"]

#: Score rows computed at once are capped near this many cells (float32) to bound memory.
_SCORE_CELLS_PER_BATCH = 1 << 24


class ModelFitError(RuntimeError):
    """A fit produced something unusable (NaN factors, an empty matrix)."""


class ModelParams(BaseModel):
    """Hyperparameters of a model; subclasses add fields. Unknown names are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``n`` best finite scores per row, best first.

    Rows with fewer than ``n`` finite scores are padded with index -1 and score ``-inf``. Ties
    are broken by lower item index, so results are deterministic.
    """
    n_rows, n_items = scores.shape
    k = min(n, n_items)
    if k == 0:
        return np.full((n_rows, n), -1, np.int64), np.full((n_rows, n), -np.inf, np.float32)
    if k < n_items:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        candidate_scores = np.take_along_axis(scores, candidates, axis=1)
        _keep_lowest_tied(scores, candidates, candidate_scores)
    else:
        candidates = np.broadcast_to(np.arange(n_items), (n_rows, n_items))
        candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    ids = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    best = np.take_along_axis(candidate_scores, order, axis=1).astype(np.float32)
    ids[~np.isfinite(best)] = -1
    if k < n:
        ids = np.pad(ids, ((0, 0), (0, n - k)), constant_values=-1)
        best = np.pad(best, ((0, 0), (0, n - k)), constant_values=-np.inf)
    return ids, best


def _keep_lowest_tied(
    scores: np.ndarray, candidates: np.ndarray, candidate_scores: np.ndarray
) -> None:
    """Where items tied at the cut-off score did not all fit, make the lowest indices the ones
    kept (``argpartition`` keeps arbitrary ones): lists must not depend on how a batch was cut,
    so that a precomputed list and a live answer agree. Rows with such ties are rare (items
    without evidence); they are redone one by one, in place."""
    boundary = candidate_scores.min(axis=1)
    at_boundary = scores == boundary[:, None]
    cut = at_boundary.sum(axis=1) > (candidate_scores == boundary[:, None]).sum(axis=1)
    for row in np.flatnonzero(cut & np.isfinite(boundary)):
        above = np.flatnonzero(scores[row] > boundary[row])
        tied = np.flatnonzero(at_boundary[row])[: candidates.shape[1] - len(above)]
        candidates[row] = np.concatenate([above, tied])
        candidate_scores[row] = scores[row, candidates[row]]


class Recommender(ABC):
    """Base class: subclasses implement ``fit``, ``score``, ``item_vectors`` or
    ``similar_items``, and the array (de)serialisation hooks."""

    name: ClassVar[str]
    Params: ClassVar[type[ModelParams]] = ModelParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        base = (params or self.Params()).model_dump()
        self.params = self.Params.model_validate({**base, **overrides})
        self.n_items = 0

    # -- to implement ------------------------------------------------------------------------

    @abstractmethod
    def fit(self, data: TrainingData) -> Self:
        """Learn from ``data``; returns ``self``."""

    @abstractmethod
    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Dense float32 scores, ``len(members) x n_items``; higher is better.

        ``members`` are internal member indices (-1: unknown at fit time); row i of
        ``histories`` is member i's interaction history over the model's items.
        """

    @abstractmethod
    def _save_arrays(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_arrays(self, directory: Path, mmap: bool) -> None: ...

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most similar items to each of ``items`` (the item itself excluded).

        The default uses :meth:`item_vectors` with cosine similarity; item-item models override.
        """
        vectors = self.item_vectors()
        if vectors is None:
            raise NotImplementedError(f"{self.name} has no notion of item similarity")
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        unit = vectors / norms[:, None]
        scores = unit[np.asarray(items)] @ unit.T
        scores[np.arange(len(items)), items] = -np.inf
        return top_n(scores.astype(np.float32), n)

    def item_vectors(self) -> np.ndarray | None:
        """Item embeddings for FAISS (inner product with :meth:`member_vectors`), if any."""
        return None

    def member_vectors(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray | None:
        """Member embeddings such that ``member_vectors @ item_vectors().T`` ranks like
        :meth:`score` (factor models only; used for FAISS retrieval)."""
        return None

    # -- shared --------------------------------------------------------------------------------

    def recommend(
        self,
        members: np.ndarray,
        histories: sp.csr_matrix,
        n: int,
        exclude: sp.csr_matrix | None = None,
        allowed: np.ndarray | None = None,
        tie_breaker: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` item indices and scores per member, best first.

        ``exclude`` (same shape as ``histories``): nonzero cells are never recommended to that
        member. ``allowed``: a boolean mask over items; False items are never recommended.
        ``tie_breaker``: a tiny per-item score added to every row, so that items a model cannot
        tell apart (item-item models give 0 to items without evidence) come in a meaningful
        order, e.g. by popularity, instead of by index.
        """
        members = np.asarray(members, dtype=np.int64)
        batch = max(1, _SCORE_CELLS_PER_BATCH // max(self.n_items, 1))
        ids, scores = [], []
        for start in range(0, len(members), batch):
            stop = start + batch
            block = np.asarray(self.score(members[start:stop], histories[start:stop]), np.float32)
            if tie_breaker is not None:
                block += tie_breaker
            if allowed is not None:
                block[:, ~allowed] = -np.inf
            if exclude is not None:
                rows, cols = exclude[start:stop].nonzero()
                block[rows, cols] = -np.inf
            block_ids, block_scores = top_n(block, n)
            ids.append(block_ids)
            scores.append(block_scores)
        if not ids:
            return np.empty((0, n), np.int64), np.empty((0, n), np.float32)
        return np.vstack(ids), np.vstack(scores)

    def get_params(self) -> dict[str, Any]:
        """Flat, JSON-friendly hyperparameters (for MLflow ``log_params``)."""
        return self.params.model_dump(mode="json")

    def save(self, directory: Path) -> None:
        """Write ``params.json`` and the model's arrays into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "params": self.get_params(), "n_items": self.n_items}
        (directory / "params.json").write_text(json.dumps(meta, indent=2))
        self._save_arrays(directory)

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> Self:
        """Read a model written by :meth:`save`; large arrays are memory-mapped when ``mmap``."""
        meta = json.loads((directory / "params.json").read_text())
        if meta["model"] != cls.name:
            raise ValueError(f"{directory} holds a {meta['model']!r} model, not {cls.name!r}")
        model = cls(cls.Params.model_validate(meta["params"]))
        model.n_items = int(meta["n_items"])
        model._load_arrays(directory, mmap)
        return model
