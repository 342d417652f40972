"""Attribute segments of members: who they are, from the members file, as of a reference time.

Null where the members file lacks what a segment needs:

* ``region``, as given;
* ``age_band`` from ``birth_date`` (a date or datetime, as the members loader parses it): the
  age in whole years at the reference time, in bands under-18, 18-24, 25-34, 35-44, 45-54,
  55-64, 65+ (an age outside 0-120 is unknown). Only a birth date: an age or a birth year
  written in a file is stale or vague by the time a profile is built, and no loader keeps one;
* ``join_cohort``, the calendar quarter of ``joined_at`` ("2024-Q3").
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

from features.columns import BIRTH_DATE, JOINED_AT, MEMBER_ID, REGION
from features.errors import DataError
from features.frames import require_columns
from features.times import as_naive_utc

__all__ = ["AGE_BAND", "JOIN_COHORT", "attribute_segments"]

#: Output columns (besides ``region``).
AGE_BAND: Final = "age_band"
JOIN_COHORT: Final = "join_cohort"

_AGE_BANDS: Final = ((18, "under-18"), (25, "18-24"), (35, "25-34"), (45, "35-44"),
                     (55, "45-54"), (65, "55-64"), (121, "65+"))  # fmt: skip


def attribute_segments(members: pl.DataFrame | None, reference_time: datetime) -> pl.LazyFrame:
    """``member_id``, ``region``, :data:`AGE_BAND` and :data:`JOIN_COHORT` of each member of
    the members file (null where the file lacks what a column needs)."""
    empty = pl.LazyFrame(schema={MEMBER_ID: pl.Utf8, REGION: pl.Utf8, AGE_BAND: pl.Utf8,
                                 JOIN_COHORT: pl.Utf8})  # fmt: skip
    if members is None:
        return empty
    require_columns(members, (MEMBER_ID,), "members")
    columns = members.columns
    region = pl.col(REGION).cast(pl.Utf8) if REGION in columns else pl.lit(None, dtype=pl.Utf8)
    cohort = (
        pl.concat_str(
            pl.col(JOINED_AT).dt.year().cast(pl.Utf8),
            pl.lit("-Q"),
            pl.col(JOINED_AT).dt.quarter().cast(pl.Utf8),
        )
        if JOINED_AT in columns
        else pl.lit(None, dtype=pl.Utf8)
    )
    return (
        members.lazy()
        .unique(MEMBER_ID, keep="first", maintain_order=True)
        .select(
            pl.col(MEMBER_ID).cast(pl.Utf8),
            region.alias(REGION),
            _age_band(_age(members.schema, as_naive_utc(reference_time))).alias(AGE_BAND),
            cohort.alias(JOIN_COHORT),
        )
    )


def _age(schema: pl.Schema, reference: datetime) -> pl.Expr:
    """Age in whole years at ``reference`` from the birth date (null without one)."""
    if BIRTH_DATE not in schema:
        return pl.lit(None, dtype=pl.Float64)
    dtype = schema[BIRTH_DATE]
    if not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        raise DataError(
            f"members column {BIRTH_DATE!r} is {dtype}, not a date; load the "
            "members file with features.validate.load_members, which parses it"
        )
    born = pl.col(BIRTH_DATE).cast(pl.Date)
    before_birthday = (born.dt.month() > reference.month) | (
        (born.dt.month() == reference.month) & (born.dt.day() > reference.day)
    )
    return (reference.year - born.dt.year() - before_birthday.cast(pl.Int32)).cast(pl.Float64)


def _age_band(age: pl.Expr) -> pl.Expr:
    band = pl.when((age < 0) | (age >= _AGE_BANDS[-1][0])).then(pl.lit(None, dtype=pl.Utf8))
    for upper, name in _AGE_BANDS:
        band = band.when(age < upper).then(pl.lit(name))
    return band.otherwise(pl.lit(None, dtype=pl.Utf8))
