"""Loading an interactions file: the contract's columns, event names, and a preset's rules."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from features import columns as col
from features.checks import RowCheck
from features.ingest import ColumnMapping, read_table
from features.parsing import is_blank, parse_float, parse_id, parse_timestamp
from features.presets import Preset
from features.validate.quarantine import (
    DEFAULT_MAX_BAD_SHARE,
    TYPED,
    ValidatedTable,
    present_but_unparsed,
    require_in_file,
    run_checks,
    typed,
)

__all__ = [
    "EVENT_ALIASES",
    "interaction_mapping",
    "interaction_output",
    "interaction_rules",
    "load_interactions",
]

#: Spellings of events seen in other systems' exports, mapped to the contract's names.
EVENT_ALIASES: dict[str, str] = {
    "detail_view": col.VIEW,
    "pageview": col.VIEW,
    "add_to_cart": col.CART,
    "addtocart": col.CART,
    "transaction": col.PURCHASE,
    "order": col.PURCHASE,
    "buy": col.PURCHASE,
}


def _interaction_parsers(
    frame: pl.DataFrame, timestamp_formats: tuple[str, ...]
) -> tuple[list[pl.Expr], list[RowCheck]]:
    schema = frame.schema
    exprs = [
        parse_id(col.MEMBER_ID, schema[col.MEMBER_ID], frame[col.MEMBER_ID]).alias(
            TYPED + col.MEMBER_ID
        ),
        parse_id(col.ITEM_ID, schema[col.ITEM_ID], frame[col.ITEM_ID]).alias(TYPED + col.ITEM_ID),
        parse_timestamp(col.TIMESTAMP, schema[col.TIMESTAMP], timestamp_formats).alias(
            TYPED + col.TIMESTAMP
        ),
    ]
    checks = [
        RowCheck(col.MEMBER_ID, "missing member_id", typed(col.MEMBER_ID).is_null()),
        RowCheck(col.ITEM_ID, "missing item_id", typed(col.ITEM_ID).is_null()),
        RowCheck(
            col.TIMESTAMP, "missing timestamp", is_blank(col.TIMESTAMP, schema[col.TIMESTAMP])
        ),
        RowCheck(col.TIMESTAMP, "unparseable timestamp", typed(col.TIMESTAMP).is_null()),
    ]
    if col.EVENT in schema:
        exprs.append(_event_parser(frame).alias(TYPED + col.EVENT))
        checks.append(
            RowCheck(
                col.EVENT,
                f"unknown event (expected one of {', '.join(col.EVENTS)})",
                typed(col.EVENT).is_null(),
            )
        )
    else:
        exprs.append(pl.lit(col.DEFAULT_EVENT).alias(TYPED + col.EVENT))
    if col.QUANTITY in schema:
        exprs.append(parse_float(col.QUANTITY, schema[col.QUANTITY]).alias(TYPED + col.QUANTITY))
        checks += [
            RowCheck(
                col.QUANTITY,
                "quantity is not a number",
                present_but_unparsed(col.QUANTITY, schema[col.QUANTITY]),
            ),
            RowCheck(col.QUANTITY, "quantity is not positive", typed(col.QUANTITY) <= 0),
        ]
    for name in (col.PRICE, col.VALUE):
        if name in schema:
            exprs.append(parse_float(name, schema[name]).alias(TYPED + name))
            checks.append(
                RowCheck(name, f"{name} is not a number", present_but_unparsed(name, schema[name]))
            )
    if col.PRICE in schema:
        checks.append(RowCheck(col.PRICE, "price is negative", typed(col.PRICE) < 0))
    for name in (col.ORDER_ID, *col.CARRIED_ITEM_COLUMNS):
        if name in schema:
            exprs.append(parse_id(name, schema[name], frame[name]).alias(TYPED + name))
    return exprs, checks


def _event_parser(frame: pl.DataFrame) -> pl.Expr:
    """The event column in the contract's names (null when unknown, the default when blank).

    An event column holds a handful of distinct values: each is parsed once and the rows are
    mapped to the result, which took parsing 20M events from 2.3 s to well under one.
    """
    text = pl.col(col.EVENT).cast(pl.Utf8)
    cleaned = text.str.strip_chars().str.to_lowercase().replace(EVENT_ALIASES)
    parsed = pl.when(cleaned == "").then(pl.lit(col.DEFAULT_EVENT))
    parsed = parsed.when(cleaned.is_in(col.EVENTS)).then(cleaned)
    distinct = frame.select(text.unique().drop_nulls()).with_columns(parsed.alias("parsed"))
    clean = frame.schema[col.EVENT] == pl.Utf8 and frame.get_column(col.EVENT).null_count() == 0
    if clean and distinct.get_column(col.EVENT).equals(distinct.get_column("parsed")):
        return pl.col(col.EVENT)  # already the contract's names: shared, not a 20M-row copy
    mapped = text.replace_strict(
        distinct.get_column(col.EVENT), distinct.get_column("parsed"), default=None,
        return_dtype=pl.Utf8,
    )  # fmt: skip
    return pl.when(text.is_null()).then(pl.lit(col.DEFAULT_EVENT)).otherwise(mapped)


def interaction_output(frame: pl.DataFrame) -> list[pl.Expr]:
    """Typed contract columns; optional ones absent from the file get their defaults, except
    ``value`` (an explicit rating), kept only when the file has one: no model reads it, and a
    column of nulls is 160 MB at 20M events."""

    def typed_or(name: str, default: pl.Expr) -> pl.Expr:
        return (typed(name) if TYPED + name in frame.columns else default).alias(name)

    out = [
        typed(col.MEMBER_ID).alias(col.MEMBER_ID),
        typed(col.ITEM_ID).alias(col.ITEM_ID),
        typed(col.EVENT).alias(col.EVENT),
        typed(col.TIMESTAMP).alias(col.TIMESTAMP),
        typed_or(col.QUANTITY, pl.lit(1.0)).fill_null(1.0),
        typed_or(col.PRICE, pl.lit(None, pl.Float64)),
        typed_or(col.ORDER_ID, pl.lit(None, pl.Utf8)),
    ]
    if TYPED + col.VALUE in frame.columns:
        out.append(typed(col.VALUE).alias(col.VALUE))
    out += [typed(n).alias(n) for n in col.CARRIED_ITEM_COLUMNS if TYPED + n in frame.columns]
    return out


def interaction_mapping(mapping: ColumnMapping | None, preset: Preset | None) -> dict[str, str]:
    """The column mapping of a load: the preset's, overridden by the caller's."""
    return {**(preset.columns if preset else {}), **(mapping or {})}


def interaction_rules(
    frame: pl.DataFrame, preset: Preset | None
) -> tuple[list[pl.Expr], list[RowCheck]]:
    """The parsers and the checks of interactions with ``frame``'s columns, the preset's checks
    first: the rules of every row, public so that the Spark engine applies the same ones."""
    exprs, checks = _interaction_parsers(frame, preset.timestamp_formats if preset else ())
    return exprs, [*preset.checks, *checks] if preset else checks


def load_interactions(
    path: Path,
    mapping: ColumnMapping | None = None,
    preset: Preset | None = None,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    quarantine_path: Path | None = None,
) -> ValidatedTable:
    """Load, check and type an interactions file (DESIGN section 3).

    The accepted rows come back in time order (ties in the file's order): every split, the
    validation carved from train and the refit then slice one frame instead of copying it.

    Raises :class:`MissingColumnError` when a required column is absent and
    :class:`TooManyBadRowsError` when unexpected bad rows exceed ``max_bad_share`` (the
    quarantine file is written first, so nothing is lost either way).
    """
    columns = interaction_mapping(mapping, preset)
    frame = read_table(path, columns)
    require_in_file(frame, col.REQUIRED_INTERACTION_COLUMNS, path)
    exprs, checks = interaction_rules(frame, preset)
    return run_checks(
        frame,
        exprs,
        checks,
        interaction_output,
        source=path,
        source_names=columns,
        expected_reasons=preset.expected_reasons if preset else frozenset(),
        preset_name=preset.name if preset else None,
        max_bad_share=max_bad_share,
        quarantine_path=quarantine_path,
        order_by=col.TIMESTAMP,
    )
