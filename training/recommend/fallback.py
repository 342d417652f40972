"""Popularity answers: what a member with nothing to go on sees, and what completes a list.

A member the models cannot score gets popularity (of their segment when known), and a list a
model could not fill is completed from it, so that every list holds exactly ``n`` distinct
items whenever the filtered catalog has that many.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.artifact import ModelArtifact
from training.models.base import top_n
from training.recommend.context import NO_CONTEXT, MemberContext

__all__ = ["PopularityFallback"]


class PopularityFallback:
    """The artifact's popularity (global and per segment), to answer and complete lists.

    ``tie_breaker`` (the one the models rank with) orders the items a segment never bought
    by global popularity."""

    def __init__(self, artifact: ModelArtifact, tie_breaker: np.ndarray) -> None:
        self._artifact = artifact
        self._tie_breaker = tie_breaker

    def of(self, member_index: int, context: MemberContext = NO_CONTEXT) -> np.ndarray:
        """Popularity of the member's segment (from the artifact, else the context), else
        global popularity."""
        segments = self._artifact.member_segments
        code = context.segment
        if member_index >= 0 and segments is not None:
            code = int(segments[member_index])
        if code is not None and code >= 0 and self._artifact.segment_popularity is not None:
            return np.asarray(self._artifact.segment_popularity[code], dtype=np.float32)
        return np.asarray(self._artifact.popularity, dtype=np.float32)

    def complete(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        members: np.ndarray,
        contexts: Sequence[MemberContext] | None,
        excluded: Sequence[np.ndarray],
        allowed: np.ndarray,
    ) -> np.ndarray:
        """Fill, in place, the empty slots (-1) of every member's row of ``ids`` and ``scores``
        from the member's popularity (``members``: internal indices, -1 when unknown; None
        ``contexts``: none). Returns per row how many items the model had ranked."""
        from_model = (ids >= 0).sum(axis=1)
        for row in np.flatnonzero(from_model < ids.shape[1]).tolist():
            context = contexts[row] if contexts is not None else NO_CONTEXT
            ids[row], scores[row] = self.fill(
                ids[row], scores[row], self.of(int(members[row]), context), excluded[row], allowed
            )
        return from_model

    def fill(
        self,
        row_ids: np.ndarray,
        row_scores: np.ndarray,
        popularity: np.ndarray,
        excluded: np.ndarray,
        allowed: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Complete a list's empty slots with the most popular allowed, unseen, unlisted items.

        Popularity scores are offset below the model's lowest score so the list stays sorted.
        """
        n = len(row_ids)
        kept = row_ids[row_ids >= 0]
        candidates = popularity + self._tie_breaker  # items a segment never bought: by global
        candidates[~allowed] = -np.inf
        candidates[excluded] = -np.inf
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
