"""The reranker's features: their names, and the item and member statistics behind them.

Features, one row per (member, candidate item); NaN means unknown (LightGBM routes missing
values itself, so a member unknown at fit time gets neutral, not invented, values):

* base evidence -- ``ease``, ``als``, ``item_knn`` scores and ranks among all items, and
  ``ease_share`` (score / the member's best EASE score), because raw scores are not comparable
  across members or between the windows and the serving fit;
* recency of interest -- ``recent_ease``/``recent_ease_rank``: EASE scored on only the items the
  member touched in the last ``recent_days`` before their own last event (a member who just
  moved on to new products is served those, not their old habits);
* item popularity and trend -- distinct buyers ever (log and percentile) and in the last 7, 30
  and 90 days, the 7-vs-30 and 30-vs-90 day rate ratios (demand that is rising now keeps
  rising over the next weeks: seasonal ranges), days since first and last sale;
* item habits and price -- median unit price, median quantity per line, repurchase rate (share
  of buyers who bought it in two or more orders), and new buyers in the last 30 and 90 days
  (members buying it for the first time: exactly what a "new item" label counts);
* member -- distinct items, orders, tenure and days since the last purchase, orders per 30
  days, mean distinct items per order, mean log unit price paid;
* member x item -- ``held`` (log history weight: a viewed but unbought item is a strong
  candidate), ``price_gap`` (item log price minus the member's mean), and family affinity: how
  many of the member's items share the item's variant code (id without its trailing letters:
  Online Retail's 84029E/84029G are colours of one product), its 3-character id prefix, and the
  first/last word of its title (the only category proxy when a catalog has none).

Orders are :func:`features.baskets.order_key`'s, as in association rules and member profiles.
The statistics are computed here, as of a reference time; the per-pair columns are assembled
from them by :class:`~training.models.rerank.first_stage.FirstStage`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.baskets import order_key
from features.ids import IdMap
from features.times import days_before
from training.dataset import TrainingData, history_matrix
from training.models.base import ModelFitError

__all__ = [
    "BASE_MODELS",
    "CANDIDATE_SOURCES",
    "FAMILIES",
    "FEATURE_NAMES",
    "ITEM_FEATURES",
    "MEMBER_FEATURES",
    "RANKED_SOURCES",
    "binary",
    "item_families",
    "item_statistics",
    "member_statistics",
    "recent_histories",
    "reference_time",
]

BASE_MODELS: Final = ("ease", "als", "item_knn", "popular")
#: Score sources that propose candidates and get a rank feature ("recent_ease" is EASE on the
#: member's recent items only).
RANKED_SOURCES: Final = ("ease", "als", "item_knn", "recent_ease")
CANDIDATE_SOURCES: Final = (*RANKED_SOURCES, "popular")
ITEM_FEATURES: Final = (
    "buyers",
    "buyers_percentile",
    "buyers_7d",
    "buyers_30d",
    "buyers_90d",
    "trend_7_30",
    "trend_30_90",
    "age_days",
    "idle_days",
    "price",
    "quantity",
    "repurchase_rate",
    "new_buyers_30d",
    "new_buyers_90d",
)
MEMBER_FEATURES: Final = (
    "orders",
    "tenure_days",
    "recency_days",
    "orders_per_30d",
    "basket_size",
    "member_price",
)
FAMILIES: Final = ("variant", "prefix", "title_first", "title_last")
FEATURE_NAMES: Final = (
    *(name for source in RANKED_SOURCES for name in (source, f"{source}_rank")),
    "ease_share",
    *ITEM_FEATURES,
    "distinct_items",
    *MEMBER_FEATURES,
    "held",
    "price_gap",
    *(f"family_{family}" for family in FAMILIES),
)


def reference_time(data: TrainingData) -> datetime:
    """The time the statistics are computed as of (and label windows count back from)."""
    if data.reference_time is None:
        raise ModelFitError("rerank needs interactions with timestamps (a reference time) to fit")
    return data.reference_time


def binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The matrix as "interacted or not" (float32 ones)."""
    return sp.csr_matrix(matrix != 0, dtype=np.float32)


def _purchases(interactions: pl.DataFrame) -> pl.DataFrame:
    """Purchase rows with their order key as ``_order``, and price and quantity (null when the
    data has none)."""
    purchases = interactions.filter(pl.col(col.EVENT) == col.PURCHASE).with_columns(
        order_key(interactions.columns).alias("_order")
    )
    for optional in (col.PRICE, col.QUANTITY):
        if optional not in purchases.columns:
            purchases = purchases.with_columns(pl.lit(None, dtype=pl.Float64).alias(optional))
    return purchases


def _aligned(frame: pl.DataFrame, key: str, ids: IdMap, names: tuple[str, ...]) -> np.ndarray:
    """Columns ``names`` of a per-id frame as a float32 table indexed by ``ids`` (NaN: absent)."""
    table = np.full((len(ids), len(names)), np.nan, dtype=np.float32)
    index = ids.to_internal(frame.get_column(key), strict=False)
    known = index >= 0
    values = frame.select(names).to_numpy().astype(np.float32)
    table[index[known]] = values[known]
    return table


def item_statistics(interactions: pl.DataFrame, item_ids: IdMap, reference: datetime) -> np.ndarray:
    """Items x :data:`ITEM_FEATURES`: popularity, trend, age, price and repurchase habits."""
    purchases = _purchases(interactions).with_columns(
        days_before(reference, col.TIMESTAMP).alias("_age")
    )
    recent_buyers = [f"buyers_{days}d" for days in (7, 30, 90)]
    buyers_within = [
        pl.col(col.MEMBER_ID).filter(pl.col("_age") <= days).n_unique().alias(name)
        for days, name in zip((7, 30, 90), recent_buyers, strict=True)
    ]
    per_buyer = (
        purchases.group_by(col.ITEM_ID, col.MEMBER_ID)
        .agg(pl.col("_order").n_unique().alias("_orders"), pl.col("_age").max().alias("_first"))
        .group_by(col.ITEM_ID)
        .agg(
            (pl.col("_orders") >= 2).mean().alias("repurchase_rate"),
            *(
                (pl.col("_first") <= days).sum().log1p().alias(f"new_buyers_{days}d")
                for days in (30, 90)
            ),
        )
    )
    per_item = (
        purchases.group_by(col.ITEM_ID)
        .agg(
            pl.col(col.MEMBER_ID).n_unique().alias("buyers"),
            *buyers_within,
            pl.col("_age").max().alias("age_days"),
            pl.col("_age").min().alias("idle_days"),
            pl.col(col.PRICE).median().log().alias("price"),
            pl.col(col.QUANTITY).median().log1p().alias("quantity"),
        )
        .join(per_buyer, on=col.ITEM_ID)
        .with_columns(
            (_log_daily_buyers(7) - _log_daily_buyers(30)).alias("trend_7_30"),
            (_log_daily_buyers(30) - _log_daily_buyers(90)).alias("trend_30_90"),
            pl.col("buyers").rank("average").truediv(pl.len()).alias("buyers_percentile"),
            *(pl.col(name).log1p() for name in ("buyers", *recent_buyers)),
        )
    )
    table = _aligned(per_item, col.ITEM_ID, item_ids, ITEM_FEATURES)
    counts = [index for index, name in enumerate(ITEM_FEATURES) if "buyers" in name]
    table[:, counts] = np.nan_to_num(table[:, counts])  # never bought: zero buyers, not unknown
    return table


def _log_daily_buyers(days: int) -> pl.Expr:
    """log of (distinct buyers in the last ``days`` + 1) per day: rates of different windows
    compare, so their difference is a growth rate."""
    return ((pl.col(f"buyers_{days}d") + 1) / days).log()


def member_statistics(
    interactions: pl.DataFrame, member_ids: IdMap, reference: datetime
) -> np.ndarray:
    """Members x :data:`MEMBER_FEATURES`: order habits, recency and price level."""
    purchases = _purchases(interactions).with_columns(
        days_before(reference, col.TIMESTAMP).alias("_age")
    )
    per_member = (
        purchases.group_by(col.MEMBER_ID)
        .agg(
            pl.col("_order").n_unique().alias("orders"),
            pl.col("_age").max().alias("tenure_days"),
            pl.col("_age").min().alias("recency_days"),
            (pl.len() / pl.col("_order").n_unique()).alias("basket_size"),
            pl.col(col.PRICE).log().mean().alias("member_price"),
        )
        .with_columns(
            (pl.col("orders") * 30 / pl.max_horizontal(pl.col("tenure_days"), 30)).alias(
                "orders_per_30d"
            )
        )
    )
    return _aligned(per_member, col.MEMBER_ID, member_ids, MEMBER_FEATURES)


def recent_histories(data: TrainingData, recent_days: float) -> sp.csr_matrix:
    """Binary members x items: what each member touched in the last ``recent_days`` before their
    own last event (their current interest, whatever their age)."""
    last_seen = pl.col(col.TIMESTAMP).max().over(col.MEMBER_ID)
    elapsed_days = (last_seen - pl.col(col.TIMESTAMP)).dt.total_seconds() / 86_400
    recent = data.interactions.filter(elapsed_days <= recent_days)
    return binary(history_matrix(recent, data.member_ids, data.item_ids))


def item_families(interactions: pl.DataFrame, item_ids: IdMap) -> np.ndarray:
    """Items x :data:`FAMILIES` integer codes (-1: unknown): groups of related products."""
    items = pl.DataFrame({col.ITEM_ID: item_ids.external_ids}, schema={col.ITEM_ID: pl.Utf8})
    if col.TITLE in interactions.columns:
        titles = interactions.group_by(col.ITEM_ID).agg(pl.col(col.TITLE).drop_nulls().first())
        items = items.join(titles, on=col.ITEM_ID, how="left", maintain_order="left")
    else:
        items = items.with_columns(pl.lit(None, dtype=pl.Utf8).alias(col.TITLE))
    words = pl.col(col.TITLE).str.to_uppercase().str.extract_all(r"[A-Z]+")
    families = items.select(
        pl.col(col.ITEM_ID).str.replace(r"[A-Za-z]+$", "").alias("variant"),
        pl.col(col.ITEM_ID).str.slice(0, 3).alias("prefix"),
        words.list.first().alias("title_first"),
        words.list.last().alias("title_last"),
    )
    codes = families.select(pl.all().rank("dense").cast(pl.Int64) - 1).fill_null(-1)
    return codes.to_numpy().astype(np.int32)
