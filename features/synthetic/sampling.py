"""Random streams and the vectorised draws that the catalog, members and sessions share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from features.synthetic.period import US_PER_SECOND

__all__ = [
    "STREAM_BIRTH_DATES",
    "STREAM_CAMPAIGN",
    "STREAM_CATALOG",
    "STREAM_EVENTS",
    "STREAM_MEMBERS",
    "GroupedSampler",
    "cold_count",
    "random_stream",
    "row_sampler",
    "uniform_times",
    "zipf_weights",
]

STREAM_CATALOG: Final = 0
STREAM_MEMBERS: Final = 1
STREAM_EVENTS: Final = 2
#: Its own stream, added after the others, so that birth dates changed none of their draws.
STREAM_BIRTH_DATES: Final = 3
#: Simulated campaigns and their planted effect (:mod:`~features.synthetic.campaign`): a stream
#: of their own, so that planting an effect changes no draw of the store itself.
STREAM_CAMPAIGN: Final = 4


def random_stream(seed: int, stream: int, chunk: int = 0) -> np.random.Generator:
    """An independent random stream per purpose and chunk, so no draw depends on another's count."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, chunk)))


@dataclass(frozen=True)
class GroupedSampler:
    """Draws one value per request from the request's own group, with per-group probabilities.

    All groups share one sorted array: group ``g`` spans ``(g, g + 1]`` as ``g`` plus its
    cumulative probabilities, so a batch of draws from many different groups (a category per
    engagement, a taste per member) is a single ``searchsorted`` instead of a loop.
    """

    bounds: np.ndarray
    values: np.ndarray

    @classmethod
    def build(cls, groups: np.ndarray, weights: np.ndarray, values: np.ndarray) -> GroupedSampler:
        """``groups`` must be sorted and cover 0..G-1, each group with a positive total weight."""
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        lengths = np.diff(np.r_[starts, len(groups)])
        ends = starts + lengths - 1
        cumulative = np.cumsum(weights, dtype=np.float64)
        before = np.repeat(cumulative[starts] - weights[starts], lengths)
        within = (cumulative - before) / (np.repeat(cumulative[ends], lengths) - before)
        within[ends] = 1.0  # exact, so that a draw can never spill into the next group
        return cls(bounds=groups + within, values=values)

    def draw(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        targets = np.minimum(groups + rng.random(len(groups)), np.nextafter(groups + 1.0, 0.0))
        return self.values[np.searchsorted(self.bounds, targets, side="right")]


def row_sampler(weights: np.ndarray, values: np.ndarray) -> GroupedSampler:
    """A sampler over the rows of a weight matrix: row ``r`` is group ``r``."""
    rows, width = weights.shape
    return GroupedSampler.build(
        np.repeat(np.arange(rows, dtype=np.float64), width),
        weights.ravel(),
        np.tile(values, rows),
    )


def zipf_weights(ranks: np.ndarray, exponent: float) -> np.ndarray:
    return (ranks + 1.0) ** -exponent


def uniform_times(
    rng: np.random.Generator, low: np.ndarray | int, high: np.ndarray | int, size: int
) -> np.ndarray:
    """Uniform instants in ``[low, high)`` (microseconds), whole seconds for readability."""
    span_s = np.maximum((np.asarray(high) - np.asarray(low)) // US_PER_SECOND, 1)
    return low + (rng.random(size) * span_s).astype(np.int64) * US_PER_SECOND


def cold_count(share: float, total: int, keep: int) -> int:
    """How many of ``total`` are cold: at least one when the share is positive, leaving ``keep``."""
    if share <= 0.0:
        return 0
    return int(min(max(1, round(share * total)), max(total - keep, 0)))
