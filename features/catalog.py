"""The one reader of catalog columns: which catalog row describes which mapped item.

A catalog (the ``--items`` file) may list items the training data never saw, list an item twice,
or lack optional columns. Content features, evaluation's category codes and the model
artifact's catalog all read it through here, so that they agree on one answer: an item is
described by the first catalog row of its id, items outside the id map are left out, and
columns the catalog lacks are simply absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np
import polars as pl

from features.columns import ITEM_ID
from features.frames import require_columns
from features.ids import IdMap

__all__ = ["ITEM_INDEX", "aligned_catalog", "catalog_rows", "category_codes"]

#: Column of :func:`catalog_rows` with the internal index of each row's item.
ITEM_INDEX: Final = "__catalog_item_index"


def catalog_rows(
    items: pl.DataFrame, item_ids: IdMap, columns: Iterable[str] | None = None
) -> pl.DataFrame:
    """The catalog row of every item of ``item_ids`` that the catalog lists, in catalog order.

    Returns ``item_id`` (as text), then ``columns`` that the catalog has (every column when
    ``None``), then :data:`ITEM_INDEX`. The first row of a repeated item id wins; rows of items
    outside the map are dropped, so nothing is learnt from them.
    """
    require_columns(items, (ITEM_ID,), "items")
    if columns is None:
        kept = [name for name in items.columns if name != ITEM_ID]
    else:
        kept = [name for name in columns if name in items.columns and name != ITEM_ID]
    first_rows = items.select(pl.col(ITEM_ID).cast(pl.Utf8), *kept).unique(
        ITEM_ID, keep="first", maintain_order=True
    )
    indices = item_ids.to_internal(first_rows.get_column(ITEM_ID), strict=False)
    return first_rows.with_columns(pl.Series(ITEM_INDEX, indices)).filter(pl.col(ITEM_INDEX) >= 0)


def aligned_catalog(items: pl.DataFrame, item_ids: IdMap, columns: Iterable[str]) -> pl.DataFrame:
    """One row per item of ``item_ids``, row i describing internal item i.

    Holds ``item_id`` and the ``columns`` that the catalog has, per :func:`catalog_rows`; items
    the catalog does not list get nulls, so that a per-item lookup is a plain row index.
    """
    rows = catalog_rows(items, item_ids, columns).drop(ITEM_INDEX)
    order = pl.DataFrame({ITEM_ID: item_ids.external_ids}, schema={ITEM_ID: pl.Utf8})
    return order.join(rows, on=ITEM_ID, how="left", maintain_order="left")


def category_codes(categories: pl.Series) -> tuple[list[str], np.ndarray]:
    """The sorted category names and, per row, the position of its category there (-1: none).

    Serving's category filters and evaluation's diversity both number categories this way, so
    that a code means the same category wherever it is read.
    """
    text = categories.cast(pl.Utf8)
    names = sorted(text.drop_nulls().unique().to_list())
    codes = text.replace_strict(names, list(range(len(names))), default=-1, return_dtype=pl.Int32)
    return names, codes.to_numpy()
