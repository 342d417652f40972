"""Nearest members: the one neighbour search of the member-based models (user_knn, tifu_knn).

A :class:`MemberNeighbours` holds the members' rows (members x items, sparse: histories for
user-based CF, time-decayed vectors for TIFU-KNN) and answers "which stored rows are nearest
to these query rows" for *any* query rows: a member's own row, a member unknown at fit time,
a history with live events. Two metrics:

- ``"cosine"``: cosine similarity; members sharing nothing with the query (similarity 0) are
  no neighbours at all, so a row may have fewer than ``k`` (padded with id -1).
- ``"euclidean"``: the distance TIFU-KNN's authors search by (scikit-learn's brute-force
  ``NearestNeighbors``); every member is a candidate, sharing items or not. Scores are minus
  the squared distance, so that for both metrics a higher score is a nearer member.

Two ways to search, by the number of stored members:

- below ``exact_below`` (:data:`EXACT_BELOW`): exact, brute force. A block of queries is
  multiplied with every stored row (``Q @ Xᵀ``, a sparse product against the stored
  transpose), densified (queries x members, at most ~16M cells, 64 MiB of float32, so memory
  does not grow with the store) and cut to the best ``k`` by ``top_n``. Members sharing
  nothing with a query keep the inner product 0 the metric needs of them. The member itself
  is found (cosine 1, distance 0) unless a caller drops it.
- from ``exact_below`` on: FAISS. The rows are embedded into ``dimensions`` dimensions by a
  seeded truncated SVD (scikit-learn's randomised solver: a linear map, so any query row is
  embedded the same way), indexed with :class:`training.index.ItemIndex` (HNSW by default),
  and the ``oversample x k`` candidates it returns are re-scored exactly on the sparse rows,
  so the scores returned are always exact and only the candidate set is approximate.
  Euclidean search ranks by ``e_q·e - |x|²/2`` (``e`` a row's embedding, ``|x|`` its exact
  norm), which orders members as ``-|q - x|²`` does with the inner product approximated by
  the embeddings'; the index holds it as a cosine (see :meth:`_stored_vectors`).

Nothing of size members x k is kept: callers search per scoring batch. Everything is saved as
plain arrays (memory-mapped on load) and FAISS's own index file, never pickle.
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field
from sklearn.decomposition import TruncatedSVD
from sklearn.utils.extmath import safe_sparse_dot

from training.index import IndexConfig, ItemIndex
from training.models.base import top_n
from training.models.sparse_arrays import load_csr, save_csr

__all__ = ["EXACT_BELOW", "MemberNeighbours", "Metric", "NeighbourConfig", "neighbour_weights"]

Metric = Literal["cosine", "euclidean"]
SearchKind = Literal["exact", "faiss"]

#: Stores with at least this many members are searched through FAISS. Measured
#: (benchmarks/neighbours.py, docs/models.md): up to 100,000 members exact costs about what
#: FAISS does for any pass and finds every neighbour, where FAISS finds 26-36% of user_knn's and
#: 67-73% of tifu_knn's; from about 200,000 a pass over every member (the artifact's lists)
#: costs exact twice what it costs FAISS, and the gap grows with the members.
EXACT_BELOW = 200_000

#: Cells of one dense block of query x member scores (float32: 64 MiB).
_CELLS_PER_BLOCK = 1 << 24

_META_FILE = "neighbours.json"
_INDEX_DIR = "index"


class NeighbourConfig(BaseModel):
    """When to use FAISS and how. ``oversample``: FAISS candidates per neighbour asked for,
    re-scored exactly (more: better recall, slower). ``index``: the FAISS index itself, as
    :class:`~training.index.IndexConfig` describes it (its own ``exact_below`` counts
    members here: below it FAISS searches the embeddings exhaustively)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exact_below: int = Field(default=EXACT_BELOW, ge=0)
    dimensions: int = Field(default=64, ge=1)
    oversample: int = Field(default=3, ge=1)
    index: IndexConfig = IndexConfig()
    seed: int = 42


class MemberNeighbours:
    """The ``k`` nearest stored rows of any query rows; see the module docstring."""

    def __init__(
        self,
        rows: sp.csr_matrix,
        metric: Metric,
        config: NeighbourConfig,
        projection: np.ndarray | None = None,
        index: ItemIndex | None = None,
        columns: sp.csr_matrix | None = None,
    ) -> None:
        #: The stored rows, members x items (float32 CSR), as the model gave them.
        self.rows = rows
        self.metric: Metric = metric
        self.config = config
        #: items x dimensions embedding map (FAISS search only).
        self.projection = projection
        self._index = index
        #: The transpose, items x members (CSR): the right-hand side of the exact products and
        #: the item columns of :meth:`similar_items`.
        self.columns = rows.T.tocsr() if columns is None else columns
        self.squared_norms = _squared_row_norms(rows)

    @classmethod
    def build(
        cls, rows: sp.csr_matrix, metric: Metric, config: NeighbourConfig | None = None
    ) -> MemberNeighbours:
        """Index ``rows`` (members x items): exact below ``config.exact_below`` members,
        else FAISS over their SVD embedding."""
        config = config or NeighbourConfig()
        canonical = sp.csr_matrix(rows, dtype=np.float32, copy=True)
        canonical.sum_duplicates()
        n_rows, n_items = canonical.shape
        if n_rows < max(config.exact_below, 1) or n_items < 2:
            return cls(canonical, metric, config)
        prepared = _unit_rows(canonical) if metric == "cosine" else canonical
        dimensions = min(config.dimensions, n_items - 1)
        svd = TruncatedSVD(n_components=dimensions, random_state=config.seed)
        svd.fit(prepared)
        projection = np.ascontiguousarray(svd.components_.T, dtype=np.float32)
        neighbours = cls(canonical, metric, config, projection=projection)
        neighbours._index = ItemIndex.build(
            neighbours._stored_vectors(np.asarray(prepared @ projection, dtype=np.float32)),
            config.index,
            metric="cosine",
        )
        return neighbours

    @property
    def kind(self) -> SearchKind:
        return "exact" if self._index is None else "faiss"

    @property
    def n_rows(self) -> int:
        return int(self.rows.shape[0])

    # -- search --------------------------------------------------------------------------------

    def search(self, queries: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Member indices (int64) and scores (float32) of the ``k`` nearest stored rows per
        query row, nearest first; padded with id -1 and score ``-inf``.

        Scores: cosine similarity, or minus the squared Euclidean distance. Ties go to the
        lower member index (``top_n``), so answers do not depend on how queries are batched.
        """
        queries = sp.csr_matrix(queries, dtype=np.float32)
        if queries.shape[1] != self.rows.shape[1]:
            raise ValueError(
                f"query rows have {queries.shape[1]} items, the stored rows {self.rows.shape[1]}"
            )
        search_block = self._exact_block if self.kind == "exact" else self._faiss_block
        per_block = self._queries_per_block(k)
        ids, scores = [], []
        for start in range(0, queries.shape[0], per_block):
            block_ids, block_scores = search_block(queries[start : start + per_block], k)
            ids.append(block_ids)
            scores.append(block_scores)
        if not ids:
            return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        return np.vstack(ids), np.vstack(scores)

    def _queries_per_block(self, k: int) -> int:
        """Queries searched together, so that a block's score table stays within
        ``_CELLS_PER_BLOCK``: queries x every member (exact), or queries x the distinct FAISS
        candidates of the block, at most queries x queries x candidates each (FAISS)."""
        if self.kind == "exact":
            return max(1, _CELLS_PER_BLOCK // max(self.n_rows, 1))
        return max(1, math.isqrt(_CELLS_PER_BLOCK // max(self._fetched(k), 1)))

    def _fetched(self, k: int) -> int:
        """FAISS candidates asked for per query: ``oversample`` per neighbour."""
        return min(self.n_rows, self.config.oversample * k)

    def _exact_block(self, queries: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every stored row scored against a block of queries (dense, queries x members),
        the best ``k`` kept. The product leaves the members sharing nothing with a query at
        inner product 0, which is what the metric needs of them: no neighbour for cosine,
        ``|q|² + |x|²`` away for Euclidean. scikit-learn's ``safe_sparse_dot`` writes a
        sparse x sparse product straight into a dense table (its
        ``sparse_matmul_to_dense``), three times faster here than scipy's sparse product
        densified."""
        keys = self._keyed(
            safe_sparse_dot(queries, self.columns, dense_output=True), self._member_scale[None, :]
        )
        best, best_keys = top_n(keys, k)
        return self._from_keys(queries, best, best_keys)

    def _faiss_block(self, queries: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS candidates for a block of queries, re-scored exactly, the best ``k`` kept."""
        assert self._index is not None and self.projection is not None
        prepared = _unit_rows(queries) if self.metric == "cosine" else queries
        embedded = np.asarray(prepared @ self.projection, dtype=np.float32)
        candidates, _ = self._index.search(self._query_vectors(embedded), self._fetched(k))
        found = candidates >= 0
        candidates = np.where(found, candidates, 0)
        # Each distinct candidate of the block is scored once against every query of it.
        distinct, positions = np.unique(candidates, return_inverse=True)
        dots_by_distinct = np.asarray((queries @ self.rows[distinct].T).toarray(), np.float32)
        dots = np.take_along_axis(dots_by_distinct, positions.reshape(candidates.shape), axis=1)
        keys = self._keyed(dots, self._member_scale[candidates])
        keys[~found] = -np.inf
        best, best_keys = top_n(keys, k)
        ids = np.where(best >= 0, np.take_along_axis(candidates, np.maximum(best, 0), axis=1), -1)
        return self._from_keys(queries, ids, best_keys)

    @cached_property
    def _member_scale(self) -> np.ndarray:
        """Per stored row, what turns an inner product with a query into a key that ranks
        the row for that query as the metric does: ``1 / |x|`` for cosine (``dot · 1/|x|``;
        the query's own ``1/|q|`` is the same for the whole row, applied to the ``k`` kept
        in :meth:`_from_keys`), ``|x|² / 2`` for Euclidean (``dot - |x|²/2``, which is
        ``(|q|² - |q - x|²) / 2``)."""
        if self.metric == "cosine":
            return (1.0 / np.sqrt(np.maximum(self.squared_norms, 1e-30))).astype(np.float32)
        return (0.5 * self.squared_norms).astype(np.float32)

    def _keyed(self, dots: np.ndarray, member_scale: np.ndarray) -> np.ndarray:
        """Inner products -> ranking keys (in place), with each cell's :attr:`_member_scale`."""
        if self.metric == "cosine":
            dots *= member_scale
        else:
            dots -= member_scale
        return dots

    def _from_keys(
        self, queries: sp.csr_matrix, ids: np.ndarray, keys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The kept keys as the metric's scores: cosine similarity (a key of 0 or less shares
        nothing with the query: no neighbour, id -1), or minus the squared distance."""
        query_squared_norms = _squared_row_norms(queries)[:, None]
        if self.metric == "euclidean":
            return ids, (2.0 * keys - query_squared_norms).astype(np.float32)
        scores = keys / np.sqrt(np.maximum(query_squared_norms, 1e-30))
        shared = scores > 0
        return np.where(shared, ids, -1), np.where(shared, scores, -np.inf).astype(np.float32)

    def _stored_vectors(self, embedded: np.ndarray) -> np.ndarray:
        """What the FAISS index holds: the embeddings (cosine), or for Euclidean
        ``[e, -|x|²/2, s]``: ``e`` the embedding, ``|x|`` the row's exact norm (only the inner
        product is approximated), and ``s`` the length that brings every stored vector to the
        same norm, so that the index's cosine ranks like the inner product with ``[e_q, 1, 0]``
        (HNSW keeps its recall on unit vectors, not on raw inner products)."""
        if self.metric == "cosine":
            return embedded
        inner = np.hstack([embedded, -0.5 * self.squared_norms[:, None]]).astype(np.float64)
        lengths = np.einsum("ij,ij->i", inner, inner)
        padding = np.sqrt(np.maximum(lengths.max(initial=0.0) - lengths, 0.0))
        return np.hstack([inner, padding[:, None]]).astype(np.float32)

    def _query_vectors(self, embedded: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return embedded
        ones, zeros = np.ones((len(embedded), 1)), np.zeros((len(embedded), 1))
        return np.hstack([embedded, ones, zeros]).astype(np.float32)

    # -- items ---------------------------------------------------------------------------------

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items whose columns are most like each item's (cosine over the stored
        rows: held by the same members); items sharing no member are not similar (-inf), and
        the item itself never comes back."""
        items = np.asarray(items, dtype=np.int64)
        dots = np.asarray((self.columns[items] @ self.rows).toarray(), dtype=np.float32)
        norms = self._item_norms
        shared = dots > 0
        dots /= np.maximum(norms[items], 1e-30)[:, None]
        dots /= np.maximum(norms, 1e-30)[None, :]
        dots[~shared] = -np.inf
        dots[np.arange(len(items)), items] = -np.inf
        return top_n(dots, n)

    @cached_property
    def _item_norms(self) -> np.ndarray:
        return np.sqrt(_squared_row_norms(self.columns))

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the rows, their transpose, the embedding map and the FAISS index (if any)."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "metric": self.metric,
            "kind": self.kind,
            "shape": list(self.rows.shape),
            "config": self.config.model_dump(mode="json"),
        }
        (directory / _META_FILE).write_text(json.dumps(meta, indent=2))
        save_csr(directory, "rows", self.rows)
        save_csr(directory, "columns", self.columns)
        if self._index is not None and self.projection is not None:
            np.save(directory / "projection.npy", self.projection, allow_pickle=False)
            self._index.save(directory / _INDEX_DIR)

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> MemberNeighbours:
        """Read what :meth:`save` wrote; with ``mmap`` the arrays (and the FAISS vectors) stay
        on disk, shared by every process that maps them."""
        meta = json.loads((directory / _META_FILE).read_text())
        n_rows, n_items = meta["shape"]
        rows = load_csr(directory, "rows", n_items, mmap)
        columns = load_csr(directory, "columns", n_rows, mmap)
        config = NeighbourConfig.model_validate(meta["config"])
        if meta["kind"] == "exact":
            return cls(rows, meta["metric"], config, columns=columns)
        projection = np.load(
            directory / "projection.npy", mmap_mode="r" if mmap else None, allow_pickle=False
        )
        index = ItemIndex.load(directory / _INDEX_DIR, mmap)
        return cls(rows, meta["metric"], config, projection, index, columns)


def neighbour_weights(
    ids: np.ndarray, weights: np.ndarray, k: int, n_members: int, drop: np.ndarray | None = None
) -> sp.csr_matrix:
    """Queries x members (CSR): each query's first ``k`` found neighbours (ids -1 are none)
    with their weight, skipping ``drop[q]`` (the query's own member index, -1: none), so that
    ``weights @ rows`` sums the neighbours' rows."""
    found = ids >= 0
    if drop is not None:
        found &= ids != np.asarray(drop)[:, None]
    found &= np.cumsum(found, axis=1) <= k
    query_rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)
    return sp.csr_matrix(
        (weights[found].astype(np.float32), (query_rows[found], ids[found])),
        shape=(len(ids), n_members),
    )


def _squared_row_norms(matrix: sp.csr_matrix) -> np.ndarray:
    """Σ x² per row (float32), in one pass over the stored values."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    squares = np.square(np.asarray(matrix.data, dtype=np.float64))
    return np.bincount(rows, weights=squares, minlength=matrix.shape[0]).astype(np.float32)


def _unit_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to length 1 (all-zero rows stay zero)."""
    norms = np.sqrt(_squared_row_norms(matrix))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix, dtype=np.float32)
