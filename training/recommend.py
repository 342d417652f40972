"""Answering "what should these members see?" from a loaded bundle, for any caller.

The CLI (`recsys recommend`), campaign exports and the API all answer through
:class:`BundleRecommender`, so that the rules are the same everywhere:

* a member the bundle knows is scored by the requested model (default: the chosen one);
* a member it does not know gets popularity (of their segment when known), flagged ``fallback``;
* exclusions (items already purchased), the category filter and unavailable catalog items
  are applied before the top-n cut, never after, and a list that a model could not fill is
  completed from popularity, so every list holds exactly ``n`` distinct items whenever the
  filtered catalog has that many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from training.bundle import Bundle
from training.models.base import top_n

__all__ = ["FALLBACK_MODEL", "BundleRecommender", "Recommendation"]

#: Size of the popularity tie-breaker relative to model scores: orders items a model scores
#: equally (no evidence) by popularity without reordering items it can tell apart.
_TIE_BREAK_SCALE = 1e-4

#: The name reported for lists that popularity answered alone (members the bundle lacks).
FALLBACK_MODEL = "popular"


@dataclass(frozen=True)
class Recommendation:
    """One member's list, best first."""

    member_id: str
    item_ids: list[str]
    scores: list[float]
    model: str
    #: True when popularity answered instead of the model (unknown member), or filled the
    #: slots the model left empty.
    fallback: bool


class BundleRecommender:
    """Batch recommendations from a bundle, with filters and popularity fallback."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._available = self._available_items(bundle.catalog, len(bundle.item_ids))
        popularity = np.asarray(bundle.popularity, dtype=np.float32)
        self._tie_breaker = _TIE_BREAK_SCALE * popularity / max(float(popularity.max()), 1e-12)
        self._categories = (
            bundle.catalog.get_column(col.CATEGORY)
            if bundle.catalog is not None and col.CATEGORY in bundle.catalog.columns
            else None
        )

    @staticmethod
    def _available_items(catalog: pl.DataFrame | None, n_items: int) -> np.ndarray:
        if catalog is None or col.AVAILABLE not in catalog.columns:
            return np.ones(n_items, dtype=bool)
        return catalog.get_column(col.AVAILABLE).fill_null(True).to_numpy().astype(bool)

    def allowed_items(self, category: str | None = None) -> np.ndarray:
        """Boolean mask of items that may be recommended (available, in ``category``)."""
        if category is None:
            return self._available
        if self._categories is None:
            return np.zeros_like(self._available)
        return self._available & (self._categories == category).fill_null(False).to_numpy()

    def recommend(
        self,
        member_ids: Sequence[str],
        n: int,
        *,
        model: str | None = None,
        category: str | None = None,
        exclude_purchased: bool = True,
    ) -> list[Recommendation]:
        """Top-``n`` lists for ``member_ids`` (in the same order)."""
        name = model or self.bundle.chosen
        recommender = self.bundle.model(name)
        indices = self.bundle.member_ids.to_internal(list(member_ids), strict=False)
        known = indices >= 0
        allowed = self.allowed_items(category)
        exclude = self._exclusions(indices, exclude_purchased)
        ids = np.full((len(indices), n), -1, dtype=np.int64)
        scores = np.full((len(indices), n), -np.inf, dtype=np.float32)
        if known.any():
            rows = np.flatnonzero(known)
            ids[rows], scores[rows] = recommender.recommend(
                indices[rows],
                self.bundle.histories[indices[rows]],
                n,
                exclude=exclude[rows],
                allowed=allowed,
                tie_breaker=self._tie_breaker,
            )
        fallback = ~known | (ids < 0).any(axis=1)
        for row in np.flatnonzero(fallback):
            ids[row], scores[row] = self._fill_from_popularity(
                ids[row], scores[row], indices[row], exclude[row], allowed
            )
        external = self.bundle.item_ids.external_ids
        return [
            Recommendation(
                member_id=member_id,
                item_ids=external[row_ids[row_ids >= 0]].tolist(),
                scores=row_scores[row_ids >= 0].tolist(),
                model=name if is_known else FALLBACK_MODEL,
                fallback=bool(is_fallback),
            )
            for member_id, row_ids, row_scores, is_known, is_fallback in zip(
                member_ids, ids, scores, known, fallback, strict=True
            )
        ]

    def _exclusions(self, indices: np.ndarray, exclude_purchased: bool) -> sp.csr_matrix:
        """Rows of purchased items per member (empty rows for unknown members or when off)."""
        n_items = len(self.bundle.item_ids)
        if not exclude_purchased:
            return sp.csr_matrix((len(indices), n_items), dtype=np.float32)
        purchases = self.bundle.purchases[np.maximum(indices, 0)].tocsr()
        only_known = sp.diags((indices >= 0).astype(np.float32))
        return (only_known @ purchases).tocsr()

    def popularity_of(self, member_index: int) -> np.ndarray:
        """Segment popularity for a known member with a segment, else global popularity."""
        segments = self.bundle.member_segments
        if (
            member_index >= 0
            and segments is not None
            and self.bundle.segment_popularity is not None
        ):
            code = int(segments[member_index])
            if code >= 0:
                return np.asarray(self.bundle.segment_popularity[code], dtype=np.float32)
        return np.asarray(self.bundle.popularity, dtype=np.float32)

    def _fill_from_popularity(
        self,
        row_ids: np.ndarray,
        row_scores: np.ndarray,
        member_index: int,
        exclude: sp.csr_matrix,
        allowed: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Complete a list's empty slots with the most popular allowed, unseen, unlisted items.

        Popularity scores are offset below the model's lowest score so the list stays sorted.
        """
        n = len(row_ids)
        kept = row_ids[row_ids >= 0]
        candidates = self.popularity_of(member_index).copy()
        candidates += self._tie_breaker  # items a segment never bought: by global popularity
        candidates[~allowed] = -np.inf
        candidates[exclude.indices] = -np.inf
        candidates[kept] = -np.inf
        fill_ids, fill_scores = top_n(candidates[None, :], n - len(kept))
        fill_ids, fill_scores = fill_ids[0], fill_scores[0]
        found = np.isfinite(fill_scores)
        if len(kept) and found.any():
            floor = float(row_scores[: len(kept)].min())
            fill_scores[found] = floor - 1.0 - (fill_scores[found].max() - fill_scores[found])
        ids = np.concatenate([kept, fill_ids])
        scores = np.concatenate([row_scores[: len(kept)], fill_scores]).astype(np.float32)
        return ids, scores
