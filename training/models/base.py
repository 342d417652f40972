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

Models save plain ``.npy``/``.npz`` arrays and a ``params.json`` (never pickle), so a model
artifact can be memory-mapped and loaded by any worker.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, ClassVar, Self

import faiss
import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict
from threadpoolctl import threadpool_limits

from training.dataset import TrainingData

__all__ = [
    "ModelFitError",
    "ModelParams",
    "Recommender",
    "failure_reason",
    "popularity_tie_breaker",
    "top_n",
]

#: Score rows computed at once are capped near this many cells (float32) to bound memory.
_SCORE_CELLS_PER_BATCH = 1 << 24


class ModelFitError(RuntimeError):
    """A fit produced something unusable (NaN factors, an empty matrix)."""


def failure_reason(error: Exception) -> str:
    """The line a run records for a failed fit: our own refusals speak for themselves; any
    other error (a library's) is named by its type, which is often all its message lacks."""
    return str(error) if isinstance(error, ModelFitError) else f"{type(error).__name__}: {error}"


class ModelParams(BaseModel):
    """Hyperparameters of a model; subclasses add fields. Unknown names are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: Size of the popularity tie-breaker relative to model scores: orders items a model scores
#: equally (no evidence) by popularity without reordering items it can tell apart.
_TIE_BREAK_SCALE = 1e-4


def popularity_tie_breaker(popularity: np.ndarray) -> np.ndarray:
    """A tiny per-item score, proportional to popularity, added to every model's scores.

    Serving ranks with it and offline evaluation must too, so that the figures describe the
    lists members are shown: items a model scores alike come in popularity order, not by index.
    """
    popularity = np.asarray(popularity, dtype=np.float32)
    peak = float(popularity.max()) if popularity.size else 0.0
    return (_TIE_BREAK_SCALE * popularity / max(peak, 1e-12)).astype(np.float32)


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``n`` best finite scores per row, best first.

    Rows with fewer than ``n`` finite scores are padded with index -1 and score ``-inf``. Ties
    are broken by lower item index, so results are deterministic: lists must not depend on how
    a batch was cut, so that a precomputed list and a live answer agree.

    float32 rows stream through a heap (``faiss.kmax``), which touches every score once where
    an argpartition moves them around: 54 ms against 909 ms for 1,024 x 20,000 here, and 1.2 s
    against 14.6 s for 4,096 x 100,000. Heap and partition alike keep arbitrary items of those
    tied at the cut-off; rows where tied items did not all fit are redone exactly.
    """
    n_rows, n_items = scores.shape
    k = min(n, n_items)
    if k == 0:
        return np.full((n_rows, n), -1, np.int64), np.full((n_rows, n), -np.inf, np.float32)
    if k < n_items:
        if scores.dtype == np.float32:
            candidates, candidate_scores, cut = _heap_candidates(scores, k)
        else:
            candidates, candidate_scores, cut = _partition_candidates(scores, k)
        rows, per_chunk = np.flatnonzero(cut), max(1, _SCORE_CELLS_PER_BATCH // n_items)
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            boundary = candidate_scores[chunk].min(axis=1)
            candidates[chunk], candidate_scores[chunk] = _lowest_tied_kept(
                scores[chunk], boundary, k
            )
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


def _heap_candidates(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best ``k`` per row (ids, scores; -inf where a row has fewer finite scores) and the
    rows where items tied at the cut-off did not all fit: one more than ``k`` is asked of the
    heap, and a tie crosses the cut exactly when that extra item scores the ``k``-th's score
    (``faiss.kmax`` returns each row sorted)."""
    found, ids = faiss.kmax(np.ascontiguousarray(scores), k + 1)
    missing = ids < 0  # empty heap slots: fewer than k + 1 finite scores
    ids[missing] = 0
    found[missing] = -np.inf
    cut = np.isfinite(found[:, k - 1]) & (found[:, k] == found[:, k - 1])
    return ids[:, :k], found[:, :k], cut


def _partition_candidates(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`_heap_candidates`, by argpartition (any dtype), the cut found by counting
    the items at the cut-off score in the row and among those kept."""
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    boundary = candidate_scores.min(axis=1)
    tied = (scores == boundary[:, None]).sum(axis=1)
    cut = np.isfinite(boundary) & (tied > (candidate_scores == boundary[:, None]).sum(axis=1))
    return candidates, candidate_scores, cut


def _lowest_tied_kept(
    rows: np.ndarray, boundary: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row, given each row's cut-off score, keeping the lowest indices
    among the items tied at it (all rows at once)."""
    above_rows, above_items = np.nonzero(rows > boundary[:, None])
    tied_rows, tied_items = np.nonzero(rows == boundary[:, None])  # row-major: by index
    room = k - np.bincount(above_rows, minlength=len(rows))
    rank = np.arange(len(tied_rows)) - np.searchsorted(tied_rows, tied_rows)
    fits = rank < room[tied_rows]
    kept_rows = np.concatenate([above_rows, tied_rows[fits]])
    kept_items = np.concatenate([above_items, tied_items[fits]])
    ids = kept_items[np.argsort(kept_rows, kind="stable")].reshape(len(rows), k)
    return ids, np.take_along_axis(rows, ids, axis=1)


def _openmp_threads(threads: int | None) -> AbstractContextManager[object]:
    """OpenMP limited to ``threads`` within the block; None changes nothing and costs nothing
    (serving recommends once per request)."""
    return nullcontext() if threads is None else threadpool_limits(threads, "openmp")


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
        selection_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` item indices and scores per member, best first.

        ``exclude`` (same shape as ``histories``): nonzero cells are never recommended to that
        member. ``allowed``: a boolean mask over items; False items are never recommended.
        ``tie_breaker``: a tiny per-item score added to every row, so that items a model cannot
        tell apart (item-item models give 0 to items without evidence) come in a meaningful
        order, e.g. by popularity, instead of by index.

        Members are scored in batches of about 16M cells, so that a large catalog stays
        memory-bounded. ``selection_threads``: OpenMP threads of the top-n selection
        (``top_n``'s heaps); None leaves them as they are. An offline run over many members
        (an evaluation scores every catalog item for every sampled member: 20,000 members x
        100,000 items is 2e9 scores per model) passes 1, so that the scoring (a matrix product
        for factor models) has the cores to itself: with both thread pools active at once,
        each pool's threads spun while the other worked, which halved the speed on two cores;
        keeping them apart took ALS's lists for 20,000 members x 100,000 items from 3.4-4.1 s
        to 2.7-2.8 s.
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
            with _openmp_threads(selection_threads):
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
