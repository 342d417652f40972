"""Member tags: what a member prefers and how they shop, defined once from their purchase lines.

Every tag is computed from *purchase lines* (one purchase row: an item in an order, see
:func:`purchase_lines`) up to the reference time, so that a tag as of a date never sees the future.

**Preference tags** (``preference_tags``: a list of ``{kind, name, affinity}``, ``kind``
``"category"`` or ``"brand"``). For a member m and a category c::

    affinity(m, c) = (m's purchase lines in c / m's purchase lines with a category)
                     / (the store's purchase lines in c / the store's lines with a category)

Above 1 the member over-indexes on c against the store. A category is a tag when the member has
at least ``min_support`` (2) lines in it and its affinity is at least ``min_affinity`` (1); the
``top_k`` (3) highest by affinity are kept per kind (ties: more lines first, then by name).
Brands the same. Lines count, not quantities or spend, so that a bulk buyer's one order does not
outweigh their habits; a catalog without categories or brands gives no tags of that kind.

**Behaviour tags** (``behaviour_tags``: a list of the names below, in :data:`BEHAVIOURS` order).
Each needs a minimum of evidence, so that one purchase never makes a habit:

* ``weekend-shopper``: at least ``min_orders`` (3) orders and at least ``weekend_share`` (0.6)
  of them placed on a Saturday or Sunday (UTC; an order's time is its first line's). Two days in
  seven is a share of 0.29 by chance.
* ``bundle-buyer``: at least ``min_orders`` (3) orders and at least ``bundle_share`` (0.5) of
  them holding two or more distinct items (multi-item baskets).
* ``high-price-buyer``: at least ``min_lines`` (3) lines with a price and at least
  ``high_price_share`` (0.5) of them priced (unit price paid) strictly above the 75th percentile
  of the unit prices of their category's purchase lines (the store's, where items have no
  category).
* ``new-arrival-buyer``: at least ``min_lines`` (3) judged lines and at least
  ``new_arrival_share`` (0.5) of them bought within ``new_arrival_days`` (30) of the item's
  release. The release is the catalog's ``released_at`` where it has one; otherwise the item's
  first event in the data, and then lines in the data's first ``new_arrival_days`` are not
  judged (every item would look new there).
* ``deal-seeker``: only with a catalog that has list prices (``price``): at least ``min_lines``
  (3) lines and at least ``deal_share`` (0.5) of them paid at least ``deal_discount`` (5%) below
  the item's list price.

No night-owl tag: timestamps are UTC and members' time zones are unknown, so an hour of day
says nothing about a member's night.

**Purchase cycle** (``purchase_cycle_days``): the median of the days between consecutive orders
(an order's time is its first line's); null with fewer than two orders.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from features.baskets import line_value, order_key
from features.columns import (
    BRAND,
    CATEGORY,
    EVENT,
    ITEM_ID,
    MEMBER_ID,
    ORDER_ID,
    PRICE,
    PURCHASE,
    QUANTITY,
    RELEASED_AT,
    TIMESTAMP,
)
from features.frames import require_columns
from features.times import as_naive_utc

__all__ = [
    "BEHAVIOURS",
    "BEHAVIOUR_TAGS",
    "BUNDLE_BUYER",
    "DEAL_SEEKER",
    "HIGH_PRICE_BUYER",
    "LINE_VALUE",
    "NEW_ARRIVAL_BUYER",
    "ORDER",
    "PREFERENCE_TAGS",
    "PREFERENCE_TAG_DTYPE",
    "PURCHASE_CYCLE_DAYS",
    "WEEKEND_SHOPPER",
    "TagRules",
    "behaviour_tags",
    "preference_tags",
    "purchase_cycles",
    "purchase_lines",
]

#: Output columns.
PREFERENCE_TAGS: Final = "preference_tags"
BEHAVIOUR_TAGS: Final = "behaviour_tags"
PURCHASE_CYCLE_DAYS: Final = "purchase_cycle_days"

#: Behaviour tags, in the order a member's list gives them.
WEEKEND_SHOPPER: Final = "weekend-shopper"
BUNDLE_BUYER: Final = "bundle-buyer"
HIGH_PRICE_BUYER: Final = "high-price-buyer"
NEW_ARRIVAL_BUYER: Final = "new-arrival-buyer"
DEAL_SEEKER: Final = "deal-seeker"
BEHAVIOURS: Final = (
    WEEKEND_SHOPPER,
    BUNDLE_BUYER,
    HIGH_PRICE_BUYER,
    NEW_ARRIVAL_BUYER,
    DEAL_SEEKER,
)

#: Columns of :func:`purchase_lines` besides member, item, timestamp, category and brand.
ORDER: Final = "_order"
LINE_VALUE: Final = "_line_value"
_HIGH_PRICE: Final = "_high_price"
_NEW_ARRIVAL: Final = "_new_arrival"
_DISCOUNTED: Final = "_discounted"
_LIST_PRICE: Final = "_list_price"
_RELEASE: Final = "_release"

_PRICE_PERCENTILE: Final = 0.75
_WEEKEND_DAYS: Final = (6, 7)  # ISO weekday: Saturday, Sunday
_MICROSECONDS_PER_DAY: Final = 86_400_000_000
#: The type of :data:`PREFERENCE_TAGS`.
PREFERENCE_TAG_DTYPE: Final = pl.List(
    pl.Struct({"kind": pl.Utf8, "name": pl.Utf8, "affinity": pl.Float64})
)
_LINE_INPUT: Final = (MEMBER_ID, ITEM_ID, TIMESTAMP, EVENT, QUANTITY, PRICE, ORDER_ID)


class TagRules(BaseModel):
    """The thresholds of the tags (see the module docstring for what each one means)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = Field(default=3, ge=1)
    min_support: int = Field(default=2, ge=1)
    min_affinity: float = Field(default=1.0, ge=0.0)
    min_orders: int = Field(default=3, ge=1)
    min_lines: int = Field(default=3, ge=1)
    weekend_share: float = Field(default=0.6, gt=0.0, le=1.0)
    bundle_share: float = Field(default=0.5, gt=0.0, le=1.0)
    high_price_share: float = Field(default=0.5, gt=0.0, le=1.0)
    new_arrival_share: float = Field(default=0.5, gt=0.0, le=1.0)
    new_arrival_days: float = Field(default=30.0, gt=0.0)
    deal_share: float = Field(default=0.5, gt=0.0, le=1.0)
    deal_discount: float = Field(default=0.05, gt=0.0, lt=1.0)


_DEFAULT_RULES = TagRules()  # frozen, so one shared default is safe


def purchase_lines(
    interactions: pl.DataFrame,
    reference_time: datetime,
    items: pl.DataFrame | None = None,
    rules: TagRules = _DEFAULT_RULES,
) -> pl.DataFrame:
    """The purchase rows up to ``reference_time``, one per line, with what the tags judge.

    Columns: member, item, timestamp, :data:`ORDER` (:func:`features.baskets.order_key`),
    :data:`LINE_VALUE` (:func:`features.baskets.line_value`), category and brand (the
    catalog's, else those the interactions carry, else null) and, per line, whether it is high
    priced, a new arrival, or discounted (null where it cannot be judged). Built once and
    shared by every tag, so that the purchases are filtered and joined to the catalog once.
    """
    require_columns(interactions, _LINE_INPUT, "interactions")
    reference = as_naive_utc(reference_time)
    history = interactions.lazy().filter(pl.col(TIMESTAMP) <= reference)
    lines = history.filter(pl.col(EVENT) == PURCHASE).select(
        MEMBER_ID,
        ITEM_ID,
        TIMESTAMP,
        order_key(interactions.columns).alias(ORDER),
        line_value().alias(LINE_VALUE),
        PRICE,
        *_carried(interactions, items),
    )
    lines = _with_catalog(lines, items)
    lines = _with_release(lines, history, items, interactions, rules)
    return (
        _with_high_price(lines)
        .with_columns(_discounted(items, rules).alias(_DISCOUNTED))
        .select(
            MEMBER_ID,
            ITEM_ID,
            TIMESTAMP,
            ORDER,
            LINE_VALUE,
            CATEGORY,
            BRAND,
            _HIGH_PRICE,
            _NEW_ARRIVAL,
            _DISCOUNTED,
        )
        .collect()
    )


def _carried(interactions: pl.DataFrame, items: pl.DataFrame | None) -> list[pl.Expr]:
    """Category and brand from the interactions where the catalog does not give them."""
    exprs = []
    for name in (CATEGORY, BRAND):
        from_catalog = items is not None and name in items.columns
        if not from_catalog:
            carried = name in interactions.columns
            value = pl.col(name).cast(pl.Utf8) if carried else pl.lit(None, dtype=pl.Utf8)
            exprs.append(value.alias(name))
    return exprs


def _with_catalog(lines: pl.LazyFrame, items: pl.DataFrame | None) -> pl.LazyFrame:
    if items is None:
        return lines.with_columns(pl.lit(None, dtype=pl.Float64).alias(_LIST_PRICE))
    require_columns(items, (ITEM_ID,), "items")
    fields = [pl.col(ITEM_ID).cast(pl.Utf8)]
    fields += [pl.col(name).cast(pl.Utf8) for name in (CATEGORY, BRAND) if name in items.columns]
    list_price = pl.col(PRICE).cast(pl.Float64) if PRICE in items.columns else pl.lit(None)
    fields.append(list_price.cast(pl.Float64).alias(_LIST_PRICE))
    if RELEASED_AT in items.columns:
        fields.append(pl.col(RELEASED_AT).cast(pl.Datetime("us")).alias(_RELEASE))
    catalog = items.lazy().select(fields).unique(ITEM_ID, keep="first")
    return lines.join(catalog, on=ITEM_ID, how="left")


def _with_release(
    lines: pl.LazyFrame,
    history: pl.LazyFrame,
    items: pl.DataFrame | None,
    interactions: pl.DataFrame,
    rules: TagRules,
) -> pl.LazyFrame:
    """Flag new-arrival lines: by the catalog's release date, else by the item's first event
    (then lines too near the data's start are not judged)."""
    window = timedelta(days=rules.new_arrival_days)
    if items is not None and RELEASED_AT in items.columns:
        judged = pl.col(_RELEASE).is_not_null()
    else:
        first_seen = history.group_by(ITEM_ID).agg(pl.col(TIMESTAMP).min().alias(_RELEASE))
        lines = lines.join(first_seen, on=ITEM_ID, how="left")
        start = interactions.get_column(TIMESTAMP).min()
        judged = pl.col(TIMESTAMP) >= pl.lit(start, dtype=pl.Datetime("us")) + window
    age = pl.col(TIMESTAMP) - pl.col(_RELEASE)
    new = (age >= timedelta(0)) & (age <= window)
    return lines.with_columns(pl.when(judged).then(new).alias(_NEW_ARRIVAL))


def _with_high_price(lines: pl.LazyFrame) -> pl.LazyFrame:
    """Flag lines priced above their category's 75th percentile of unit prices paid."""
    cut = "_price_cut"
    cuts = lines.group_by(CATEGORY).agg(pl.col(PRICE).quantile(_PRICE_PERCENTILE).alias(cut))
    return lines.join(cuts, on=CATEGORY, how="left", nulls_equal=True).with_columns(
        (pl.col(PRICE) > pl.col(cut)).alias(_HIGH_PRICE)
    )


def _discounted(items: pl.DataFrame | None, rules: TagRules) -> pl.Expr:
    if items is None or PRICE not in items.columns:
        return pl.lit(None, dtype=pl.Boolean)
    list_price = pl.col(_LIST_PRICE)
    known = (list_price > 0) & pl.col(PRICE).is_not_null()
    return pl.when(known).then(pl.col(PRICE) <= list_price * (1.0 - rules.deal_discount))


def preference_tags(lines: pl.DataFrame, rules: TagRules = _DEFAULT_RULES) -> pl.LazyFrame:
    """``member_id`` and :data:`PREFERENCE_TAGS` of each member with at least one tag."""
    kinds = [_affinities(lines.lazy(), kind, rules) for kind in (CATEGORY, BRAND)]
    ranked = pl.concat(kinds).sort(
        [MEMBER_ID, "_kind_order", "affinity", "_lines", "name"],
        descending=[False, False, True, True, False],
    )
    kept = ranked.filter(pl.int_range(pl.len()).over(MEMBER_ID, "_kind_order") < rules.top_k)
    return kept.group_by(MEMBER_ID, maintain_order=True).agg(
        pl.struct("kind", "name", "affinity").alias(PREFERENCE_TAGS)
    )


def _affinities(lines: pl.LazyFrame, kind: str, rules: TagRules) -> pl.LazyFrame:
    known = lines.filter(pl.col(kind).is_not_null()).select(MEMBER_ID, pl.col(kind).alias("name"))
    per_member = known.group_by(MEMBER_ID, "name").agg(pl.len().alias("_lines"))
    store = per_member.group_by("name").agg(pl.col("_lines").sum().alias("_store"))
    member_share = pl.col("_lines") / pl.col("_lines").sum().over(MEMBER_ID)
    store_share = pl.col("_store") / pl.col("_store").sum()
    return (
        per_member.join(store.with_columns(store_share.alias("_store_share")), on="name")
        .with_columns((member_share / pl.col("_store_share")).alias("affinity"))
        .filter(
            (pl.col("_lines") >= rules.min_support) & (pl.col("affinity") >= rules.min_affinity)
        )
        .select(
            MEMBER_ID,
            pl.lit(kind).alias("kind"),
            "name",
            "affinity",
            "_lines",
            pl.lit(0 if kind == CATEGORY else 1).alias("_kind_order"),
        )
    )


def behaviour_tags(lines: pl.DataFrame, rules: TagRules = _DEFAULT_RULES) -> pl.LazyFrame:
    """``member_id`` and :data:`BEHAVIOUR_TAGS` of every member with a purchase line."""
    orders = (
        _orders(lines.lazy())
        .group_by(MEMBER_ID)
        .agg(
            pl.len().alias("_orders"),
            pl.col("_weekend").mean().alias("_weekend_share"),
            (pl.col("_items") >= 2).mean().alias("_bundle_share"),
        )
    )
    enough_orders = pl.col("_orders") >= rules.min_orders
    line_flags = (
        lines.lazy()
        .group_by(MEMBER_ID)
        .agg(
            *(
                share
                for flag in (_HIGH_PRICE, _NEW_ARRIVAL, _DISCOUNTED)
                for share in _share_of(flag)
            )
        )
    )
    tests = {
        WEEKEND_SHOPPER: enough_orders & (pl.col("_weekend_share") >= rules.weekend_share),
        BUNDLE_BUYER: enough_orders & (pl.col("_bundle_share") >= rules.bundle_share),
        HIGH_PRICE_BUYER: _line_test(_HIGH_PRICE, rules.high_price_share, rules),
        NEW_ARRIVAL_BUYER: _line_test(_NEW_ARRIVAL, rules.new_arrival_share, rules),
        DEAL_SEEKER: _line_test(_DISCOUNTED, rules.deal_share, rules),
    }
    names = [pl.when(test.fill_null(False)).then(pl.lit(name)) for name, test in tests.items()]
    return orders.join(line_flags, on=MEMBER_ID).select(
        MEMBER_ID, pl.concat_list(names).list.drop_nulls().alias(BEHAVIOUR_TAGS)
    )


def _orders(lines: pl.LazyFrame) -> pl.LazyFrame:
    """One row per order: member, first line's time, weekend or not, distinct items."""
    return (
        lines.group_by(MEMBER_ID, ORDER)
        .agg(pl.col(TIMESTAMP).min(), pl.col(ITEM_ID).n_unique().alias("_items"))
        .with_columns(pl.col(TIMESTAMP).dt.weekday().is_in(_WEEKEND_DAYS).alias("_weekend"))
    )


def _share_of(flag: str) -> list[pl.Expr]:
    """Judged lines and the share of them flagged (the mean skips unjudged, null, lines)."""
    return [
        pl.col(flag).count().alias(f"{flag}_judged"),
        pl.col(flag).cast(pl.Float64).mean().alias(f"{flag}_share"),
    ]


def _line_test(flag: str, share: float, rules: TagRules) -> pl.Expr:
    return (pl.col(f"{flag}_judged") >= rules.min_lines) & (pl.col(f"{flag}_share") >= share)


def purchase_cycles(lines: pl.DataFrame) -> pl.LazyFrame:
    """``member_id`` and :data:`PURCHASE_CYCLE_DAYS` (null with fewer than two orders)."""
    gaps = pl.col(TIMESTAMP).sort().diff().drop_nulls().dt.total_microseconds()
    return (
        _orders(lines.lazy())
        .group_by(MEMBER_ID)
        .agg((gaps / _MICROSECONDS_PER_DAY).median().alias(PURCHASE_CYCLE_DAYS))
    )
