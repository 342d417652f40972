"""Members' purchase orders in time order: what the next-basket models learn from.

A next-basket model cares about *occasions*: buying an item in 12 orders says it is a staple,
buying 12 of it in one order does not. The interaction matrix cannot tell the two apart (it
sums event weights per line, across all event types), so :func:`member_orders` goes back to
the purchase rows: one row per distinct (member, order, item), each order numbered in the
member's time order. Orders are :func:`features.baskets.order_key`'s and are sequenced as
:func:`features.splits.order_starts` sequences them (by start, ties by key), so that "a
member's last order" is the same one here as in the next-basket splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from features import columns as col
from features.baskets import order_key
from features.splits import order_starts
from features.times import days_before
from training.dataset import TrainingData

__all__ = ["MemberOrders", "member_orders"]


@dataclass(frozen=True)
class MemberOrders:
    """Row ``r``: member ``members[r]`` bought item ``items[r]`` in their order number
    ``positions[r]`` (0 = oldest) of ``order_counts[r]``, ``ages[r]`` days before the data's
    reference time (the order's start). Only members and items of the training maps."""

    members: np.ndarray
    items: np.ndarray
    positions: np.ndarray
    order_counts: np.ndarray
    ages: np.ndarray


def member_orders(data: TrainingData) -> MemberOrders:
    """Every member's purchase orders, one row per distinct item of each order."""
    purchases = data.interactions.filter(pl.col(col.EVENT) == col.PURCHASE)
    starts = order_starts(purchases)  # member, order key, start: in member and start order
    # order_starts names its key column privately; it is the one that is neither of these.
    (key,) = (name for name in starts.columns if name not in (col.MEMBER_ID, col.TIMESTAMP))
    reference = data.reference_time or purchases.get_column(col.TIMESTAMP).max()
    numbered = starts.with_columns(
        pl.int_range(pl.len()).over(col.MEMBER_ID).alias("_position"),
        pl.len().over(col.MEMBER_ID).alias("_orders"),
        (days_before(reference, col.TIMESTAMP) if reference is not None else pl.lit(0.0)).alias(
            "_age"
        ),
    ).drop(col.TIMESTAMP)
    lines = (
        purchases.select(col.MEMBER_ID, col.ITEM_ID, order_key(purchases.columns).alias(key))
        .unique()
        .join(numbered, on=[col.MEMBER_ID, key])
    )
    members = data.member_ids.to_internal(lines.get_column(col.MEMBER_ID), strict=False)
    items = data.item_ids.to_internal(lines.get_column(col.ITEM_ID), strict=False)
    mapped = (members >= 0) & (items >= 0)
    return MemberOrders(
        members=members[mapped],
        items=items[mapped],
        positions=lines.get_column("_position").to_numpy()[mapped].astype(np.int64),
        order_counts=lines.get_column("_orders").to_numpy()[mapped].astype(np.int64),
        ages=lines.get_column("_age").to_numpy()[mapped].astype(np.float64),
    )
