"""The member program's key figures, computed once at training time for the dashboard.

A marketer's first questions (how many members are active, how often do they come back, what
is an order worth, where is revenue going month by month) are answered from the interactions
the artifact was trained on, as of one reference time: the data's end (the last event), the
same reference time the lifecycle segments use, so that the dashboard's counts and the
segments' agree. Definitions:

* a **purchase order** is :func:`features.baskets.order_key` (an ``order_id``, else one order
  per member and UTC day); **revenue** is ``quantity * price`` summed over purchases;
* **active members**: members with at least one purchase in the ``window_days`` (90, the
  ``active_days`` of :class:`features.members.SegmentConfig`) ending at the reference time. The
  lifecycle segment ``active`` counts from the last purchase *or other event* and leaves out
  members who joined within 30 days (``new``), so the two numbers differ by design;
* **repurchase rate**: of the members with a purchase in that window, the share with two or
  more orders in it; **average order value**: the window's revenue over its orders;
* **by month** (calendar months, UTC): revenue, orders, buying (active) members and average
  order value; a month the data covers only part of is flagged ``complete: false``;
* **members by segment and tier**: every member of the program (the members file's members
  without events too), by lifecycle segment and by the *declared* ``tier`` of the members file
  (null where there is none). The computed ``value_tier`` (spend quantiles) is another thing and
  is only shown on a member's profile, under its own name.

Two files go into the artifact (:data:`KPIS_FILE`, :data:`PROFILES_FILE`); serving reads them
and never recomputes.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import polars as pl

from features import columns as col
from features.baskets import line_value, order_key
from features.members import (
    FIRST_SEEN,
    FREQUENCY,
    LAST_PURCHASE,
    MONETARY,
    RECENCY_DAYS,
    SEGMENT,
    SEGMENTS,
    VALUE_TIER,
    VALUE_TIERS,
    SegmentConfig,
    compute_member_profiles,
)

__all__ = [
    "KPIS_FILE",
    "PROFILES_FILE",
    "PROFILE_COLUMNS",
    "member_kpis",
    "write_member_files",
]

#: The artifact's extra file of key figures (JSON) and of one profile row per member.
KPIS_FILE: Final = "kpis.json"
PROFILES_FILE: Final = "member_profiles.parquet"
#: Columns of :data:`PROFILES_FILE`; ``tier`` is null where the members file declares none.
PROFILE_COLUMNS: Final = (
    col.MEMBER_ID, SEGMENT, col.TIER, VALUE_TIER, FREQUENCY, MONETARY, LAST_PURCHASE,
    FIRST_SEEN, RECENCY_DAYS,
)  # fmt: skip
_REVENUE: Final = "_revenue"
_ORDER: Final = "_order"
_MONTH: Final = "_month"

DEFINITIONS: Final = {
    "reference_time": "the data's end: the time of the last event the artifact learned from",
    "active_members": "members with at least one purchase in the window_days ending at the "
    "reference time",
    "repurchase_rate": "of the window's buying members, the share with two or more orders in it",
    "average_order_value": "the window's revenue (quantity x price of purchases) over its orders",
    "orders": "distinct order_id, else one order per member and UTC day",
    "months": "calendar months (UTC); complete is false for a month the data covers in part",
    "members_by_segment_tier": "every member (members file included) by lifecycle segment as "
    "of the reference time and by the members file's declared tier (null: none declared)",
}


def member_profiles(
    interactions: pl.DataFrame, reference_time: datetime, members: pl.DataFrame | None
) -> pl.DataFrame:
    """One row per member (:data:`PROFILE_COLUMNS`), as the artifact's segments see them."""
    profiles = compute_member_profiles(interactions, reference_time=reference_time, members=members)
    if col.TIER not in profiles.columns:
        profiles = profiles.with_columns(pl.lit(None, dtype=pl.Utf8).alias(col.TIER))
    return profiles.select(PROFILE_COLUMNS)


def member_kpis(
    interactions: pl.DataFrame,
    profiles: pl.DataFrame,
    reference_time: datetime,
    window_days: float = SegmentConfig().active_days,
) -> dict[str, Any]:
    """The key figures, the months and the segment x tier counts (see the module docstring)."""
    purchases = (
        interactions.lazy()
        .filter((pl.col(col.EVENT) == col.PURCHASE) & (pl.col(col.TIMESTAMP) <= reference_time))
        .select(
            col.MEMBER_ID,
            col.TIMESTAMP,
            order_key(interactions.columns).alias(_ORDER),
            line_value().alias(_REVENUE),
        )
        .collect()
    )
    start = interactions.get_column(col.TIMESTAMP).min()
    window_start = reference_time - timedelta(days=window_days)
    recent = purchases.filter(pl.col(col.TIMESTAMP) > window_start)
    orders_per_buyer = recent.group_by(col.MEMBER_ID).agg(pl.col(_ORDER).n_unique())
    buyers = orders_per_buyer.height
    orders = recent.get_column(_ORDER).n_unique()
    revenue = float(recent.get_column(_REVENUE).sum())
    repeat = orders_per_buyer.filter(pl.col(_ORDER) >= 2).height
    return {
        "reference_time": reference_time.isoformat(),
        "data_start": start.isoformat() if isinstance(start, datetime) else None,
        "window_days": window_days,
        "definitions": DEFINITIONS,
        "figures": {
            "members": profiles.height,
            "active_members": buyers,
            "orders": orders,
            "revenue": revenue,
            "average_order_value": revenue / orders if orders else None,
            "repurchase_rate": repeat / buyers if buyers else None,
        },
        "months": _months(purchases, start, reference_time),
        "members_by_segment_tier": _segment_tiers(profiles),
        "segments": list(SEGMENTS),
        "tiers": list(VALUE_TIERS),
    }


def _months(purchases: pl.DataFrame, start: Any, end: datetime) -> list[dict[str, Any]]:
    by_month = (
        purchases.with_columns(pl.col(col.TIMESTAMP).dt.truncate("1mo").alias(_MONTH))
        .group_by(_MONTH)
        .agg(
            pl.col(_REVENUE).sum().alias("revenue"),
            pl.col(_ORDER).n_unique().alias("orders"),
            pl.col(col.MEMBER_ID).n_unique().alias("active_members"),
        )
        .sort(_MONTH)
    )
    months = []
    for row in by_month.iter_rows(named=True):
        first: datetime = row[_MONTH]
        following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        # Complete: the data starts by the month's first day and runs into its last day.
        covered = isinstance(start, datetime) and start <= first
        covered = covered and end >= following - timedelta(days=1)
        months.append({
            "month": first.strftime("%Y-%m"),
            "revenue": float(row["revenue"]),
            "orders": int(row["orders"]),
            "active_members": int(row["active_members"]),
            "average_order_value": float(row["revenue"]) / row["orders"] if row["orders"] else None,
            "complete": bool(covered),
        })  # fmt: skip
    return months


def _segment_tiers(profiles: pl.DataFrame) -> list[dict[str, Any]]:
    counts = profiles.group_by(SEGMENT, col.TIER).len("members").sort(SEGMENT, col.TIER)
    return [
        {"segment": row[SEGMENT], "tier": row[col.TIER], "members": int(row["members"])}
        for row in counts.iter_rows(named=True)
    ]


def write_member_files(
    interactions: pl.DataFrame,
    reference_time: datetime,
    members: pl.DataFrame | None,
    directory: Path,
) -> dict[str, Path]:
    """Write :data:`KPIS_FILE` and :data:`PROFILES_FILE` into ``directory``; their paths by name
    (what ``write_artifact`` takes as extra files)."""
    profiles = member_profiles(interactions, reference_time, members)
    kpis_path, profiles_path = directory / KPIS_FILE, directory / PROFILES_FILE
    kpis_path.write_text(json.dumps(member_kpis(interactions, profiles, reference_time), indent=2))
    profiles.write_parquet(profiles_path)
    return {KPIS_FILE: kpis_path, PROFILES_FILE: profiles_path}
