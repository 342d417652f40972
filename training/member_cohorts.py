"""Cohort retention by join month: of the members who joined in one month, how many buy again
one, two, ... twelve months later.

Part of the member program's key figures (:mod:`training.member_kpis`). Definitions:

* a member's **join month** is the calendar month (UTC) of ``joined_at`` in the members file,
  else of their first purchase; a member with neither belongs to no cohort (counted in
  ``members_without_cohort``);
* **retention k** of a cohort is the share of its members with a purchase in the k-th calendar
  month after the join month, k = 1 .. :data:`RETENTION_MONTHS`. Month 0 is left out: for a
  cohort by first purchase it is 100% by construction;
* a month counts only when the data holds all of it: from the data's first month to the last
  month the reference time completes (:func:`last_complete_month`); retention in any other month
  is null, not 0, so that a month the data does not cover never reads as members lost;
* the :data:`COHORTS` latest cohorts with at least one such month are shown.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from features import columns as col

__all__ = [
    "COHORTS",
    "RETENTION_MONTHS",
    "cohort_retention",
    "last_complete_month",
    "month_number",
    "month_text",
]

COHORTS: Final = 12
RETENTION_MONTHS: Final = 12
_COHORT: Final = "_cohort"
_MONTH: Final = "_month"
_JOINED: Final = "_joined"
_FIRST: Final = "_first_purchase"


def month_number(moment: datetime) -> int:
    """Months since year 0: consecutive calendar months differ by one."""
    return moment.year * 12 + moment.month - 1


def month_text(number: int) -> str:
    """``YYYY-MM`` of a :func:`month_number`."""
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def last_complete_month(end: datetime) -> int:
    """The :func:`month_number` of the last month that data ending at ``end`` holds to its end:
    ``end``'s own month when ``end`` falls on its last day, else the month before."""
    following = end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = following.replace(
        year=following.year + following.month // 12, month=following.month % 12 + 1
    )
    return month_number(end) if end >= following - timedelta(days=1) else month_number(end) - 1


def _as_month_number(expression: pl.Expr) -> pl.Expr:
    return expression.dt.year().cast(pl.Int64) * 12 + expression.dt.month().cast(pl.Int64) - 1


def cohort_retention(
    purchases: pl.DataFrame,
    member_ids: pl.Series,
    members: pl.DataFrame | None,
    data_start: datetime | None,
    reference_time: datetime,
) -> dict[str, Any]:
    """Retention curves of the latest join-month cohorts (see the module docstring).

    ``purchases`` holds ``member_id`` and ``timestamp`` of purchases up to the reference time;
    ``member_ids`` every member of the program (the profiles' ids).
    """
    joined = _joined(members)
    first = purchases.group_by(col.MEMBER_ID).agg(pl.col(col.TIMESTAMP).min().alias(_FIRST))
    population = (
        pl.DataFrame({col.MEMBER_ID: member_ids.cast(pl.Utf8)})
        .join(joined, on=col.MEMBER_ID, how="left")
        .join(first, on=col.MEMBER_ID, how="left")
        .with_columns(_as_month_number(pl.coalesce(_JOINED, _FIRST)).alias(_COHORT))
    )
    placed = population.filter(pl.col(_COHORT).is_not_null())
    first_month = month_number(data_start) if data_start is not None else None
    last_month = last_complete_month(reference_time)
    observable = _observable_cohorts(placed, first_month, last_month)
    bought = (
        purchases.select(col.MEMBER_ID, _as_month_number(pl.col(col.TIMESTAMP)).alias(_MONTH))
        .unique()
        .join(placed.select(col.MEMBER_ID, _COHORT), on=col.MEMBER_ID)
        .with_columns((pl.col(_MONTH) - pl.col(_COHORT)).alias("k"))
        .filter(pl.col("k").is_between(1, RETENTION_MONTHS))
        .group_by(_COHORT, "k")
        .len("buyers")
    )
    buyers = {(row[_COHORT], row["k"]): row["buyers"] for row in bought.iter_rows(named=True)}

    def observed(month: int) -> bool:
        return (first_month is None or month >= first_month) and month <= last_month

    rows = [
        {
            "cohort": month_text(cohort),
            "members": size,
            "retention": [
                buyers.get((cohort, k), 0) / size if observed(cohort + k) else None
                for k in range(1, RETENTION_MONTHS + 1)
            ],
        }
        for cohort, size in observable[-COHORTS:]
    ]
    by_joined = placed.filter(pl.col(_JOINED).is_not_null()).height
    return {
        "months_after": list(range(1, RETENTION_MONTHS + 1)),
        "cohorts": rows,
        "cohorts_with_data": len(observable),
        "members_by_joined_at": by_joined,
        "members_by_first_purchase": placed.height - by_joined,
        "members_without_cohort": population.height - placed.height,
    }


def _joined(members: pl.DataFrame | None) -> pl.DataFrame:
    """member_id and joined_at of the members file (empty without one or without the column)."""
    if members is None or col.JOINED_AT not in members.columns:
        return pl.DataFrame(schema={col.MEMBER_ID: pl.Utf8, _JOINED: pl.Datetime("us")})
    return members.unique(col.MEMBER_ID, keep="first", maintain_order=True).select(
        pl.col(col.MEMBER_ID).cast(pl.Utf8),
        pl.col(col.JOINED_AT).cast(pl.Datetime("us")).alias(_JOINED),
    )


def _observable_cohorts(
    placed: pl.DataFrame, first_month: int | None, last_month: int
) -> list[tuple[int, int]]:
    """(cohort month, members) of every cohort with an observed month k >= 1, oldest first."""
    sizes = placed.group_by(_COHORT).len("members").filter(pl.col(_COHORT) + 1 <= last_month)
    if first_month is not None:
        sizes = sizes.filter(pl.col(_COHORT) + RETENTION_MONTHS >= first_month)
    return [(int(cohort), int(size)) for cohort, size in sizes.sort(_COHORT).iter_rows()]
