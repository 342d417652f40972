"""The row checks of interactions, run by Spark's Python workers on Arrow batches.

Each batch goes through the very parsers and checks of :mod:`features.validate.interactions`
(Polars expressions, the first failing check a row's reason), so that a row is accepted or
quarantined for the same reason whichever engine loads the file: there is one definition of the
rules. Every check looks at its own row only (an event column's distinct values are parsed once
per batch, a cost, not a meaning), which is what lets Spark check the batches apart; what spans
rows (de-duplication, the counts, the bad-share cap) is done by :mod:`training.spark.validate`.

A checked batch holds the raw columns as read (for the quarantine file and for de-duplication),
the file's row number, the reason (null: valid) and the typed contract columns, prefixed with
:data:`~features.validate.quarantine.TYPED`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import polars as pl
import pyarrow as pa
from pyspark import TaskContext
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StructType

from features import columns as col
from features.presets import get_preset
from features.validate.interactions import interaction_output, interaction_rules
from features.validate.quarantine import TYPED, first_failing_reason

__all__ = ["check_batches", "checked_schema", "empty_frame", "typed_columns"]


def empty_frame(schema: StructType) -> pl.DataFrame:
    """An empty Polars frame of the columns and types the workers' batches will have."""
    frame = pl.from_arrow(to_arrow_schema(schema).empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _checked(frame: pl.DataFrame, preset_name: str | None, first_row: int) -> pl.DataFrame:
    """One batch checked (see the module docstring); ``first_row``: its first row's number."""
    exprs, checks = interaction_rules(frame, get_preset(preset_name))
    parsed = (
        frame.with_row_index(col.ROW_NUMBER, offset=first_row)
        .with_columns(exprs)
        .with_columns(first_failing_reason(checks).alias(col.REASON))
    )
    typed = parsed.select(interaction_output(parsed))
    return pl.concat(
        [
            parsed.select(*frame.columns, pl.col(col.ROW_NUMBER).cast(pl.Int64), col.REASON),
            typed.rename(lambda name: TYPED + name),
        ],
        how="horizontal",
    )


def checked_schema(raw: StructType, preset_name: str | None) -> StructType:
    """The Spark schema of checked batches, found by checking an empty batch: the typed columns'
    types are whatever the Polars parsers give, never restated here."""
    arrow = _checked(empty_frame(raw), preset_name, first_row=1).to_arrow().schema
    return from_arrow_schema(arrow)


def typed_columns(checked: StructType) -> list[str]:
    """The contract columns of checked batches, in the order the Polars loader outputs them."""
    return [name[len(TYPED) :] for name in checked.fieldNames() if name.startswith(TYPED)]


def check_batches(
    batches: Iterator[pa.RecordBatch],
    *,
    first_rows: Mapping[int, int],
    preset_name: str | None,
    schema: StructType,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``'s function: the checked batches of one partition of the file.

    ``first_rows``: the file row number of each partition's first row (partitions of a file scan
    are its consecutive byte ranges, in order), so that row numbers are the Polars loader's.
    """
    next_row = first_rows.get(TaskContext.get().partitionId(), 1)
    target = to_arrow_schema(schema)
    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        checked = _checked(frame, preset_name, next_row)
        next_row += frame.height
        yield from checked.to_arrow().cast(target).to_batches()
