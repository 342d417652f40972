"""Loading an interactions file with Spark: the Polars loader's rules, counts and quarantine.

The rows are checked in Spark's workers by the Polars loader's own rules
(:mod:`training.spark.checks`); Spark then does what spans rows the way
:func:`features.validate.quarantine.run_checks` does: valid rows that repeat an earlier valid row
exactly (every column of the file, nulls equal) are duplicates, the first one kept; failed rows
go to the quarantine CSV (row number, reason, the file's own columns and values) written by
Spark; the report's counts add up (``rows_read == accepted + duplicates + quarantined``) and a
share of unexpected bad rows above the cap stops the load with the Polars loader's message.

The accepted rows are written by Spark as Parquet to a scratch directory, in the Polars
loader's order (time order, ties in the file's order), with their file row number
(:data:`~features.columns.ROW_NUMBER`). The fits read them there in Spark; the
driver reads them back with Polars: the split, the evaluation and the model artifact's member
files, catalog and data fingerprint are computed on the driver from that frame (the same rows and
types as the Polars loader's), which is the driver's memory floor.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import polars as pl
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as sf

from features import columns as col
from features.ingest import ColumnMapping
from features.presets import Preset
from features.validate import DEFAULT_MAX_BAD_SHARE, ValidatedTable, ValidationReport
from features.validate.interactions import interaction_mapping, interaction_rules
from features.validate.quarantine import (
    TYPED,
    check_bad_share,
    default_quarantine_path,
    require_in_file,
)
from training.spark.checks import check_batches, checked_schema, empty_frame, typed_columns
from training.spark.read import named, read_table

__all__ = ["SparkInteractions", "SparkTable", "load_interactions"]

#: The scratch subdirectory of the accepted rows.
_ACCEPTED = "interactions.parquet"
_FIRST = "__first_row"


@dataclass(frozen=True, eq=False)
class SparkTable:
    """What the fits need of a load: the accepted rows in Spark (the contract columns and the
    row number, read from the scratch Parquet) and, on the driver, their row numbers only."""

    table: DataFrame
    row_numbers: pl.Series


@dataclass(frozen=True, eq=False)
class SparkInteractions:
    """Validated interactions twice over: ``spark`` for the fits, and ``validated``, the same
    rows as a Polars frame with the load's report, for everything the driver computes (let it
    go after the split: ``spark`` holds only the row-number column of it)."""

    spark: SparkTable
    validated: ValidatedTable


def load_interactions(
    session: SparkSession,
    path: Path,
    scratch: Path,
    mapping: ColumnMapping | None = None,
    preset: Preset | None = None,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    quarantine_path: Path | None = None,
) -> SparkInteractions:
    """Load, check and type an interactions file in Spark, as
    :func:`features.validate.load_interactions` does in Polars (see the module docstring).

    ``scratch``: a directory that Spark's executors and the driver both see (local, or a
    shared mount), for the accepted rows; so must the quarantine file's be. Raises
    :class:`~features.errors.MissingColumnError` and
    :class:`~features.errors.TooManyBadRowsError` as the Polars loader does.
    """
    source_names = interaction_mapping(mapping, preset)
    raw = read_table(session, path, source_names)
    batch = empty_frame(raw.schema)
    require_in_file(batch, col.REQUIRED_INTERACTION_COLUMNS, path)
    _, checks = interaction_rules(batch, preset)
    first_rows, rows_read = _first_rows(raw)
    preset_name = preset.name if preset else None
    schema = checked_schema(raw.schema, preset_name)
    checker = partial(check_batches, first_rows=first_rows, preset_name=preset_name, schema=schema)
    checked = raw.mapInArrow(checker, schema).persist()
    try:
        failed = checked.where(sf.col(col.REASON).isNotNull())
        reasons = Counter(dict(failed.groupBy(col.REASON).count().collect()))
        quarantined = sum(reasons.values())
        written_to = None
        if quarantined:
            written_to = quarantine_path or default_quarantine_path(path)
            _write_quarantine(failed, raw.columns, source_names, written_to)
        accepted_dir = scratch.absolute() / _ACCEPTED
        _first_of_repeats(checked.where(sf.col(col.REASON).isNull()), raw.columns).select(
            *(sf.col(TYPED + name).alias(name) for name in typed_columns(schema)), col.ROW_NUMBER
        ).orderBy(col.TIMESTAMP, col.ROW_NUMBER).write.parquet(accepted_dir.as_uri())
        table = session.read.parquet(accepted_dir.as_uri())
        accepted = table.count()
        expected_reasons = preset.expected_reasons if preset else frozenset()
        expected = sum(n for reason, n in reasons.items() if reason in expected_reasons)
        report = ValidationReport(
            source=str(path),
            rows_read=rows_read,
            accepted=accepted,
            duplicates=rows_read - quarantined - accepted,
            quarantined=quarantined,
            expected_exclusions=expected,
            bad_share=(quarantined - expected) / rows_read if rows_read else 0.0,
            max_bad_share=max_bad_share,
            reasons=dict(reasons.most_common()),
            quarantine_path=str(written_to) if written_to else None,
            preset=preset_name,
        )
        examples = _first_of_each_reason(failed) if quarantined else batch
        check_bad_share(report, examples, checks, source_names, raw.columns, expected_reasons)
    finally:
        checked.unpersist()
    frame = pl.read_parquet(sorted(accepted_dir.glob("part-*.parquet")))
    return SparkInteractions(
        SparkTable(table, frame.get_column(col.ROW_NUMBER)), ValidatedTable(frame, report)
    )


def _first_rows(raw: DataFrame) -> tuple[dict[int, int], int]:
    """The row number of each partition's first row, and the rows of the file: one counting
    pass over the scan, whose partitions are the file's consecutive ranges, in order."""
    counts = dict(raw.groupBy(sf.spark_partition_id()).count().collect())
    first_rows, total = {}, 0
    for partition in sorted(counts):
        first_rows[partition] = total + 1
        total += counts[partition]
    return first_rows, total


def _first_of_repeats(valid: DataFrame, raw_columns: list[str]) -> DataFrame:
    """The valid rows less the exact repeats of an earlier one (all of the file's columns)."""
    first = sf.min(col.ROW_NUMBER).over(Window.partitionBy(*map(named, raw_columns)))
    return _where_first(valid, first)


def _write_quarantine(
    failed: DataFrame, raw_columns: list[str], source_names: ColumnMapping, path: Path
) -> None:
    """The failed rows as one CSV in file order: row number, reason, then the file's columns
    under its own names; Spark writes the part file, which is moved to ``path``."""
    original = [named(c).alias(source_names.get(c, c)) for c in raw_columns]
    staging = path.absolute().with_name(f".{path.name}.spark")
    failed.select(col.ROW_NUMBER, col.REASON, *original).repartition(1).sortWithinPartitions(
        col.ROW_NUMBER
    ).write.mode("overwrite").csv(
        staging.as_uri(),
        header=True,
        escape='"',
        ignoreLeadingWhiteSpace=False,
        ignoreTrailingWhiteSpace=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    next(staging.glob("part-*.csv")).replace(path)
    shutil.rmtree(staging)


def _first_of_each_reason(failed: DataFrame) -> pl.DataFrame:
    """The first failed row of each reason, for the bad-share message's example."""
    first = sf.min(col.ROW_NUMBER).over(Window.partitionBy(col.REASON))
    examples = _where_first(failed, first).orderBy(col.ROW_NUMBER)
    frame = pl.from_arrow(examples.toArrow())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _where_first(frame: DataFrame, first: Column) -> DataFrame:
    """The rows whose row number is ``first``, a window's least row number."""
    marked = frame.withColumn(_FIRST, first)
    return marked.where(sf.col(col.ROW_NUMBER) == sf.col(_FIRST)).drop(_FIRST)
