"""Online reports: CTR and conversion of what was served, with 95% intervals.

Rates come with Wilson score intervals rather than the normal approximation: CTRs are small
proportions, often over few impressions, where the normal interval dips below 0 and covers
far less than its nominal 95%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from serving.event_store import CtrCounts
from serving.schemas import CtrGroup, CtrReport, GroupBy, Rate

__all__ = ["CONFIDENCE", "build_ctr_report", "epoch", "wilson_interval"]

CONFIDENCE = 0.95
#: The standard normal quantile for a two-sided 95% interval.
_Z = 1.959963984540054
#: Key of lists without a value of the grouping column (e.g. similar-item lists by segment).
_NO_KEY = "(none)"


def wilson_interval(successes: int, trials: int, z: float = _Z) -> Rate:
    """The proportion and its Wilson score interval; all None without trials."""
    if trials <= 0:
        return Rate(value=None, low=None, high=None)
    share = successes / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    half_width /= denominator
    # The bounds at 0 and n successes are exactly 0 and 1; rounding would leave a speck.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return Rate(value=share, low=low, high=high)


def _group(
    key: str, impressions: int, clicks: int, conversions: int, day: str | None = None
) -> CtrGroup:
    return CtrGroup(
        key=key,
        day=day,
        impressions=impressions,
        clicks=clicks,
        ctr=wilson_interval(clicks, impressions),
        conversions=conversions,
        conversion_rate=wilson_interval(conversions, impressions),
    )


def epoch(moment: datetime | None) -> float | None:
    """Epoch seconds of ``moment``; a naive time is read as UTC, like every stored time."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def build_ctr_report(
    counts: Sequence[CtrCounts],
    group_by: GroupBy,
    start: datetime | None,
    end: datetime | None,
    *,
    per_day: bool = False,
) -> CtrReport:
    """The report body: one row per group (per group and day with ``per_day``) and the total
    over all groups."""
    groups = [
        _group(_NO_KEY if row.key is None else str(row.key), row.impressions, row.clicks,
               row.conversions, row.day)
        for row in counts
    ]  # fmt: skip
    total = _group(
        "total",
        sum(row.impressions for row in counts),
        sum(row.clicks for row in counts),
        sum(row.conversions for row in counts),
    )
    return CtrReport(
        start=start, end=end, group_by=group_by, per_day=per_day, confidence=CONFIDENCE,
        groups=groups, total=total,
    )  # fmt: skip
