"""Most-popular items: the non-personalised baseline and the serving fallback.

Every collaborative model has to beat this to be worth deploying, and serving falls back to it
for members with no usable history, which is why the score tables (:attr:`global_scores`,
:attr:`segment_scores`) are public attributes saved as memory-mappable ``.npy`` files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from features import columns as col
from features.times import days_before
from training.dataset import TrainingData, history_matrix
from training.models.base import ModelParams, Recommender

__all__ = ["PopularityParams", "PopularityRecommender", "fallback_popularity"]


class PopularityParams(ModelParams):
    """What counts as popular.

    ``window_days``: only events in the last N days before the data's reference time count
    (None: all), so a seasonal catalogue can follow current demand. ``by_segment``: members of a
    known segment get their segment's popularity instead of the global one. ``weighting``:
    ``"members"`` counts distinct members per item (robust to a few bulk buyers), ``"events"``
    sums matrix weights (favours items bought often and with stronger events).
    """

    window_days: float | None = Field(default=None, gt=0)
    by_segment: bool = False
    weighting: Literal["members", "events"] = "members"


class PopularityRecommender(Recommender):
    """Scores every item by its popularity; all members of a segment get the same row."""

    name = "popular"
    Params = PopularityParams
    params: PopularityParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        #: Popularity of each item over all members (float32, one value per item).
        self.global_scores = np.zeros(0, dtype=np.float32)
        #: Popularity of each item within each segment (segments x items, float32).
        self.segment_scores = np.zeros((0, 0), dtype=np.float32)
        #: Segment index per member index (-1: none); empty unless ``by_segment``.
        self.member_segments = np.zeros(0, dtype=np.int32)

    def fit(self, data: TrainingData) -> Self:
        """Count each item's popularity globally and, when asked for, per segment."""
        counted = self._counted_matrix(data)
        self.n_items = data.n_items
        self.global_scores = np.asarray(counted.sum(axis=0), dtype=np.float32).ravel()
        use_segments = self.params.by_segment and data.member_segments is not None
        self.member_segments = (
            np.asarray(data.member_segments, dtype=np.int32)
            if use_segments
            else np.zeros(0, dtype=np.int32)
        )
        n_segments = len(data.segment_names) if use_segments else 0
        self.segment_scores = _segment_totals(counted, self.member_segments, n_segments)
        return self

    def _counted_matrix(self, data: TrainingData) -> sp.csr_matrix:
        """Members x items evidence in the window: 1 per member-item pair, or the weights.

        With a window the matrix is rebuilt from the recent interactions with the default event
        weights and no decay, because :class:`TrainingData` does not record the weights its
        matrix was built with; ``"members"`` weighting is unaffected by this.
        """
        matrix = data.matrix
        if self.params.window_days is not None:
            recent = data.interactions.filter(
                days_before(data.reference_time, col.TIMESTAMP) <= self.params.window_days
            )
            matrix = history_matrix(recent, data.member_ids, data.item_ids)
        if self.params.weighting == "members":
            return sp.csr_matrix(matrix > 0, dtype=np.float32)
        return matrix

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Each member's segment row, or the global row when the segment is unknown.

        ``histories`` are ignored: popularity is not personalised.
        """
        codes = self._segment_codes(np.asarray(members, dtype=np.int64))
        # The global row goes last, so segment code -1 selects it; fancy indexing copies, which
        # the caller needs because it writes -inf into the returned rows.
        table = np.vstack([self.segment_scores, self.global_scores[None, :]])
        return table[codes]

    def _segment_codes(self, members: np.ndarray) -> np.ndarray:
        """Segment index per member; -1 for unknown members and members without a segment."""
        codes = np.full(len(members), -1, dtype=np.int64)
        known = (members >= 0) & (members < len(self.member_segments))
        codes[known] = self.member_segments[members[known]]
        return codes

    def _save_arrays(self, directory: Path) -> None:
        np.save(directory / "global_scores.npy", self.global_scores, allow_pickle=False)
        np.save(directory / "segment_scores.npy", self.segment_scores, allow_pickle=False)
        np.save(directory / "member_segments.npy", self.member_segments, allow_pickle=False)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        mode = "r" if mmap else None
        self.global_scores = np.load(
            directory / "global_scores.npy", mmap_mode=mode, allow_pickle=False
        )
        self.segment_scores = np.load(
            directory / "segment_scores.npy", mmap_mode=mode, allow_pickle=False
        )
        self.member_segments = np.load(
            directory / "member_segments.npy", mmap_mode=mode, allow_pickle=False
        )


def _segment_totals(
    counted: sp.csr_matrix, member_segments: np.ndarray, n_segments: int
) -> np.ndarray:
    """Column sums of ``counted`` over the members of each segment (segments x items)."""
    members_with_segment = np.flatnonzero(member_segments >= 0)
    membership = sp.csr_matrix(
        (
            np.ones(len(members_with_segment), dtype=np.float32),
            (member_segments[members_with_segment], members_with_segment),
        ),
        shape=(n_segments, counted.shape[0]),
    )
    return np.asarray((membership @ counted).toarray(), dtype=np.float32)


def fallback_popularity(data: TrainingData, tuned: dict[str, Any] | None) -> PopularityRecommender:
    """Popularity per segment with the tuned window: the answer for members a model cannot
    personalise (cold starts, failures) and the order of items a model scores alike, so it is
    always fit by segment. ``tuned``: the popularity model's tuned parameters, if it was tuned."""
    return PopularityRecommender(**{**(tuned or {}), "by_segment": True}).fit(data)
