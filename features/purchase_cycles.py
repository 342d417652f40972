"""Purchase cycles: how often an item is bought again, per item and per member, from purchases.

Members of a grocery or wholesale program buy many items again and again; how long they wait
between two purchases of an item is its *purchase cycle*. This module defines it once, from the
purchase rows up to the data's end, for the buy-again list (:mod:`training.buy_again`) and the
repeatable-item rule that decides which purchases stay recommendable.

**Occasion.** One order holding the item (:func:`features.baskets.order_key`: an ``order_id``,
else one order per member and UTC day): several lines of one item in one order are one
occasion, at the time of its first line. A member "rebuys" an item with two occasions or more.

**Interval.** The days between two consecutive occasions of one member and item (fractional
days). Two orders of one day are two occasions (on Online Retail 2.3% of the intervals are
shorter than a day): the order, not the day, is the data's own unit of a shopping trip.

**Per item** (:func:`purchase_cycles`, ``items``): ``buyers`` (members with an occasion),
``rebuyers`` (members with two or more), ``rebuy_rate`` = rebuyers / buyers, and
``median_interval_days``, the median of every interval of every rebuyer pooled, with their
count ``intervals`` (a member who rebuys often weighs in with each interval: the cycle is that
of the purchases, not of the average member).

**Per member and item** (``member_items``): ``occasions``, ``first_purchase`` and
``last_purchase``, ``own_interval_days`` (the median of the member's own intervals; null with
one occasion) and ``cycle_days``, the member's own cycle shrunk towards the item's::

    cycle = (n x own + k x item median) / (n + k)      n: the member's intervals (occasions - 1)

with ``k`` = :attr:`CycleRules.prior_strength` (2): the item's cycle counts as ``k`` intervals
of evidence, so one interval of the member moves a third of the way from the item's cycle to
theirs and six move three quarters. With one occasion the cycle is the item's median; null
when nobody ever bought the item twice (there is no cycle to go by).

**Repeatable.** An item is bought again when its data say so or the catalog says so:
``repeatable_by_data`` holds when at least ``min_buyers`` (20) members bought it and at least
``min_rebuy_rate`` (0.2: one buyer in five) of them bought it again; ``repeatable`` is that or
the catalog's :data:`features.columns.REPEATABLE` flag. On Online Retail (no catalog flag) the
data rule marks 895 of its 3,665 items; of the 2,790 items with 10 buyers or more, the median
one is bought again by 16% of its buyers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from features.baskets import order_key
from features.columns import EVENT, ITEM_ID, MEMBER_ID, PURCHASE, REPEATABLE, TIMESTAMP
from features.frames import require_columns

__all__ = [
    "BUYERS",
    "CYCLE_DAYS",
    "DEFAULT_CYCLE_RULES",
    "FIRST_PURCHASE",
    "INTERVALS",
    "LAST_PURCHASE",
    "MEDIAN_INTERVAL_DAYS",
    "OCCASIONS",
    "OWN_INTERVAL_DAYS",
    "REBUYERS",
    "REBUY_RATE",
    "REPEATABLE_BY_DATA",
    "CycleRules",
    "PurchaseCycles",
    "purchase_cycles",
]

#: Per member and item.
OCCASIONS: Final = "occasions"
FIRST_PURCHASE: Final = "first_purchase"
LAST_PURCHASE: Final = "last_purchase"
OWN_INTERVAL_DAYS: Final = "own_interval_days"
CYCLE_DAYS: Final = "cycle_days"
#: Per item (and ``repeatable``, :data:`features.columns.REPEATABLE`).
BUYERS: Final = "buyers"
REBUYERS: Final = "rebuyers"
REBUY_RATE: Final = "rebuy_rate"
MEDIAN_INTERVAL_DAYS: Final = "median_interval_days"
INTERVALS: Final = "intervals"
REPEATABLE_BY_DATA: Final = "repeatable_by_data"

_ORDER: Final = "_order"
_GAP: Final = "_gap_days"
_MICROSECONDS_PER_DAY: Final = 86_400_000_000


class CycleRules(BaseModel):
    """The prior strength of the shrunk cycle and the thresholds of the repeatable rule (see
    the module docstring). Training and serving use the same values: the buy-again ranking
    shrinks a member's repeat evidence with the same ``prior_strength``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prior_strength: float = Field(default=2.0, gt=0.0)
    min_buyers: int = Field(default=20, ge=1)
    min_rebuy_rate: float = Field(default=0.2, gt=0.0, le=1.0)


DEFAULT_CYCLE_RULES: Final = CycleRules()  # frozen, so one shared default is safe


@dataclass(frozen=True)
class PurchaseCycles:
    """``items``: one row per item bought at least once, and per catalog item (``buyers`` 0)
    when a catalog is given; ``member_items``: one row per member and item they bought, sorted
    by member then item."""

    items: pl.DataFrame
    member_items: pl.DataFrame


def purchase_cycles(
    interactions: pl.DataFrame,
    catalog: pl.DataFrame | None = None,
    rules: CycleRules = DEFAULT_CYCLE_RULES,
) -> PurchaseCycles:
    """The purchase cycles of validated ``interactions`` (their purchases; other events do not
    count), with ``catalog`` (``item_id`` and, optionally, ``repeatable``) for the repeatable
    flag. One pass: the occasions are built once and both tables aggregate them."""
    require_columns(interactions, (MEMBER_ID, ITEM_ID, TIMESTAMP, EVENT), "interactions")
    occasions = _occasions(interactions)
    member_items = occasions.group_by(MEMBER_ID, ITEM_ID).agg(
        pl.len().cast(pl.Int32).alias(OCCASIONS),
        pl.col(TIMESTAMP).min().alias(FIRST_PURCHASE),
        pl.col(TIMESTAMP).max().alias(LAST_PURCHASE),
        pl.col(_GAP).median().alias(OWN_INTERVAL_DAYS),
    )
    per_item = member_items.group_by(ITEM_ID).agg(
        pl.len().cast(pl.Int32).alias(BUYERS),
        (pl.col(OCCASIONS) >= 2).sum().cast(pl.Int32).alias(REBUYERS),
    )
    intervals = occasions.group_by(ITEM_ID).agg(
        pl.col(_GAP).median().alias(MEDIAN_INTERVAL_DAYS),
        pl.col(_GAP).count().cast(pl.Int32).alias(INTERVALS),
    )
    items = per_item.join(intervals, on=ITEM_ID, how="left")
    if catalog is None:
        items = items.with_columns(pl.lit(False).alias(REPEATABLE))
    else:  # every catalog item gets a row, bought or not
        items = items.join(
            _catalog_flags(catalog), on=ITEM_ID, how="full", coalesce=True
        ).with_columns(pl.col(BUYERS, REBUYERS, INTERVALS).fill_null(0),
                       pl.col(REPEATABLE).fill_null(False))  # fmt: skip
    items = _with_repeatable(items, rules)
    shrunk = member_items.join(
        items.select(ITEM_ID, MEDIAN_INTERVAL_DAYS), on=ITEM_ID, how="left"
    ).with_columns(_shrunk_cycle(rules.prior_strength).alias(CYCLE_DAYS))
    items_frame, member_frame = pl.collect_all([
        items.sort(ITEM_ID),
        shrunk.drop(MEDIAN_INTERVAL_DAYS).sort(MEMBER_ID, ITEM_ID),
    ])  # fmt: skip
    return PurchaseCycles(items=items_frame, member_items=member_frame)


def _occasions(interactions: pl.DataFrame) -> pl.LazyFrame:
    """One row per member, item and order (its first line's time), in time order per member
    and item, with the days since the pair's previous occasion (null for the first)."""
    purchases = interactions.lazy().filter(pl.col(EVENT) == PURCHASE)
    occasions = (
        purchases.group_by(
            pl.col(MEMBER_ID).cast(pl.Utf8),
            pl.col(ITEM_ID).cast(pl.Utf8),
            order_key(interactions.columns).alias(_ORDER),
        )
        .agg(pl.col(TIMESTAMP).min())
        .sort(MEMBER_ID, ITEM_ID, TIMESTAMP)
    )
    same_pair = (pl.col(MEMBER_ID) == pl.col(MEMBER_ID).shift()) & (
        pl.col(ITEM_ID) == pl.col(ITEM_ID).shift()
    )
    gap = pl.col(TIMESTAMP).diff().dt.total_microseconds() / _MICROSECONDS_PER_DAY
    return occasions.with_columns(pl.when(same_pair).then(gap).alias(_GAP))


def _catalog_flags(catalog: pl.DataFrame) -> pl.LazyFrame:
    """Each catalog item once (its first row) with its repeatable flag (False when absent)."""
    require_columns(catalog, (ITEM_ID,), "items")
    flag = (
        pl.col(REPEATABLE).cast(pl.Boolean).fill_null(False)
        if REPEATABLE in catalog.columns
        else pl.lit(False)
    )
    return (
        catalog.lazy()
        .select(pl.col(ITEM_ID).cast(pl.Utf8), flag.alias(REPEATABLE))
        .unique(ITEM_ID, keep="first", maintain_order=True)
    )


def _with_repeatable(items: pl.LazyFrame, rules: CycleRules) -> pl.LazyFrame:
    """``rebuy_rate``, ``repeatable_by_data`` and ``repeatable`` (the data's rule or the
    catalog's flag)."""
    rate = pl.when(pl.col(BUYERS) > 0).then(pl.col(REBUYERS) / pl.col(BUYERS))
    by_data = (pl.col(BUYERS) >= rules.min_buyers) & (
        pl.col(REBUY_RATE).fill_null(0.0) >= rules.min_rebuy_rate
    )
    columns = (ITEM_ID, BUYERS, REBUYERS, REBUY_RATE, MEDIAN_INTERVAL_DAYS, INTERVALS,
               REPEATABLE_BY_DATA, REPEATABLE)  # fmt: skip
    return (
        items.with_columns(rate.alias(REBUY_RATE))
        .with_columns(by_data.alias(REPEATABLE_BY_DATA))
        .with_columns((pl.col(REPEATABLE_BY_DATA) | pl.col(REPEATABLE)).alias(REPEATABLE))
        .select(columns)
    )


def _shrunk_cycle(prior_strength: float) -> pl.Expr:
    """The member's own median interval shrunk towards the item's median (module docstring)."""
    n = (pl.col(OCCASIONS) - 1).cast(pl.Float64)
    own, item = pl.col(OWN_INTERVAL_DAYS), pl.col(MEDIAN_INTERVAL_DAYS)
    return (
        pl.when(n == 0)
        .then(item)
        .otherwise((n * own + prior_strength * item) / (n + prior_strength))
    )
