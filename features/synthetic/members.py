"""The members: lifecycle (when each joined and stopped), activity budget, tier, region and
birth date."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa

from features.columns import BIRTH_DATE, JOINED_AT, MEMBER_ID, REGION, TIER
from features.synthetic.config import StoreConfig
from features.synthetic.period import END_US, START_US, US_PER_DAY, US_PER_HOUR
from features.synthetic.sampling import (
    STREAM_BIRTH_DATES,
    cold_count,
    random_stream,
    uniform_times,
)

__all__ = [
    "COLD",
    "LAPSED",
    "NEW",
    "REGIONS",
    "REGULAR",
    "TIERS",
    "TIER_SHARES",
    "Members",
    "build_members",
    "members_table",
]

TIERS: Final[tuple[str, ...]] = ("bronze", "silver", "gold", "platinum")
#: Share of members per tier; tiers are handed out by activity rank, most active on top.
TIER_SHARES: Final[tuple[float, ...]] = (0.55, 0.28, 0.13, 0.04)

REGIONS: Final[tuple[str, ...]] = (
    "Northeast",
    "Mid-Atlantic",
    "Southeast",
    "Great Lakes",
    "Midwest",
    "Southwest",
    "Mountain",
    "Pacific",
)
#: Share of members per region (sums to 1).
_REGION_WEIGHTS: Final = np.array([0.16, 0.14, 0.18, 0.12, 0.10, 0.11, 0.06, 0.13])

#: Members who joined this close to the end are "new"; lapsed members stop well before it.
_NEW_MEMBER_WINDOW_US: Final = 30 * US_PER_DAY
_LAPSE_MIN_GAP_US: Final = 180 * US_PER_DAY
#: Cold-start members joined in the last two weeks (and have not shopped yet).
_COLD_MEMBER_WINDOW_US: Final = 14 * US_PER_DAY

#: Age on joining: 18 + 67 x Beta(2.0, 3.2) years, so 18 to 85 with a median near 43 and about
#: 73% between 25 and 55 (6% under 25, 7% over 65), the adult membership of a retail program.
_JOIN_AGE_MIN_YEARS: Final = 18.0
_JOIN_AGE_SPAN_YEARS: Final = 67.0
_JOIN_AGE_BETA: Final = (2.0, 3.2)
_US_PER_YEAR: Final = 365.2425 * US_PER_DAY

#: Lifecycle segments of :attr:`Members.segment`.
REGULAR, LAPSED, NEW, COLD = 0, 1, 2, 3


@dataclass(frozen=True)
class Members:
    """Member attributes in id order (ids are issued in join order, like a real program)."""

    joined: np.ndarray
    #: Activity window [joined, active_until) in microseconds.
    active_until: np.ndarray
    #: Events per member; sums to ``config.events``; zero for cold-start members.
    budget: np.ndarray
    segment: np.ndarray
    tier: np.ndarray
    region: np.ndarray
    #: Birth dates in days since 1970-01-01.
    born: np.ndarray


def build_members(config: StoreConfig, rng: np.random.Generator) -> Members:
    """Lifecycle, activity budget, tier, region and birth date of every member.

    Birth dates come from their own stream (:data:`STREAM_BIRTH_DATES`), not from ``rng``, so
    that a store generated before they existed keeps every other draw, byte for byte.
    """
    segment = _lifecycle_segments(config)
    joined, active_until = _lifecycle_dates(rng, segment)
    order = np.argsort(joined, kind="stable")
    segment, joined, active_until = segment[order], joined[order], active_until[order]
    budget = _event_budgets(rng, config, segment, joined, active_until)
    return Members(
        joined=joined,
        active_until=active_until,
        budget=budget,
        segment=segment,
        tier=_tiers_by_activity(rng, budget),
        region=rng.choice(len(REGIONS), size=config.members, p=_REGION_WEIGHTS),
        born=_birth_dates(random_stream(config.seed, STREAM_BIRTH_DATES), joined),
    )


def _lifecycle_segments(config: StoreConfig) -> np.ndarray:
    n = config.members
    cold = cold_count(config.cold_member_share, n, keep=1)
    lapsed = round(config.lapsed_share * n)
    new = min(round(config.new_member_share * n), n - cold - lapsed)
    counts = [n - cold - lapsed - new, lapsed, new, cold]
    return np.repeat(np.array([REGULAR, LAPSED, NEW, COLD], dtype=np.int8), counts)


def _lifecycle_dates(
    rng: np.random.Generator, segment: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Join dates spread over the period, and when each member's activity ends.

    Regular members stay active to the end; lapsed members join in the first 15 months and stop
    between two months after joining and 180 days before the end; new members joined within the
    last 30 days; cold-start members joined within the last two weeks and have not shopped yet.
    """
    n = len(segment)
    new_from = END_US - _NEW_MEMBER_WINDOW_US
    lapse_latest = END_US - _LAPSE_MIN_GAP_US
    join_low = np.select(
        [segment == LAPSED, segment == NEW, segment == COLD],
        [START_US, new_from, END_US - _COLD_MEMBER_WINDOW_US],
        START_US,
    )
    join_high = np.select(
        [segment == LAPSED, segment == NEW, segment == COLD],
        [lapse_latest - 120 * US_PER_DAY, END_US - 2 * US_PER_DAY, END_US],
        new_from,
    )
    joined = uniform_times(rng, join_low, join_high, n)
    lapse = uniform_times(rng, joined + 60 * US_PER_DAY, lapse_latest, n)
    active_until = np.where(segment == LAPSED, lapse, END_US - US_PER_HOUR)
    return joined, active_until


def _event_budgets(
    rng: np.random.Generator,
    config: StoreConfig,
    segment: np.ndarray,
    joined: np.ndarray,
    active_until: np.ndarray,
) -> np.ndarray:
    """Split exactly ``config.events`` over members by a heavy-tailed rate times time active.

    Every shopping member gets one event first when the budget allows, so that the only members
    without history are the cold-start ones; the rest is one multinomial draw.
    """
    shopping = segment != COLD
    rate = rng.lognormal(0.0, config.activity_spread, size=len(segment))
    weight = np.where(shopping, rate * (active_until - joined) / (END_US - START_US), 0.0)
    guaranteed = shopping.astype(np.int64)
    if config.events < guaranteed.sum():
        guaranteed[:] = 0
    # Shrink by 1e-9 so rounding can never push the partial sum of pvals over 1 (numpy rejects
    # that); the remainder falls to the last member, 1e-9 x events in expectation.
    pvals = weight / (weight.sum() * (1.0 + 1e-9))
    return guaranteed + rng.multinomial(config.events - int(guaranteed.sum()), pvals)


def _tiers_by_activity(rng: np.random.Generator, budget: np.ndarray) -> np.ndarray:
    """Tiers follow activity with some noise: the most active members are mostly platinum."""
    score = np.log1p(budget) + rng.normal(0.0, 0.5, size=len(budget))
    quantile = np.argsort(np.argsort(score, kind="stable"), kind="stable") / max(len(budget), 1)
    return np.searchsorted(np.cumsum(TIER_SHARES)[:-1], quantile, side="right")


def _birth_dates(rng: np.random.Generator, joined: np.ndarray) -> np.ndarray:
    """Days since the epoch of each member's birth, from an age on joining; independent of
    everything else (no behaviour depends on age), so an age band describes and predicts nothing."""
    years = _JOIN_AGE_MIN_YEARS + _JOIN_AGE_SPAN_YEARS * rng.beta(*_JOIN_AGE_BETA, len(joined))
    return (joined - (years * _US_PER_YEAR).astype(np.int64)) // US_PER_DAY


def members_table(members: Members, member_ids: pa.Array) -> pa.Table:
    return pa.table(
        {
            MEMBER_ID: member_ids,
            JOINED_AT: pa.array(members.joined, type=pa.timestamp("us")),
            TIER: pa.array(TIERS).take(members.tier),
            REGION: pa.array(REGIONS).take(members.region),
            BIRTH_DATE: pa.array(members.born.astype(np.int32), type=pa.date32()),
        }
    )
