"""The RFM figures and lifecycle segment that go with each member's scores, as of ``as_of``.

They are :func:`features.members.compute_member_profiles`'s, on the events before ``as_of``,
so that ``recsys members score`` and ``recsys segments`` agree. That function reads purchases
for the RFM figures and every event only for first and last seen, so it is handed the purchase
rows plus, per member, two rows standing for the first and the last event of any kind: the
same profiles, from a few million rows instead of every view of a lazy scan.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from features.columns import (
    EVENT,
    ITEM_ID,
    JOINED_AT,
    MEMBER_ID,
    ORDER_ID,
    PRICE,
    PURCHASE,
    QUANTITY,
    TIER,
    TIMESTAMP,
    VIEW,
)
from features.members import (
    FREQUENCY,
    MONETARY,
    RECENCY_DAYS,
    SEGMENT,
    SegmentConfig,
    compute_member_profiles,
)

__all__ = ["member_profiles"]


def member_profiles(
    lazy: pl.LazyFrame,
    as_of: datetime,
    members: pl.DataFrame | None,
    segments: SegmentConfig,
) -> pl.DataFrame:
    """member_id, segment, tier (declared, null without one), recency_days, frequency and
    monetary of every member with an event before ``as_of`` or joined before it."""
    history = lazy.filter(pl.col(TIMESTAMP) < as_of)
    purchases = (
        history.filter(pl.col(EVENT) == PURCHASE)
        .select(
            pl.col(MEMBER_ID),
            pl.col(ITEM_ID),
            pl.col(EVENT),
            pl.col(TIMESTAMP),
            pl.col(QUANTITY).cast(pl.Float64),
            pl.col(PRICE).cast(pl.Float64),
            pl.col(ORDER_ID).cast(pl.Utf8),
        )
        .collect()
    )
    # The pass over every event streams: it only keeps two timestamps per member.
    bounds = (
        history.group_by(MEMBER_ID)
        .agg(pl.col(TIMESTAMP).min().alias("first"), pl.col(TIMESTAMP).max().alias("last"))
        .collect(engine="streaming")
        .unpivot(index=MEMBER_ID, on=["first", "last"], value_name=TIMESTAMP)
        .select(
            pl.col(MEMBER_ID),
            pl.lit(None, dtype=pl.Utf8).alias(ITEM_ID),
            pl.lit(VIEW).alias(EVENT),
            pl.col(TIMESTAMP),
            pl.lit(None, dtype=pl.Float64).alias(QUANTITY),
            pl.lit(None, dtype=pl.Float64).alias(PRICE),
            pl.lit(None, dtype=pl.Utf8).alias(ORDER_ID),
        )
    )
    reduced = pl.concat([purchases, bounds], how="vertical")
    roster = _joined_before(members, as_of)
    profiles = compute_member_profiles(reduced, as_of, roster, segments)
    tier = pl.col(TIER) if TIER in profiles.columns else pl.lit(None, dtype=pl.Utf8)
    return profiles.select(
        MEMBER_ID, SEGMENT, tier.cast(pl.Utf8).alias(TIER), RECENCY_DAYS, FREQUENCY, MONETARY
    )


def _joined_before(members: pl.DataFrame | None, as_of: datetime) -> pl.DataFrame | None:
    """The members table's rows that joined before ``as_of`` or whose join date is unknown."""
    if members is None or JOINED_AT not in members.columns:
        return members
    joined = pl.col(JOINED_AT).cast(pl.Datetime("us"))
    return members.filter(joined.is_null() | (joined < as_of))
