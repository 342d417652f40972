"""Reading interaction, item and member files (CSV or Parquet) under a column mapping.

Files are read with every column as text (CSV) or as stored (Parquet); nothing is parsed here,
so a malformed value can never abort the read. Parsing and checking happen row by row in
:mod:`features.validate`, where a bad value becomes a quarantined row with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from features.errors import ConfigError, DataError, MissingColumnError

__all__ = ["ColumnMapping", "contract_names", "file_format", "parse_column_mapping", "read_table"]

#: Target (contract) column name -> source column name in the user's file.
ColumnMapping = Mapping[str, str]

_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def parse_column_mapping(spec: str | None, allowed: tuple[str, ...]) -> dict[str, str]:
    """Parse ``member_id=CustomerID,item_id=StockCode`` into ``{"member_id": "CustomerID", ...}``.

    ``allowed`` names the contract columns that may be mapped, so a typo such as
    ``memberid=...`` is reported instead of silently ignored.
    """
    if not spec:
        return {}
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        target, sep, source = part.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise ConfigError(
                f"--columns: cannot read {part.strip()!r}; write TARGET=SOURCE pairs separated by "
                "commas, e.g. --columns member_id=CustomerID,item_id=StockCode"
            )
        if target not in allowed:
            raise ConfigError(
                f"--columns: {target!r} is not a column of the data contract; "
                f"mappable columns are {', '.join(allowed)}"
            )
        mapping[target] = source
    return mapping


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in (*_CSV_SUFFIXES, *_PARQUET_SUFFIXES) if name.endswith(s)), "")


def file_format(path: Path) -> str:
    """``"parquet"``, ``"tsv"`` or ``"csv"``, by the file's suffix; every reader of a table
    (this module's, the Spark engine's) decides the format here, so that they accept the same
    files. Raises :class:`DataError` for a missing file or an unknown suffix."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = _suffix(path)
    if suffix in _PARQUET_SUFFIXES:
        return "parquet"
    if suffix in _CSV_SUFFIXES:
        return "tsv" if suffix == ".tsv" else "csv"
    raise DataError(
        f"{path}: unknown file type; use CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet)"
    )


def _read_raw(path: Path) -> pl.DataFrame:
    kind = file_format(path)
    try:
        if kind == "parquet":
            return pl.read_parquet(path)
        return pl.read_csv(
            path,
            infer_schema=False,
            separator="\t" if kind == "tsv" else ",",
            encoding="utf8-lossy",
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: cannot be read as {_suffix(path)}: {exc}") from exc


def contract_names(
    columns: Sequence[str], mapping: ColumnMapping, path: Path
) -> tuple[list[str], dict[str, str]]:
    """The file columns to drop and the renames that give a file's columns their contract names.

    A file column that already has a contract name but is shadowed by a mapping is dropped, so
    that the mapped column wins instead of clashing with it. Raises
    :class:`MissingColumnError` when a mapped source column is not in the file.
    """
    missing = [source for source in mapping.values() if source not in columns]
    if missing:
        raise MissingColumnError(
            f"{path}: column {missing[0]!r} named in the column mapping is not in the file "
            f"(columns found: {', '.join(columns)})"
        )
    renames = {source: target for target, source in mapping.items()}
    shadowed = [c for c in columns if c in mapping and c not in renames]
    return shadowed, renames


def read_table(path: Path, mapping: ColumnMapping) -> pl.DataFrame:
    """Read ``path`` and rename mapped source columns to their contract names.

    Every column is kept (unmapped ones too), so that a quarantined row can be written out
    whole. Raises :class:`MissingColumnError` when a mapped source column is not in the file.
    """
    frame = _read_raw(path)
    shadowed, renames = contract_names(frame.columns, mapping, path)
    return frame.drop(shadowed).rename(renames)
