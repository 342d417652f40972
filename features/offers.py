"""The offers file: the coupons and promotions a campaign may hand out, one row per offer.

A CSV or Parquet file with these columns (the first three required)::

    offer_id         text, unique
    kind             percent_off | amount_off | free_gift | points_multiplier
    value            percent_off: the percent (0 < value <= 100); amount_off: the money off
                     (> 0); free_gift: what the gift costs the retailer (>= 0);
                     points_multiplier: the multiplier of points earned (> 1)
    tiers            eligible member tiers, ``|``-separated (empty: every tier)
    segments         eligible lifecycle segments, ``|``-separated (empty: every segment)
    categories       the item categories the offer applies to, ``|``-separated (empty: all)
    min_basket       the basket (money) an order must reach to redeem it (empty: 0)
    budget           the money the offer may cost in all (empty: no money cap)
    max_redemptions  how many members may get it (empty: no count cap)
    valid_from       when it starts (ISO-8601 or epoch seconds, UTC; empty: always valid before)
    valid_to         when it ends (the same; empty: no end)

Every offer needs a ``budget`` or a ``max_redemptions`` (or both): an offer is a spending
commitment, and one without a cap is a blank cheque.

Unlike the interaction files, a bad row is not quarantined: leaving an offer out would silently
change who gets which coupon, so the load stops and names every bad row, its field and what is
wrong (the file is short and written by hand). Parsing uses the same parsers as every other
input (:mod:`features.parsing`), so times and numbers read the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import polars as pl

from features import columns as col
from features.checks import RowCheck
from features.errors import DataError
from features.ingest import read_table
from features.parsing import is_blank, parse_float, parse_id, parse_timestamp
from features.validate.quarantine import TYPED, present_but_unparsed, require_in_file, typed

__all__ = [
    "AMOUNT_OFF",
    "BUDGET",
    "CATEGORIES",
    "FREE_GIFT",
    "KIND",
    "KINDS",
    "MAX_REDEMPTIONS",
    "MIN_BASKET",
    "OFFER_COLUMNS",
    "OFFER_ID",
    "PERCENT_OFF",
    "POINTS_MULTIPLIER",
    "SEGMENTS",
    "TIERS",
    "VALID_FROM",
    "VALID_TO",
    "VALUE",
    "load_offers",
]

OFFER_ID: Final = "offer_id"
KIND: Final = "kind"
VALUE: Final = "value"
TIERS: Final = "tiers"
SEGMENTS: Final = "segments"
CATEGORIES: Final = "categories"
MIN_BASKET: Final = "min_basket"
BUDGET: Final = "budget"
MAX_REDEMPTIONS: Final = "max_redemptions"
VALID_FROM: Final = "valid_from"
VALID_TO: Final = "valid_to"

PERCENT_OFF: Final = "percent_off"
AMOUNT_OFF: Final = "amount_off"
FREE_GIFT: Final = "free_gift"
POINTS_MULTIPLIER: Final = "points_multiplier"
KINDS: Final[tuple[str, ...]] = (PERCENT_OFF, AMOUNT_OFF, FREE_GIFT, POINTS_MULTIPLIER)

#: The loaded frame's columns, in order (every one present, optional ones filled).
OFFER_COLUMNS: Final[tuple[str, ...]] = (
    OFFER_ID, KIND, VALUE, TIERS, SEGMENTS, CATEGORIES, MIN_BASKET, BUDGET, MAX_REDEMPTIONS,
    VALID_FROM, VALID_TO,
)  # fmt: skip
_REQUIRED: Final = (OFFER_ID, KIND, VALUE)
_LISTS: Final = (TIERS, SEGMENTS, CATEGORIES)
_MONEY: Final = (MIN_BASKET, BUDGET)
_TIMES: Final = (VALID_FROM, VALID_TO)
_LIST_SEPARATOR: Final = "|"
#: Shown in an error: the first bad rows, enough to fix a file in one pass.
_ERRORS_SHOWN: Final = 20
#: What ``value`` means per kind, and the range it must be in.
_VALUE_RULES: Final[dict[str, tuple[str, Callable[[pl.Expr], pl.Expr]]]] = {
    PERCENT_OFF: ("the percent off, above 0 and at most 100", lambda v: (v > 0) & (v <= 100)),
    AMOUNT_OFF: ("the money off, above 0", lambda v: v > 0),
    FREE_GIFT: ("what the gift costs, 0 or more", lambda v: v >= 0),
    POINTS_MULTIPLIER: ("the points multiplier, above 1", lambda v: v > 1),
}


def load_offers(path: Path) -> pl.DataFrame:
    """The offers of ``path`` (CSV or Parquet), typed, one row per offer (:data:`OFFER_COLUMNS`).

    Lists are ``list[str]`` (empty: no restriction), money and ``value`` floats (``budget``
    null: no money cap; ``min_basket`` 0 when empty), ``max_redemptions`` an integer (null: no
    count cap), times naive UTC (null: open-ended); an absent optional column reads as empty.
    Raises :class:`~features.errors.DataError` naming the file and every bad row and field.
    """
    raw = read_table(path, {})
    require_in_file(raw, _REQUIRED, path)
    if raw.height == 0:
        raise DataError(f"{path}: no offers in the file; write one row per offer")
    raw = raw.with_columns(
        pl.lit(None, pl.Utf8).alias(name) for name in OFFER_COLUMNS if name not in raw.columns
    )
    parsed = raw.with_row_index(col.ROW_NUMBER, offset=1).with_columns(_parsers(raw.schema))
    failures = [
        f"row {row}, field {check.column!r}: {check.reason} (got {_shown(value)})"
        for check in _checks(raw.schema)
        for row, value in parsed.filter(check.fails.fill_null(False))
        .select(col.ROW_NUMBER, pl.col(check.column).alias("_raw"))
        .iter_rows()
    ]
    if failures:
        shown = "\n  ".join(sorted(failures, key=_row_number)[:_ERRORS_SHOWN])
        more = len(failures) - _ERRORS_SHOWN
        raise DataError(
            f"{path}: {len(failures)} problem(s) in the offers file; fix them and run again:\n  "
            + shown
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    return parsed.select(pl.col(TYPED + name).alias(name) for name in OFFER_COLUMNS).with_columns(
        pl.col(MIN_BASKET).fill_null(0.0), pl.col(MAX_REDEMPTIONS).cast(pl.Int64)
    )


def _shown(value: object) -> str:
    return "nothing" if value is None or str(value).strip() == "" else repr(value)


def _row_number(failure: str) -> int:
    return int(failure.split(",", 1)[0].removeprefix("row "))


def _parsers(schema: pl.Schema) -> list[pl.Expr]:
    """The typed twin (``~name``) of every column, beside the raw one that errors quote."""
    parsers = [
        parse_id(OFFER_ID, schema[OFFER_ID]).alias(TYPED + OFFER_ID),
        parse_id(KIND, schema[KIND]).str.to_lowercase().alias(TYPED + KIND),
        parse_float(VALUE, schema[VALUE]).alias(TYPED + VALUE),
        parse_float(MAX_REDEMPTIONS, schema[MAX_REDEMPTIONS]).alias(TYPED + MAX_REDEMPTIONS),
    ]
    parsers += [parse_float(name, schema[name]).alias(TYPED + name) for name in _MONEY]
    parsers += [parse_timestamp(name, schema[name]).alias(TYPED + name) for name in _TIMES]
    parsers += [_parse_list(name, schema[name]).alias(TYPED + name) for name in _LISTS]
    return parsers


def _parse_list(name: str, dtype: pl.DataType) -> pl.Expr:
    """``gold|platinum`` (or a Parquet list column) as a list of trimmed, non-empty names."""
    if isinstance(dtype, pl.List):
        names = pl.col(name).cast(pl.List(pl.Utf8))
    else:
        names = pl.col(name).cast(pl.Utf8).fill_null("").str.split(_LIST_SEPARATOR)
    return names.fill_null([]).list.eval(
        pl.element().str.strip_chars().filter(pl.element().str.strip_chars() != "")
    )


def _checks(schema: pl.Schema) -> list[RowCheck]:
    """Every rule a row must pass; each failing rule of a row is reported, not only the first."""

    def unparsed(name: str) -> pl.Expr:
        return present_but_unparsed(name, schema[name])

    kind = typed(KIND)
    checks = [
        RowCheck(OFFER_ID, "missing offer_id", typed(OFFER_ID).is_null()),
        RowCheck(OFFER_ID, "repeats an earlier row's offer_id",
                 typed(OFFER_ID).is_not_null() & ~typed(OFFER_ID).is_first_distinct()),
        RowCheck(KIND, f"kind must be one of {', '.join(KINDS)}",
                 ~kind.is_in(KINDS).fill_null(False)),
        RowCheck(VALUE, "missing or not a number", typed(VALUE).is_null()),
    ]  # fmt: skip
    checks += [
        RowCheck(VALUE, f"for {name} the value is {meaning}", (kind == name) & ~holds(typed(VALUE)))
        for name, (meaning, holds) in _VALUE_RULES.items()
    ]
    for name in _MONEY:
        checks += [
            RowCheck(name, "not a number", unparsed(name)),
            RowCheck(name, "must not be negative", typed(name) < 0),
        ]
    redemptions = typed(MAX_REDEMPTIONS)
    uncapped = is_blank(BUDGET, schema[BUDGET]) & is_blank(MAX_REDEMPTIONS, schema[MAX_REDEMPTIONS])
    checks += [
        RowCheck(MAX_REDEMPTIONS, "not a number", unparsed(MAX_REDEMPTIONS)),
        RowCheck(MAX_REDEMPTIONS, "must be a whole number of at least 1",
                 (redemptions < 1) | (redemptions != redemptions.floor())),
        RowCheck(BUDGET, "set a budget or max_redemptions (or both): an offer needs a cap",
                 uncapped),
    ]  # fmt: skip
    checks += [RowCheck(name, "unparseable time", unparsed(name)) for name in _TIMES]
    checks.append(
        RowCheck(VALID_TO, "valid_to is before valid_from", typed(VALID_TO) < typed(VALID_FROM))
    )
    return checks
