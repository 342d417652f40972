"""What each member looked like on a given date, and what they did in the days after it.

Churn and value models learn from one date and are applied at another (fit on the features of
``as_of - H``, score at ``as_of``), so a feature must mean the same thing on both dates. Totals
that grow with the length of the history (orders ever, spend ever, views ever) do not: a member
with ten orders in three months of data is not the member with ten orders in a year. So every
count is a *rate*: per 30 days of the member's own span (since the first purchase, or since
first seen for events), with that span floored at 30 days so that a member first seen yesterday
does not get a rate of thirty orders a month; or a count over a fixed recent window (the last
30 or 90 days), which has the same length on every date.

:data:`FEATURES` lists the model inputs, in order; each is documented at its constant below
(the constant's value is the column name). Besides them, the frame carries the BG/NBD and
Gamma-Gamma inputs of buyers (``btyd_x``, ``btyd_t_x``, ``btyd_T``, ``btyd_m``: Fader, Hardie
and Lee's x, t_x, T and m: the one definition of them, which the BTYD fits read) and
the history's totals (``total_orders``, ``total_spend``): totals by definition, read by the
BTYD models and the naive rate, never by the learners.

Time semantics, shared with :mod:`training.member_models`: the history is every event with
``timestamp < as_of``; the outcome window of :func:`future_outcomes` is ``[as_of, as_of + H)``.
A purchase order is :func:`features.baskets.order_key`; its value is the sum of
:func:`features.baskets.line_value` over its rows, and it is placed at its first row's time.
Times are fractional days (:func:`features.times.days_before`).

Both functions take an eager or a lazy frame and stay lazy until the end; the one pass over
every event runs on polars' streaming engine, so that a lazy frame scanned from parquet is never
held in memory whole (1M members, 20M events: about 3 s a date, about 1 GB resident).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import polars as pl

from features.baskets import line_value, order_key
from features.columns import (
    CART,
    CATEGORY,
    CLICK,
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
from features.errors import DataError
from features.frames import require_columns
from features.members import VALUE_TIERS
from features.times import as_naive_utc, days_before

__all__ = [
    "BTYD_COLUMNS",
    "BTYD_M",
    "BTYD_T",
    "BTYD_TX",
    "BTYD_X",
    "DAYS_SINCE_PURCHASE",
    "FEATURES",
    "INTERACTION_COLUMNS",
    "IS_BUYER",
    "OUTCOME_PURCHASES",
    "OUTCOME_SPEND",
    "RATE_DAYS",
    "TOTAL_ORDERS",
    "TOTAL_SPEND",
    "future_outcomes",
    "member_features",
]

#: Rates are per this many days, and no span is shorter than this when dividing by it.
RATE_DAYS: Final = 30.0
#: The recent windows of the trend and activity features.
_SHORT_DAYS: Final = 30.0
_LONG_DAYS: Final = 90.0

# --- Purchase features (null for members without a purchase before as_of) ---
#: Days since the last purchase order.
DAYS_SINCE_PURCHASE: Final = "days_since_purchase"
#: Days since the first purchase order (the BTYD T).
DAYS_SINCE_FIRST_PURCHASE: Final = "days_since_first_purchase"
#: Orders per 30 days since the first purchase (span floored at 30 days).
ORDERS_PER_30D: Final = "orders_per_30d"
#: Spend per 30 days since the first purchase (span floored at 30 days).
SPEND_PER_30D: Final = "spend_per_30d"
#: Mean value of an order.
MEAN_ORDER_VALUE: Final = "mean_order_value"
#: Basket size: mean distinct items per order.
ITEMS_PER_ORDER: Final = "items_per_order"
#: Mean and standard deviation of the days between consecutive orders (null with < 2 orders;
#: the deviation is null with < 3).
MEAN_GAP_DAYS: Final = "mean_gap_days"
STD_GAP_DAYS: Final = "std_gap_days"
#: The last closed gap over the mean gap (> 1: the member is slowing down).
LAST_GAP_RATIO: Final = "last_gap_ratio"
#: The open gap (days since the last order) over the mean gap: how overdue the next order is.
OPEN_GAP_RATIO: Final = "open_gap_ratio"
#: Orders in the last 30 and 90 days.
ORDERS_30D: Final = "orders_30d"
ORDERS_90D: Final = "orders_90d"
#: Spend in the last 90 days.
SPEND_90D: Final = "spend_90d"
#: Trend: orders per 30 days in the last 90 days minus the rate before them (null when the
#: first purchase is within the last 90 days), and the last 30 days against the 60 before.
TREND_90D: Final = "trend_90d"
TREND_30D: Final = "trend_30d"
#: Category breadth: distinct categories bought in the last 90 days (null without categories).
CATEGORIES_90D: Final = "categories_90d"

# --- Activity features (every member with an event or a join date) ---
#: Days since the last event of any kind (null for members without events).
DAYS_SINCE_EVENT: Final = "days_since_event"
#: Days since first seen: the first event or the join date, whichever is earlier.
TENURE_DAYS: Final = "tenure_days"
#: Views, clicks and carts per 30 days of tenure (tenure floored at 30 days).
VIEWS_PER_30D: Final = "views_per_30d"
CLICKS_PER_30D: Final = "clicks_per_30d"
CARTS_PER_30D: Final = "carts_per_30d"
#: Events of any kind in the last 30 days.
EVENTS_30D: Final = "events_30d"
#: The declared tier on the ladder bronze = 0 < silver < gold < platinum = 3 (case-insensitive);
#: null without a tier or for a name off that ladder, where no order can be assumed.
TIER_RANK: Final = "tier_rank"

FEATURES: Final[tuple[str, ...]] = (
    DAYS_SINCE_PURCHASE,
    DAYS_SINCE_FIRST_PURCHASE,
    ORDERS_PER_30D,
    SPEND_PER_30D,
    MEAN_ORDER_VALUE,
    ITEMS_PER_ORDER,
    MEAN_GAP_DAYS,
    STD_GAP_DAYS,
    LAST_GAP_RATIO,
    OPEN_GAP_RATIO,
    ORDERS_30D,
    ORDERS_90D,
    SPEND_90D,
    TREND_90D,
    TREND_30D,
    CATEGORIES_90D,
    DAYS_SINCE_EVENT,
    TENURE_DAYS,
    VIEWS_PER_30D,
    CLICKS_PER_30D,
    CARTS_PER_30D,
    EVENTS_30D,
    TIER_RANK,
)

#: True for members with a purchase before as_of: the scorable members.
IS_BUYER: Final = "is_buyer"
#: BG/NBD inputs: repeat orders (orders - 1), days from the first to the last order, days from
#: the first order to as_of; Gamma-Gamma's m: the mean value of the repeat orders (null when
#: there are none, the first order being left out as in Fader, Hardie and Lee).
BTYD_X: Final = "btyd_x"
BTYD_TX: Final = "btyd_t_x"
BTYD_T: Final = "btyd_T"
BTYD_M: Final = "btyd_m"
BTYD_COLUMNS: Final[tuple[str, ...]] = (BTYD_X, BTYD_TX, BTYD_T, BTYD_M)

#: Totals over the whole history (they grow with it, so they are no model input): distinct
#: orders and their value. The naive rate and the non-buyer rule read them.
TOTAL_ORDERS: Final = "total_orders"
TOTAL_SPEND: Final = "total_spend"

#: :func:`future_outcomes` columns: distinct orders and spend in the outcome window.
OUTCOME_PURCHASES: Final = "purchases"
OUTCOME_SPEND: Final = "spend"

#: The interactions columns both functions read.
INTERACTION_COLUMNS: Final = (MEMBER_ID, ITEM_ID, EVENT, TIMESTAMP, QUANTITY, PRICE, ORDER_ID)
_MICROSECONDS_PER_DAY: Final = 86_400_000_000
_ORDERS: Final = "_orders"
_SPEND: Final = "_spend"
_FIRST_VALUE: Final = "_first_value"
_LAST_GAP: Final = "_last_gap"
_FIRST_SEEN: Final = "_first_seen"
_COUNTS: Final = {VIEW: "_views", CLICK: "_clicks", CART: "_carts"}


def member_features(
    interactions: pl.DataFrame | pl.LazyFrame,
    as_of: datetime,
    *,
    members: pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per member known before ``as_of``, sorted by ``member_id``: :data:`FEATURES`,
    :data:`IS_BUYER` and :data:`BTYD_COLUMNS`.

    A member is known with an event before ``as_of``, or as a row of ``members`` that joined
    before it (or has no join date). Events at or after ``as_of`` never change a row. The
    categories come from an interactions ``category`` column, else from ``items``.
    """
    moment = as_naive_utc(as_of)
    history = _checked(interactions).filter(pl.col(TIMESTAMP) < moment)
    # The pass over every event runs on the streaming engine: a fraction of the memory of the
    # in-memory one on tens of millions of events, and faster. Purchases are a small share.
    activity = _activity(history, moment).collect(engine="streaming").lazy()
    purchases = history.filter(pl.col(EVENT) == PURCHASE)
    bought = _purchase_features(purchases, moment, _categories(history, items))
    roster = _roster(members, moment)
    known = pl.concat(
        [activity.select(MEMBER_ID), roster.select(MEMBER_ID)], how="vertical"
    ).unique()
    frame = (
        known.join(activity, on=MEMBER_ID, how="left")
        .join(roster, on=MEMBER_ID, how="left")
        .join(bought, on=MEMBER_ID, how="left")
        .collect()
    )
    return _finish(frame, moment).sort(MEMBER_ID)


def future_outcomes(
    interactions: pl.DataFrame | pl.LazyFrame, as_of: datetime, horizon_days: float
) -> pl.DataFrame:
    """Per member with a purchase in ``[as_of, as_of + horizon_days)``: distinct orders
    (``purchases``) and their value (``spend``). Members absent from it bought nothing."""
    if horizon_days <= 0:
        raise DataError(f"horizon_days must be positive, got {horizon_days}")
    start = as_naive_utc(as_of)
    end = start + timedelta(days=horizon_days)
    window = _checked(interactions).filter(
        (pl.col(EVENT) == PURCHASE) & (pl.col(TIMESTAMP) >= start) & (pl.col(TIMESTAMP) < end)
    )
    return (
        window.group_by(MEMBER_ID)
        .agg(
            order_key(INTERACTION_COLUMNS).n_unique().alias(OUTCOME_PURCHASES),
            line_value().sum().cast(pl.Float64).alias(OUTCOME_SPEND),
        )
        .collect()
        .sort(MEMBER_ID)
    )


def _checked(interactions: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    lazy = interactions.lazy()
    require_columns(pl.DataFrame(schema=lazy.collect_schema()), INTERACTION_COLUMNS, "interactions")
    return lazy


def _categories(history: pl.LazyFrame, items: pl.DataFrame | None) -> pl.LazyFrame | None:
    """(item_id, category) pairs, from the interactions' own column or else the catalog."""
    if CATEGORY in history.collect_schema().names():
        return None  # the purchase rows carry it
    if items is None or CATEGORY not in items.columns:
        return None
    require_columns(items, (ITEM_ID,), "items")
    return items.lazy().select(pl.col(ITEM_ID).cast(pl.Utf8), pl.col(CATEGORY).cast(pl.Utf8))


def _purchase_features(
    purchases: pl.LazyFrame, moment: datetime, categories: pl.LazyFrame | None
) -> pl.LazyFrame:
    """Per buyer, the order-level figures that :func:`_finish` turns into rates and ratios."""
    # Orders sorted by member and time (ties broken by the order key, so that "the first
    # order", left out of Gamma-Gamma's m, is always the same one): gaps are then differences
    # with the previous row of the same member, and the group-by keeps that order, which is
    # several times faster than sorting inside each group.
    orders = (
        purchases.group_by(MEMBER_ID, order_key(INTERACTION_COLUMNS).alias("_order"))
        .agg(
            pl.col(TIMESTAMP).min().alias("_placed"),
            line_value().sum().cast(pl.Float64).alias("_value"),
            pl.col(ITEM_ID).n_unique().alias("_items"),
        )
        .sort(MEMBER_ID, "_placed", "_order")
    )
    same_member = pl.col(MEMBER_ID) == pl.col(MEMBER_ID).shift()
    gap = pl.when(same_member).then(
        pl.col("_placed").diff().dt.total_microseconds() / _MICROSECONDS_PER_DAY
    )
    age = days_before(moment, "_placed")
    per_member = (
        orders.with_columns(gap.alias("_gap"), age.alias("_age"))
        .group_by(MEMBER_ID)
        .agg(
            pl.len().alias(_ORDERS),
            pl.col("_age").min().alias(DAYS_SINCE_PURCHASE),
            pl.col("_age").max().alias(DAYS_SINCE_FIRST_PURCHASE),
            pl.col("_value").sum().alias(_SPEND),
            pl.col("_value").first().alias(_FIRST_VALUE),
            pl.col("_items").mean().cast(pl.Float64).alias(ITEMS_PER_ORDER),
            pl.col("_gap").mean().alias(MEAN_GAP_DAYS),
            pl.col("_gap").std().alias(STD_GAP_DAYS),
            pl.col("_gap").last().alias(_LAST_GAP),
            (pl.col("_age") < _SHORT_DAYS).sum().alias(ORDERS_30D),
            (pl.col("_age") < _LONG_DAYS).sum().alias(ORDERS_90D),
            pl.col("_value").filter(pl.col("_age") < _LONG_DAYS).sum().alias(SPEND_90D),
        )
    )
    breadth = _category_breadth(purchases, moment, categories)
    if breadth is None:
        return per_member.with_columns(pl.lit(None, dtype=pl.Float64).alias(CATEGORIES_90D))
    return per_member.join(breadth, on=MEMBER_ID, how="left").with_columns(
        pl.col(CATEGORIES_90D).fill_null(0.0)
    )


def _category_breadth(
    purchases: pl.LazyFrame, moment: datetime, categories: pl.LazyFrame | None
) -> pl.LazyFrame | None:
    """Distinct categories bought in the last 90 days; None where no category is known."""
    recent = purchases.filter(pl.col(TIMESTAMP) >= moment - timedelta(days=_LONG_DAYS))
    if categories is not None:
        recent = recent.join(categories, on=ITEM_ID, how="left")
    elif CATEGORY not in purchases.collect_schema().names():
        return None
    return recent.group_by(MEMBER_ID).agg(
        pl.col(CATEGORY).drop_nulls().n_unique().cast(pl.Float64).alias(CATEGORIES_90D)
    )


def _activity(history: pl.LazyFrame, moment: datetime) -> pl.LazyFrame:
    event = pl.col(EVENT)
    return history.group_by(MEMBER_ID).agg(
        pl.col(TIMESTAMP).min().alias(_FIRST_SEEN),
        days_before(moment, pl.col(TIMESTAMP).max()).alias(DAYS_SINCE_EVENT),
        *((event == name).sum().alias(alias) for name, alias in _COUNTS.items()),
        (pl.col(TIMESTAMP) >= moment - timedelta(days=_SHORT_DAYS)).sum().alias(EVENTS_30D),
    )


def _roster(members: pl.DataFrame | None, moment: datetime) -> pl.LazyFrame:
    """Members of the members table who joined before ``moment`` (or whose join date is
    unknown), with their join date and declared tier."""
    schema = {MEMBER_ID: pl.Utf8, JOINED_AT: pl.Datetime("us"), TIER: pl.Utf8}
    if members is None:
        return pl.LazyFrame(schema=schema)
    require_columns(members, (MEMBER_ID,), "members")
    present = set(members.columns)
    return (
        members.lazy()
        .select(
            pl.col(MEMBER_ID).cast(pl.Utf8),
            (pl.col(JOINED_AT) if JOINED_AT in present else pl.lit(None))
            .cast(pl.Datetime("us"))
            .alias(JOINED_AT),
            (pl.col(TIER) if TIER in present else pl.lit(None)).cast(pl.Utf8).alias(TIER),
        )
        .filter(pl.col(JOINED_AT).is_null() | (pl.col(JOINED_AT) < moment))
        .unique(MEMBER_ID, keep="first")
    )


def _finish(frame: pl.DataFrame, moment: datetime) -> pl.DataFrame:
    """Turn counts into rates and ratios, and derive the BTYD inputs."""
    orders = pl.col(_ORDERS)
    first_purchase = pl.col(DAYS_SINCE_FIRST_PURCHASE)
    orders_90d = pl.col(ORDERS_90D)
    first_seen = pl.min_horizontal(_FIRST_SEEN, JOINED_AT)
    # A mean gap of minutes (two invoices in one visit) would blow a ratio up: floor it at a day.
    mean_gap = pl.max_horizontal(pl.col(MEAN_GAP_DAYS), pl.lit(1.0))
    before_90d = (orders - orders_90d) * RATE_DAYS / _floored(first_purchase - _LONG_DAYS)
    frame = frame.with_columns(
        orders.is_not_null().alias(IS_BUYER),
        days_before(moment, first_seen).alias(TENURE_DAYS),
        *(pl.col(alias).fill_null(0) for alias in (*_COUNTS.values(), EVENTS_30D)),
    )
    tenure = _floored(pl.col(TENURE_DAYS))
    return frame.with_columns(
        (orders * RATE_DAYS / _floored(first_purchase)).alias(ORDERS_PER_30D),
        (pl.col(_SPEND) * RATE_DAYS / _floored(first_purchase)).alias(SPEND_PER_30D),
        (pl.col(_SPEND) / orders).alias(MEAN_ORDER_VALUE),
        (pl.col(_LAST_GAP) / mean_gap).alias(LAST_GAP_RATIO),
        (pl.col(DAYS_SINCE_PURCHASE) / mean_gap).alias(OPEN_GAP_RATIO),
        pl.when(first_purchase >= _LONG_DAYS)
        .then(orders_90d * RATE_DAYS / _LONG_DAYS - before_90d)
        .alias(TREND_90D),
        (pl.col(ORDERS_30D) - (orders_90d - pl.col(ORDERS_30D)) / 2).alias(TREND_30D),
        *(
            (pl.col(alias) * RATE_DAYS / tenure).alias(name)
            for alias, name in zip(
                _COUNTS.values(), (VIEWS_PER_30D, CLICKS_PER_30D, CARTS_PER_30D), strict=True
            )
        ),
        _tier_rank().alias(TIER_RANK),
        (orders - 1).alias(BTYD_X),
        (first_purchase - pl.col(DAYS_SINCE_PURCHASE)).alias(BTYD_TX),
        first_purchase.alias(BTYD_T),
        pl.when(orders > 1)
        .then((pl.col(_SPEND) - pl.col(_FIRST_VALUE)) / (orders - 1))
        .alias(BTYD_M),
    ).select(
        MEMBER_ID,
        *(pl.col(name).cast(pl.Float64) for name in FEATURES),
        IS_BUYER,
        pl.col(_ORDERS).fill_null(0).cast(pl.Int64).alias(TOTAL_ORDERS),
        pl.col(_SPEND).fill_null(0.0).cast(pl.Float64).alias(TOTAL_SPEND),
        pl.col(BTYD_X).cast(pl.Int64),
        *(pl.col(name).cast(pl.Float64) for name in (BTYD_TX, BTYD_T, BTYD_M)),
    )


def _floored(days: pl.Expr) -> pl.Expr:
    """A span in days, at least :data:`RATE_DAYS`, as the denominator of a rate."""
    return pl.max_horizontal(days, pl.lit(RATE_DAYS))


def _tier_rank() -> pl.Expr:
    ladder = pl.Series(VALUE_TIERS)
    return (
        pl.col(TIER)
        .str.to_lowercase()
        .replace_strict(ladder, range(len(ladder)), default=None, return_dtype=pl.Float64)
    )
