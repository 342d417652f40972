"""Which rows of the validated table one fit learns from, in Spark, in the driver frame's order.

The protocol (:mod:`training.train`) fits on frames the driver cuts with the project's splits:
the validation split's train, the test split's train, then train and test together. Each is the
validated table's rows less some (the held-out ones), some of them placed last (the refit's test
rows, which follow the training rows), and, with a test file, rows from outside the table
appended. :class:`FitRows` says that with row numbers only, so that only the held-out rows'
numbers travel from the driver to Spark, never the rows.

Order matters: id maps index ids in order of first appearance
(:func:`features.matrices.ids_from_interactions`), and rules break ties by item index. The
driver's frames are in the loader's order (time, then the file's row number) and every split
keeps it, so a row's place in its fit is ``(part, timestamp, row number)``; :func:`first_seen`
orders ids by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from features import columns as col
from features.ids import IdMap

__all__ = ["FIT_COLUMNS", "PART", "FitRows", "first_seen", "index_frame", "spark_rows"]

#: The contract columns the fits read in Spark.
FIT_COLUMNS = (col.MEMBER_ID, col.ITEM_ID, col.EVENT, col.TIMESTAMP, col.ORDER_ID)
#: Where a row comes in its fit: 0 first, 1 the rows placed last, 2 the appended ones.
PART = "_part"
_DROPPED, _FIRST, _LATER, _APPENDED = -1, 0, 1, 2


@dataclass(frozen=True, eq=False)
class FitRows:
    """A fit's rows: the table's rows except ``dropped``, those in ``later`` after the others,
    then ``appended`` (rows from outside the table: a test file), by row numbers."""

    dropped: np.ndarray
    later: np.ndarray
    appended: pl.DataFrame | None = None

    @classmethod
    def of(
        cls, table_rows: pl.Series, first: pl.DataFrame, then: pl.DataFrame | None = None
    ) -> FitRows:
        """The rows of ``first`` (frames cut from the validated table, with its row numbers),
        then those of ``then``: the order of ``pl.concat([first, then])``."""
        later = pl.Series(col.ROW_NUMBER, [], dtype=pl.Int64)
        appended = None
        if then is not None and col.ROW_NUMBER in then.columns:
            later = then.get_column(col.ROW_NUMBER)
        elif then is not None:
            appended = then
        used = pl.concat([first.get_column(col.ROW_NUMBER), later])
        dropped = table_rows.filter(~table_rows.is_in(used.implode()))
        return cls(dropped.to_numpy(), later.to_numpy(), appended)


def spark_rows(session: SparkSession, table: DataFrame, rows: FitRows) -> DataFrame:
    """The fit's rows in Spark: :data:`FIT_COLUMNS`, the row number and :data:`PART`."""
    marks = session.createDataFrame(
        pa.table({
            col.ROW_NUMBER: np.concatenate([rows.dropped, rows.later]).astype(np.int64),
            PART: np.repeat(
                np.array([_DROPPED, _LATER], dtype=np.int32), [len(rows.dropped), len(rows.later)]
            ),
        })
    )  # fmt: skip
    kept = (
        table.join(marks, col.ROW_NUMBER, "left")
        .fillna(_FIRST, [PART])
        .where(sf.col(PART) != _DROPPED)
        .select(*FIT_COLUMNS, col.ROW_NUMBER, PART)
    )
    if rows.appended is None:
        return kept
    appended = (
        rows.appended.select(FIT_COLUMNS)
        .with_row_index(col.ROW_NUMBER, offset=1)
        .with_columns(
            pl.col(col.ROW_NUMBER).cast(pl.Int64), pl.lit(_APPENDED, pl.Int32).alias(PART)
        )
    )
    return kept.unionByName(session.createDataFrame(appended.to_arrow()))


def first_seen(rows: DataFrame, column: str) -> pl.Series:
    """The distinct values of ``column`` in order of first appearance in the fit."""
    first = sf.min(sf.struct(PART, col.TIMESTAMP, col.ROW_NUMBER)).alias("first")
    ordered = rows.groupBy(column).agg(first).orderBy("first").select(column)
    return pl.Series(column, ordered.toArrow().column(column))


def index_frame(session: SparkSession, column: str, ids: IdMap, index: str) -> DataFrame:
    """The id map in Spark: each id of ``column`` and its internal index (``index``)."""
    return session.createDataFrame(
        pa.table({
            column: pa.array(ids.external_ids.tolist(), pa.string()),
            index: np.arange(len(ids), dtype=np.int32),
        })
    )  # fmt: skip
