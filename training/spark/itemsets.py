"""Frequently-bought-together rules: the itemsets counted in Spark, the rules chosen by
:func:`training.rules.rules_of_itemsets`, so that the rule table is the Polars engine's.

Baskets are those of :func:`features.baskets.baskets_from_interactions`: the purchases grouped by
:func:`~features.baskets.order_key` (the order id, else the member and UTC day), each item once
per basket, items indexed in order of their first purchase (the index breaks the rule table's
ties). Validated item ids are already trimmed, which is all the canonical name adds.

Itemsets are counted level by level as :func:`training.itemsets.frequent_itemsets` defines them:
the items in at least ``min_count`` baskets, the pairs of those items in as many baskets (with
``max_pairs``, the threshold first rises to the least count that at most that many pairs reach),
then each larger size from the baskets' frequent itemsets one item smaller that share all but
their last item. Only the frequent itemsets and their counts (few, by construction) come to the
driver, as a :class:`~training.itemsets.FrequentItemsets`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf

from features import columns as col
from training.config import RuleConfig
from training.itemsets import FrequentItemsets, Itemsets
from training.rules import (
    MinedRules,
    best_seller,
    rules_of_itemsets,
    seller_confidence,
    support_count,
)
from training.spark.rows import first_seen

__all__ = ["mine_rules"]

_BASKET, _ITEM, _COUNT = "basket", "item", "count"


def _item(position: int) -> str:
    return f"item_{position}"


def _order_key() -> Column:
    """:func:`features.baskets.order_key` in Spark."""
    day = sf.concat_ws("\x1f", sf.col(col.MEMBER_ID), sf.to_date(col.TIMESTAMP).cast("string"))
    return sf.coalesce(sf.col(col.ORDER_ID), day)


def mine_rules(session: SparkSession, rows: DataFrame, config: RuleConfig) -> MinedRules:
    """The rules :func:`training.rules.mine_rules` finds in the baskets of the fit's ``rows``
    (validated, with their place in the fit: :func:`training.spark.rows.spark_rows`)."""
    purchases = rows.where(sf.col(col.EVENT) == col.PURCHASE)
    names = first_seen(purchases, col.ITEM_ID)
    index = session.createDataFrame(
        pa.table({col.ITEM_ID: names.to_arrow(), _ITEM: np.arange(len(names), dtype=np.int32)})
    )
    baskets = (
        purchases.select(_order_key().alias(_BASKET), col.ITEM_ID)
        .join(index, col.ITEM_ID)
        .select(_BASKET, _ITEM)
        .distinct()
        .persist()
    )
    try:
        n_baskets = baskets.select(_BASKET).distinct().count()
        counts = np.zeros(len(names), dtype=np.int64)
        per_item = baskets.groupBy(_ITEM).count().toArrow()
        counts[per_item.column(_ITEM).to_numpy()] = per_item.column(_COUNT).to_numpy()
        if config.min_support is not None:
            min_count, max_pairs = support_count(n_baskets, config.min_support), None
        else:
            min_count, max_pairs = config.min_count, config.max_pairs
        found = _frequent_itemsets(
            session, baskets, n_baskets, counts, min_count, config.max_size, max_pairs
        )
        floor = (
            config.min_confidence
            if config.min_confidence is not None
            else _popularity_confidence(baskets, counts, config.baseline_rank)
        )
    finally:
        baskets.unpersist()
    return rules_of_itemsets(found, names.to_numpy().astype(object), config, floor)


def _popularity_confidence(baskets: DataFrame, counts: np.ndarray, rank: int) -> float:
    """:func:`training.rules.popularity_confidence` of the baskets in Spark."""
    seller = best_seller(counts, rank)
    if seller is None:
        return 0.0
    sizes = baskets.groupBy(_BASKET).count()
    holding = baskets.where(sf.col(_ITEM) == seller).join(sizes, _BASKET)
    together = holding.agg(sf.sum(sf.col(_COUNT) - 1)).first()
    assert together is not None  # an aggregate has one row
    return seller_confidence(counts, seller, int(together[0] or 0))


def _frequent_itemsets(
    session: SparkSession,
    baskets: DataFrame,
    n_baskets: int,
    counts: np.ndarray,
    min_count: int,
    max_size: int,
    max_pairs: int | None,
) -> FrequentItemsets:
    """The frequent itemsets of ``baskets`` (basket, item), see the module docstring."""
    n_items = len(counts)
    frequent = session.createDataFrame(
        pa.table({_ITEM: np.flatnonzero(counts >= min_count).astype(np.int32)})
    )
    held = baskets.join(frequent, _ITEM)
    # Every basket's pairs of frequent items, kept as the occurrences of the next level.
    second = held.withColumnRenamed(_ITEM, _item(1))
    occurrences = (
        held.withColumnRenamed(_ITEM, _item(0))
        .join(second, _BASKET)
        .where(sf.col(_item(0)) < sf.col(_item(1)))
    )
    pairs = _counted(occurrences, 2, min_count).persist()
    try:
        if max_pairs is not None and pairs.count() > max_pairs:
            cut = pairs.orderBy(sf.col(_COUNT).desc()).offset(max_pairs).first()
            assert cut is not None
            min_count = int(cut[_COUNT]) + 1
        level = _collected(pairs.where(sf.col(_COUNT) >= min_count), 2)
    finally:
        pairs.unpersist()
    single = np.flatnonzero(counts >= min_count)
    found = FrequentItemsets(
        n_baskets, n_items, min_count, counts, [Itemsets(single[:, None], counts[single], single)]
    )
    size = 2
    while len(level[1]):
        items, level_counts = level
        # A level's search key: its prefix id (a pair's first item, a larger itemset's first
        # items' position in the level below) x n_items + its last item.
        prefix = items[:, 0] if size == 2 else found.find(items[:, :-1])
        found.levels.append(Itemsets(items, level_counts, prefix * n_items + items[:, -1]))
        if size == max_size:
            break
        frequent_level = session.createDataFrame(
            pa.table({_item(p): items[:, p].astype(np.int32) for p in range(size)})
        )
        occurrences = occurrences.join(frequent_level, [_item(p) for p in range(size)], "left_semi")
        occurrences = _extended(occurrences, size)
        size += 1
        level = _collected(_counted(occurrences, size, min_count), size)
    return found


def _extended(occurrences: DataFrame, size: int) -> DataFrame:
    """Each basket's itemsets one item larger: two of its ``size``-itemsets that share all but
    their last item, the second's last item appended."""
    shared = [_BASKET, *(_item(p) for p in range(size - 1))]
    last = _item(size - 1)
    other = occurrences.select(*shared, sf.col(last).alias(_item(size)))
    return occurrences.join(other, shared).where(sf.col(last) < sf.col(_item(size)))


def _counted(occurrences: DataFrame, size: int, min_count: int) -> DataFrame:
    """The itemsets of ``size`` in at least ``min_count`` baskets, with their counts."""
    counted = occurrences.groupBy(*(_item(p) for p in range(size))).count()
    return counted.where(sf.col(_COUNT) >= min_count)


def _collected(itemsets: DataFrame, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Itemsets on the driver: rows of item indices in lexicographic order, and their counts."""
    table = itemsets.orderBy(*(_item(p) for p in range(size))).toArrow()
    items = np.column_stack([table.column(_item(p)).to_numpy() for p in range(size)])
    counts = table.column(_COUNT).to_numpy()
    return items.astype(np.int64).reshape(-1, size), counts.astype(np.int64)
