"""What may be shown, and a model's best of it: the catalog filter and candidate retrieval.

Exclusions (items already purchased), the category filter and unavailable catalog items are
applied before the top-n cut, never after, so that a list holds ``n`` items whenever the
filtered catalog has that many. A model ranks through its FAISS index when it has one (one
fused scan instead of scoring the whole catalog), else by scoring the catalog with the
popularity tie-breaker, so that items it scores alike come in popularity order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.catalog import category_codes
from training.artifact import ModelArtifact
from training.index import ItemIndex
from training.models.base import popularity_tie_breaker
from training.recommend.context import rows_matrix

__all__ = ["Candidates", "catalog_flag"]


def catalog_flag(
    catalog: pl.DataFrame | None, column: str, n_items: int, default: bool
) -> np.ndarray:
    """A boolean catalog column per item (``available``, ``repeatable``), ``default`` where
    the catalog or the column is missing or the value is null."""
    if catalog is None or column not in catalog.columns:
        return np.full(n_items, default)
    return catalog.get_column(column).fill_null(default).to_numpy().astype(bool)


class Candidates:
    """The items that may be shown (available, in a category) and a model's top of them."""

    def __init__(self, artifact: ModelArtifact) -> None:
        self._artifact = artifact
        self._n_items = len(artifact.item_ids)
        #: Items the catalog offers (not discontinued).
        self.available = catalog_flag(artifact.catalog, col.AVAILABLE, self._n_items, True)
        #: The popularity tie-breaker added to every model's scores.
        self.tie_breaker = popularity_tie_breaker(artifact.popularity)
        #: Every category of the catalog, sorted, and each item's position in it (-1: none).
        self.categories, self.category_codes = _category_index(artifact.catalog, self._n_items)
        self._code_of = {name: code for code, name in enumerate(self.categories)}
        self._available_tie_breaker = self._masked(self.available)

    def allowed(self, category: str | None = None) -> np.ndarray:
        """Boolean mask of items that may be recommended (available, in ``category``)."""
        if category is None:
            return self.available
        code = self._code_of.get(category)
        if code is None:
            return np.zeros_like(self.available)
        return self.available & (self.category_codes == code)

    def top(
        self,
        name: str,
        members: np.ndarray,
        histories: sp.csr_matrix,
        excluded: Sequence[np.ndarray],
        depth: int,
        category: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Model ``name``'s top ``depth`` allowed, unexcluded items per member, -1 where it has
        none. From its FAISS index (:meth:`_searched`) when it has an inner-product one, its
        member vectors are not all zeros (every item would tie: the popularity tie-breaker must
        order them) and there is no category (an index cannot filter one); else by scoring the
        catalog with the popularity tie-breaker."""
        model = self._artifact.model(name)
        index = self._artifact.indexes.get(name) if category is None else None
        if index is not None and index.metric == "ip":
            vectors = model.member_vectors(members, histories)
            if vectors is not None and np.abs(vectors).max(axis=1).all():
                found = self._searched(index, vectors, excluded, depth)
                if found is not None:
                    return found
        tie_breaker = (
            self._available_tie_breaker
            if category is None
            else self._masked(self.allowed(category))
        )
        return model.recommend(
            members,
            histories,
            depth,
            exclude=rows_matrix([(items, None) for items in excluded], self._n_items),
            tie_breaker=tie_breaker,
        )

    def capped(self, ids: np.ndarray, n: int, cap: int) -> np.ndarray:
        """Positions of the first ``n`` of a ranked list with at most ``cap`` items per
        category, in rank order; items without a category are not capped. When the list
        cannot fill ``n`` within the cap, the best of the items passed over complete it
        (exactly ``n`` comes first)."""
        taken: dict[int, int] = {}
        chosen: list[int] = []
        passed_over: list[int] = []
        codes = self.category_codes[np.maximum(ids, 0)].tolist()
        for position, (item, code) in enumerate(zip(ids.tolist(), codes, strict=True)):
            if item < 0 or len(chosen) == n:
                break
            if code >= 0 and taken.get(code, 0) >= cap:
                passed_over.append(position)
                continue
            taken[code] = taken.get(code, 0) + 1
            chosen.append(position)
        return np.array(chosen + passed_over[: n - len(chosen)], dtype=np.int64)

    def _masked(self, allowed: np.ndarray) -> np.ndarray:
        """The tie-breaker with ``-inf`` on items that may not be shown: adding it to the scores
        applies the popularity order and the filter in one vector operation per request."""
        return np.where(allowed, self.tie_breaker, -np.inf).astype(np.float32)

    def _searched(
        self, index: ItemIndex, vectors: np.ndarray, excluded: Sequence[np.ndarray], depth: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The top ``depth`` available, unexcluded items of members (``vectors``) from the
        model's FAISS index (exact search below 50,000 items): one fused scan instead of scoring
        the whole catalog and sorting it, which keeps a serving request within milliseconds.

        The index holds the model's item vectors, so inner products with its member vectors
        are its scores. Excluded and unavailable items are dropped from an over-fetch; None
        (the caller then scores exactly) when the over-fetch cannot fill a row that the
        catalog could.
        """
        fetch = min(self._n_items, 2 * depth + max(len(items) for items in excluded))
        found, found_scores = index.search(vectors, fetch)
        ids = np.full((len(vectors), depth), -1, dtype=np.int64)
        scores = np.full((len(vectors), depth), -np.inf, dtype=np.float32)
        for row, (row_ids, row_excluded) in enumerate(zip(found, excluded, strict=True)):
            keep = (row_ids >= 0) & self.available[row_ids] & ~np.isin(row_ids, row_excluded)
            kept = np.flatnonzero(keep)[:depth]
            if len(kept) < min(depth, self._n_items - len(row_excluded)):
                return None
            ids[row, : len(kept)] = row_ids[kept]
            scores[row, : len(kept)] = found_scores[row, kept]
        return ids, scores


def _category_index(catalog: pl.DataFrame | None, n_items: int) -> tuple[list[str], np.ndarray]:
    """Category names and one code per item (-1: no category), for fast masks and caps."""
    if catalog is None or col.CATEGORY not in catalog.columns:
        return [], np.full(n_items, -1, dtype=np.int32)
    return category_codes(catalog.get_column(col.CATEGORY))
