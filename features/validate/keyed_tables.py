"""Loading the tables keyed by an id: the item catalog and the member table.

Both are declared field by field (a name and a kind: text, price, bool or time); the first field
is the key, which must be present, and a later repeat of a key is a duplicate.

A member table keeps only its declared fields, the columns the product reads: every other
column (a name, an e-mail, a phone number a CRM export carries along) is dropped before any row
is checked, so that its values reach no quarantine file, error message, artifact or MLflow run;
the report names the dropped columns, personal-looking ones apart
(:func:`features.personal_columns.looks_personal`). A catalog keeps its other columns for the
quarantine file, which then reads like the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl

from features import columns as col
from features.checks import RowCheck
from features.ingest import ColumnMapping, read_table
from features.parsing import parse_float, parse_id, parse_timestamp
from features.personal_columns import looks_personal
from features.validate.quarantine import (
    DEFAULT_MAX_BAD_SHARE,
    TYPED,
    ValidatedTable,
    present_but_unparsed,
    require_in_file,
    run_checks,
    typed,
)

__all__ = ["load_items", "load_members"]


def load_items(
    path: Path,
    mapping: ColumnMapping | None = None,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    quarantine_path: Path | None = None,
) -> ValidatedTable:
    """Load an item catalog; one row per ``item_id`` (later repeats of an id are duplicates)."""
    return _load_keyed_table(
        path, mapping or {}, _ITEM_FIELDS, max_bad_share, quarantine_path, fields_only=False
    )


def load_members(
    path: Path,
    mapping: ColumnMapping | None = None,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    quarantine_path: Path | None = None,
) -> ValidatedTable:
    """Load a member table; one row per ``member_id`` (later repeats of an id are duplicates).

    Only ``member_id``, ``joined_at``, ``tier``, ``region`` and ``birth_date`` are read; the
    file's other columns are dropped unread and named in the report (``dropped_personal``,
    ``dropped_unused``). A column of another name that holds one of these is kept by mapping
    it (``mapping={"birth_date": "DateOfBirth"}``).
    """
    return _load_keyed_table(
        path, mapping or {}, _MEMBER_FIELDS, max_bad_share, quarantine_path, fields_only=True
    )


FieldKind = Literal["text", "price", "bool", "time"]

#: Catalog and member tables, field by field; the first field is the key (required, unique).
_ITEM_FIELDS: tuple[tuple[str, FieldKind], ...] = (
    (col.ITEM_ID, "text"),
    (col.PRICE, "price"),
    (col.AVAILABLE, "bool"),
    (col.REPEATABLE, "bool"),
    (col.TITLE, "text"),
    (col.CATEGORY, "text"),
    (col.BRAND, "text"),
    (col.TAGS, "text"),
    (col.DESCRIPTION, "text"),
    (col.RELEASED_AT, "time"),
)
_MEMBER_FIELDS: tuple[tuple[str, FieldKind], ...] = (
    (col.MEMBER_ID, "text"),
    (col.JOINED_AT, "time"),
    (col.TIER, "text"),
    (col.REGION, "text"),
    (col.BIRTH_DATE, "time"),
)


def _field_parser(name: str, kind: FieldKind, dtype: pl.DataType) -> tuple[pl.Expr, list[RowCheck]]:
    """The parsed column of one catalog/member field and the checks it brings."""
    unparsed = present_but_unparsed(name, dtype)
    if kind == "price":
        return parse_float(name, dtype), [
            RowCheck(name, f"{name} is not a number", unparsed),
            RowCheck(name, f"{name} is negative", typed(name) < 0),
        ]
    if kind == "bool":
        reason = f"{name} is not a boolean (true/false/1/0/yes/no)"
        return _parse_bool(name, dtype), [RowCheck(name, reason, unparsed)]
    if kind == "time":
        return parse_timestamp(name, dtype), [RowCheck(name, f"unparseable {name}", unparsed)]
    return parse_id(name, dtype), []


def _load_keyed_table(
    path: Path,
    mapping: ColumnMapping,
    fields: tuple[tuple[str, FieldKind], ...],
    max_bad_share: float,
    quarantine_path: Path | None,
    *,
    fields_only: bool,
) -> ValidatedTable:
    """Load a table keyed by its first field: the key must be present, repeats are duplicates.
    ``fields_only`` drops the columns that are not ``fields`` before anything else is done."""
    key = fields[0][0]
    frame = read_table(path, mapping)
    require_in_file(frame, (key,), path)
    declared = {name for name, _ in fields}
    dropped = [name for name in frame.columns if name not in declared] if fields_only else []
    frame = frame.drop(dropped)
    present = [(name, kind) for name, kind in fields if name in frame.columns]
    exprs: list[pl.Expr] = []
    checks = [RowCheck(key, f"missing {key}", typed(key).is_null())]
    for name, kind in present:
        parsed, field_checks = _field_parser(name, kind, frame.schema[name])
        exprs.append(parsed.alias(TYPED + name))
        checks += field_checks
    return run_checks(
        frame,
        exprs,
        checks,
        lambda _: [typed(name).alias(name) for name, _ in present],
        source=path,
        source_names=mapping,
        key=(key,),
        max_bad_share=max_bad_share,
        quarantine_path=quarantine_path,
        dropped_personal=[name for name in dropped if looks_personal(name)],
        dropped_unused=[name for name in dropped if not looks_personal(name)],
    )


_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")


def _parse_bool(name: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Boolean:
        return pl.col(name)
    text = pl.col(name).cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    return pl.when(text.is_in(_TRUE)).then(True).when(text.is_in(_FALSE)).then(False)
