"""Vectorised parsers from raw file values to contract types, null where a value cannot be read.

A parser never raises on a bad value: it yields null, and :mod:`features.validate` turns
"present in the file but null after parsing" into a quarantine reason. Each parser accepts the
column as stored (text from CSV, or a typed Parquet column) so that both paths share one code.
"""

from __future__ import annotations

import polars as pl

__all__ = ["TIMESTAMP_FORMATS", "is_blank", "parse_float", "parse_id", "parse_timestamp"]

#: Naive formats tried in order; values are taken as UTC.
TIMESTAMP_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
#: Formats with a UTC offset ("Z" is rewritten to "+00:00" first); converted to naive UTC.
_OFFSET_FORMATS: tuple[str, ...] = ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z")
_EPOCH_PATTERN = r"^-?\d+(\.\d+)?$"
_TIME = pl.Datetime("us")


def is_blank(column: str, dtype: pl.DataType) -> pl.Expr:
    """True where the value is missing: null, or empty/whitespace text."""
    expr = pl.col(column)
    if dtype == pl.Utf8:
        return expr.is_null() | (expr.str.strip_chars() == "")
    return expr.is_null()


def parse_id(column: str, dtype: pl.DataType, values: pl.Series | None = None) -> pl.Expr:
    """Ids become trimmed text; integral floats (17850.0 from a Parquet float column) lose '.0'.

    Given the column's ``values``, text that is already clean (no blank value, no padding: the
    usual Parquet column) is passed through as it is, sharing the file's buffers instead of a
    trimmed copy: at 20M events the copies of the id columns were about 1 GB of a load's peak.
    """
    expr = pl.col(column)
    if values is not None and dtype == pl.Utf8 and _clean_text(values):
        return expr
    if dtype.is_float():
        integral = expr == expr.floor()
        return (
            pl.when(integral).then(expr.cast(pl.Int64).cast(pl.Utf8)).otherwise(expr.cast(pl.Utf8))
        )
    text = expr.cast(pl.Utf8).str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def _clean_text(values: pl.Series) -> bool:
    """No value is blank or starts or ends with whitespace (nulls are left to the checks)."""
    padded = values.str.contains(r"^\s|\s$") | (values == "")
    return not padded.any()


def parse_float(column: str, dtype: pl.DataType) -> pl.Expr:
    """Numbers as Float64; text that is not a finite number becomes null."""
    expr = pl.col(column)
    if dtype.is_numeric():
        number = expr.cast(pl.Float64)
    else:
        number = expr.cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(number.is_finite()).then(number)


def parse_timestamp(
    column: str, dtype: pl.DataType, extra_formats: tuple[str, ...] = ()
) -> pl.Expr:
    """Timestamps as naive UTC ``Datetime("us")``.

    Accepts ISO-8601 text (with or without a UTC offset), dates, epoch seconds (text or
    numbers) and native Parquet datetimes; ``extra_formats`` lets a preset add its own.
    """
    expr = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return expr.cast(_TIME)
    if dtype == pl.Date:
        return expr.cast(_TIME)
    if dtype.is_numeric():
        return _from_epoch_seconds(expr.cast(pl.Float64))
    text = expr.cast(pl.Utf8).str.strip_chars()
    naive = [
        text.str.strptime(_TIME, f, strict=False) for f in (*extra_formats, *TIMESTAMP_FORMATS)
    ]
    with_offset = text.str.replace(r"Z$", "+00:00")
    aware = [
        with_offset.str.strptime(pl.Datetime("us", "UTC"), f, strict=False).dt.replace_time_zone(
            None
        )
        for f in _OFFSET_FORMATS
    ]
    epoch = pl.when(text.str.contains(_EPOCH_PATTERN)).then(
        _from_epoch_seconds(text.cast(pl.Float64, strict=False))
    )
    return pl.coalesce(*naive, *aware, epoch)


def _from_epoch_seconds(seconds: pl.Expr) -> pl.Expr:
    micros = pl.when(seconds.is_finite()).then((seconds * 1_000_000).round().cast(pl.Int64))
    return pl.from_epoch(micros, time_unit="us")
