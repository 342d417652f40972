"""Orders and baskets: what was bought together, as a baskets x items indicator matrix.

An order is one ``order_id``; purchases without an order id are grouped by member and UTC day,
the usual stand-in for a shopping trip. :func:`order_key` is that definition, the only one:
association rules, member profiles (order frequency) and the reranker's order statistics all
count orders with it. A basket is the items of one order; only purchases count. Item names are
canonicalised the same way everywhere (surrounding whitespace removed), so that an item
spelled ``"liquor "`` in one basket and ``"liquor"`` in another is one item: the Groceries
data has two names that end in a space.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.errors import DataError

__all__ = ["Baskets", "baskets_from_interactions", "line_value", "order_key", "read_basket_file"]


@dataclass(frozen=True)
class Baskets:
    """``matrix[b, i]`` is True when basket ``b`` holds item ``item_names[i]`` (CSR, bool)."""

    matrix: sp.csr_matrix
    item_names: np.ndarray

    @property
    def n_baskets(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])


def _canonical(names: pl.Expr) -> pl.Expr:
    return names.cast(pl.Utf8).str.strip_chars()


def _from_pairs(basket_keys: pl.Series, item_names: pl.Series) -> Baskets:
    """Baskets from (basket key, item name) rows; repeats within a basket count once."""
    pairs = (
        pl.DataFrame({"basket": basket_keys, "item": item_names})
        .drop_nulls()
        .filter(pl.col("item") != "")
        .unique(maintain_order=True)
    )
    items = pairs.get_column("item").unique(maintain_order=True)
    item_index = pairs.get_column("item").replace_strict(
        items, range(len(items)), return_dtype=pl.Int32
    )
    basket_index = pairs.get_column("basket").rank("dense").cast(pl.Int64) - 1
    n_baskets = int(basket_index.max()) + 1 if len(pairs) else 0
    matrix = sp.csr_matrix(
        (
            np.ones(len(pairs), dtype=bool),
            (basket_index.to_numpy(), item_index.to_numpy()),
        ),
        shape=(n_baskets, len(items)),
    )
    return Baskets(matrix=matrix, item_names=items.to_numpy().astype(object))


def order_key(columns: Collection[str]) -> pl.Expr:
    """The order of each purchase row, as a string: its ``order_id``, else its member and UTC
    day (one order per member and day). ``columns``: those of the frame it is evaluated on,
    since files without an order id column are common.

    The key is for grouping: rows with equal keys are one order.
    """
    day_key = pl.concat_str(
        pl.col(col.MEMBER_ID), pl.col(col.TIMESTAMP).dt.date().cast(pl.Utf8), separator="\x1f"
    )
    if col.ORDER_ID not in columns:
        return day_key
    return pl.coalesce(pl.col(col.ORDER_ID).cast(pl.Utf8), day_key)


def line_value() -> pl.Expr:
    """What a purchase row is worth: its quantity times its price, an unknown price counting 0.

    Members' spend (RFM monetary value) and the dashboard's revenue add up this one figure, so
    that a member's spend and the revenue they are part of always agree.
    """
    return pl.col(col.QUANTITY) * pl.col(col.PRICE).fill_null(0.0)


def baskets_from_interactions(interactions: pl.DataFrame) -> Baskets:
    """The purchase baskets of validated interactions, one per order (:func:`order_key`)."""
    purchases = interactions.filter(pl.col(col.EVENT) == col.PURCHASE)
    keyed = purchases.select(
        order_key(purchases.columns).alias("basket"), _canonical(pl.col(col.ITEM_ID)).alias("item")
    )
    return _from_pairs(keyed.get_column("basket"), keyed.get_column("item"))


def read_basket_file(path: Path) -> Baskets:
    """Baskets from a text file with one basket per line, items separated by commas (the
    Groceries format). Blank lines are empty baskets: they count in the number of baskets."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the basket file ({error})") from error
    keys, names = [], []
    for number, line in enumerate(lines):
        for name in line.split(","):
            keys.append(number)
            names.append(name)
    baskets = _from_pairs(pl.Series(keys, dtype=pl.Int64), pl.Series(names).str.strip_chars())
    if baskets.n_baskets < len(lines):  # trailing empty baskets still count
        matrix = sp.vstack(
            [baskets.matrix, sp.csr_matrix((len(lines) - baskets.n_baskets, baskets.n_items))]
        ).tocsr()
        baskets = Baskets(matrix=matrix.astype(bool), item_names=baskets.item_names)
    return baskets
