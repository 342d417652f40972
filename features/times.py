"""How old an event is: the one definition of interaction time that every module shares.

Interaction timestamps are stored naive, in UTC; callers may hold timezone-aware datetimes.
Converting and measuring age in one place keeps thresholds, half-lives and cutoffs consistent
across splits, matrices, member profiles and models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import polars as pl

__all__ = ["as_naive_utc", "days_before"]

_MICROSECONDS_PER_DAY: Final = 86_400_000_000


def as_naive_utc(moment: datetime) -> datetime:
    """Express a datetime the way interaction timestamps are stored: naive, in UTC.

    Callers may hand in timezone-aware datetimes; comparing those with the naive timestamp
    column would fail (or, worse, silently shift by the UTC offset), so they are converted once.
    """
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def days_before(reference: datetime, column: str | pl.Expr) -> pl.Expr:
    """Fractional days from each timestamp in ``column`` up to ``reference`` (past is positive).

    Fractional days, not calendar days, so that thresholds and half-lives behave the same at
    any time of day.
    """
    timestamps = pl.col(column) if isinstance(column, str) else column
    elapsed = pl.lit(as_naive_utc(reference), dtype=pl.Datetime("us")) - timestamps
    return elapsed.dt.total_microseconds() / _MICROSECONDS_PER_DAY
