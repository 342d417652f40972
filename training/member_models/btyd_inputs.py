"""The BG/NBD and Gamma-Gamma inputs of each buyer as of a date, from validated interactions.

One definition of an order everywhere (:func:`features.baskets.order_key`) and of its value
(the sum of :func:`features.baskets.line_value` over its rows, an unknown price counting 0, as
members' spend does). An order happens at its first row's timestamp. Times are exact fractional
days, not rounded: the models are in continuous time, and the fit compresses repeated rows
itself when the data are at day resolution.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

from features.baskets import line_value, order_key
from features.columns import EVENT, MEMBER_ID, PRICE, PURCHASE, QUANTITY, TIMESTAMP
from features.frames import require_columns
from features.times import as_naive_utc, days_before

__all__ = ["T_OBS", "T_X", "M", "X", "btyd_inputs"]

#: Repeat purchases: distinct orders - 1.
X: Final = "x"
#: Days from the first order to the last.
T_X: Final = "t_x"
#: Days from the first order to ``as_of`` (FHL's T).
T_OBS: Final = "t_obs"
#: Mean value of the repeat orders (the first order left out); null when x = 0.
M: Final = "m"

_ORDER: Final = "_order"
_PLACED: Final = "_placed"
_VALUE: Final = "_value"


def btyd_inputs(interactions: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """One row per member with a purchase before ``as_of``: member_id, x (Int64), t_x, t_obs
    and m (Float64), sorted by member_id.

    Members without a purchase before ``as_of`` have no row: BG/NBD describes customers from
    their first purchase on. Events at or after ``as_of`` are not seen.
    """
    require_columns(interactions, (MEMBER_ID, EVENT, TIMESTAMP, QUANTITY, PRICE), "interactions")
    reference = as_naive_utc(as_of)
    orders = (
        interactions.lazy()
        .filter((pl.col(EVENT) == PURCHASE) & (pl.col(TIMESTAMP) < reference))
        .group_by(MEMBER_ID, order_key(interactions.columns).alias(_ORDER))
        .agg(pl.col(TIMESTAMP).min().alias(_PLACED), line_value().sum().alias(_VALUE))
        .sort(MEMBER_ID, _PLACED, _ORDER)  # the order key breaks ties: the first order is fixed
    )
    per_member = orders.group_by(MEMBER_ID).agg(
        (pl.len() - 1).cast(pl.Int64).alias(X),
        days_before(reference, pl.col(_PLACED).first()).alias(T_OBS),
        days_before(reference, pl.col(_PLACED).last()).alias("_recency"),
        (pl.col(_VALUE).sum() - pl.col(_VALUE).first()).alias("_repeat_value"),
    )
    return (
        per_member.select(
            pl.col(MEMBER_ID),
            pl.col(X),
            (pl.col(T_OBS) - pl.col("_recency")).alias(T_X),
            pl.col(T_OBS),
            pl.when(pl.col(X) > 0).then(pl.col("_repeat_value") / pl.col(X)).alias(M),
        )
        .sort(MEMBER_ID)
        .collect()
    )
