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
  is only shown on a member's profile, under its own name;
* **segment sizes**: members per lifecycle segment and their share of all revenue up to the
  reference time (the sum of their ``monetary``);
* the RFM grid, orders per member, the churn-risk distribution and value by segment
  (:mod:`training.member_distributions`) and cohort retention (:mod:`training.member_cohorts`).

Every figure of the dashboard's overview and of the member report
(:mod:`training.member_report`) is one of these, so that the two show the same numbers.

Two files go into the artifact (:data:`KPIS_FILE`, :data:`PROFILES_FILE`); serving reads them
and never recomputes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from features import columns as col
from features.baskets import line_value, order_key
from features.frames import require_columns
from features.members import (
    FREQUENCY,
    MONETARY,
    SEGMENT,
    SEGMENTS,
    VALUE_TIERS,
    SegmentConfig,
)
from training.member_cohorts import cohort_retention, last_complete_month, month_number
from training.member_distributions import (
    churn_distribution,
    purchase_frequency,
    rfm_grid,
    value_by_segment,
)

__all__ = [
    "KPIS_FILE",
    "PROFILES_FILE",
    "member_kpis",
]

#: The artifact's extra file of key figures (JSON) and of one profile row per member.
KPIS_FILE: Final = "kpis.json"
PROFILES_FILE: Final = "member_profiles.parquet"
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
    "monthly_repurchase_rate": "of a month's buying members, the share with two or more orders "
    "in that month",
    "segment_sizes": "members per lifecycle segment at the reference time, and the share of all "
    "revenue up to then that they brought",
    "rfm_grid": "members and mean spend per cell of R score (recency quintile, 5 = most recent) "
    "by F score (order-count quintile, 5 = most orders); ties share the lower score",
    "purchase_frequency": "members by their number of orders up to the reference time "
    "(0: never bought)",
    "cohorts": "members by join month (joined_at of the members file, else the month of the "
    "first purchase); retention k is the share of a cohort with a purchase in the k-th "
    "calendar month after it (k = 1..12), null where the data does not hold that whole month; "
    "the 12 latest cohorts",
    "churn": "churn_risk: the probability of no purchase in the next horizon_days; members per "
    "tenth of risk and per band; not drawn when the members are unscored or the churn model "
    "was not informative",
    "value_by_segment": "sum and mean of expected purchases and expected spend over the next "
    "horizon_days per lifecycle segment",
}


def member_kpis(
    interactions: pl.DataFrame,
    profiles: pl.DataFrame,
    reference_time: datetime,
    window_days: float = SegmentConfig().active_days,
    members: pl.DataFrame | None = None,
    horizon_days: float | None = None,
) -> dict[str, Any]:
    """The key figures, the months, the segment x tier counts and the distributions (see the
    module docstring). ``members`` (the members file) gives the join months of the cohorts;
    ``horizon_days`` is the horizon of the profiles' scores, when they carry any."""
    require_columns(profiles, (col.MEMBER_ID, SEGMENT, col.TIER, FREQUENCY, MONETARY), "profiles")
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
        "segment_sizes": _segment_sizes(profiles),
        "rfm_grid": rfm_grid(profiles),
        "purchase_frequency": purchase_frequency(profiles),
        "cohorts": cohort_retention(
            purchases,
            profiles.get_column(col.MEMBER_ID),
            members,
            start if isinstance(start, datetime) else None,
            reference_time,
        ),
        "churn": churn_distribution(profiles, horizon_days),
        "value_by_segment": value_by_segment(profiles, horizon_days),
    }


def _months(purchases: pl.DataFrame, start: Any, end: datetime) -> list[dict[str, Any]]:
    dated = purchases.with_columns(pl.col(col.TIMESTAMP).dt.truncate("1mo").alias(_MONTH))
    repeat = (
        dated.group_by(_MONTH, col.MEMBER_ID)
        .agg(pl.col(_ORDER).n_unique())
        .group_by(_MONTH)
        .agg((pl.col(_ORDER) >= 2).mean().alias("repurchase_rate"))
    )
    by_month = (
        dated.group_by(_MONTH)
        .agg(
            pl.col(_REVENUE).sum().alias("revenue"),
            pl.col(_ORDER).n_unique().alias("orders"),
            pl.col(col.MEMBER_ID).n_unique().alias("active_members"),
        )
        .join(repeat, on=_MONTH)
        .sort(_MONTH)
    )
    last_complete = last_complete_month(end)
    months = []
    for row in by_month.iter_rows(named=True):
        first: datetime = row[_MONTH]
        # Complete: the data starts by the month's first day and runs into its last day.
        covered = isinstance(start, datetime) and start <= first
        covered = covered and month_number(first) <= last_complete
        months.append({
            "month": first.strftime("%Y-%m"),
            "revenue": float(row["revenue"]),
            "orders": int(row["orders"]),
            "active_members": int(row["active_members"]),
            "average_order_value": float(row["revenue"]) / row["orders"] if row["orders"] else None,
            "repurchase_rate": float(row["repurchase_rate"]),
            "complete": bool(covered),
        })  # fmt: skip
    return months


def _segment_sizes(profiles: pl.DataFrame) -> list[dict[str, Any]]:
    """Members and revenue (sum of ``monetary``) per lifecycle segment, every segment listed."""
    per_segment = profiles.group_by(SEGMENT).agg(
        pl.len().alias("members"), pl.col(MONETARY).sum().alias("revenue")
    )
    found = {row[SEGMENT]: row for row in per_segment.iter_rows(named=True)}
    total_members = profiles.height
    total_revenue = float(profiles.get_column(MONETARY).sum())
    names = [*SEGMENTS, *sorted((s for s in found if s not in SEGMENTS), key=str)]
    sizes = []
    for segment in names:
        members = int(found[segment]["members"]) if segment in found else 0
        revenue = float(found[segment]["revenue"]) if segment in found else 0.0
        sizes.append({
            "segment": segment,
            "members": members,
            "member_share": members / total_members if total_members else None,
            "revenue": revenue,
            "revenue_share": revenue / total_revenue if total_revenue else None,
        })  # fmt: skip
    return sizes


def _segment_tiers(profiles: pl.DataFrame) -> list[dict[str, Any]]:
    counts = profiles.group_by(SEGMENT, col.TIER).len("members").sort(SEGMENT, col.TIER)
    return [
        {"segment": row[SEGMENT], "tier": row[col.TIER], "members": int(row["members"])}
        for row in counts.iter_rows(named=True)
    ]
