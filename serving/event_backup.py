"""Backups of the event store: every table to one portable file and back, on SQLite and
PostgreSQL alike (``recsys events backup`` / ``restore``).

The file is JSON lines (gzip-compressed when its name ends in ``.gz``): a header naming the
format, its schema version and every table's columns, one line per row (``{"table": ...,
"row": {...}}``), and a closing line with each table's row count, so that a truncated file is
refused rather than half restored. JSON keeps every value exactly (floats round-trip), and a
backup taken from SQLite restores into PostgreSQL and back, since both are read and written
through the tables of :mod:`serving.event_store`. Ids are kept: events stay idempotent on
``event_id`` and clicks keep pointing at their served lists after a restore.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select, text

from features.errors import ConfigError
from serving.event_store import EventStore, metadata

__all__ = ["FORMAT", "SCHEMA_VERSION", "backup_store", "describe", "restore_store"]

#: What the header's ``format`` says; a file without it is not a backup of ours.
FORMAT = "member-recsys-events"
#: Bumped when a table of :mod:`serving.event_store` changes its columns.
SCHEMA_VERSION = 1
_BATCH = 5_000


def backup_store(store: EventStore, out: Path) -> dict[str, int]:
    """Write every table of ``store`` to ``out``, from one snapshot; returns the rows per
    table. The file is written under a temporary name and renamed when whole, so ``out`` is
    never a partial backup. Closes ``store``."""
    tables = metadata.sorted_tables
    partial = out.with_name(f".{out.name}.partial")
    counts: dict[str, int] = {}
    try:
        with _snapshot(store) as connection, _open_file(partial, out.name, "wt") as file:
            columns = {table.name: [column.name for column in table.columns] for table in tables}
            _write(file, {"format": FORMAT, "schema_version": SCHEMA_VERSION,
                          "dialect": store.dialect, "written_at": time.time(),
                          "tables": columns})  # fmt: skip
            for table in tables:
                counts[table.name] = 0
                ordered = table.select().order_by(*table.primary_key.columns)
                result = connection.execution_options(yield_per=_BATCH).execute(ordered)
                for row in result.mappings():
                    _write(file, {"table": table.name, "row": dict(row)})
                    counts[table.name] += 1
            _write(file, {"end": True, "counts": counts})
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        store.close()
    return counts


def restore_store(store: EventStore, source: Path, *, replace: bool = False) -> dict[str, int]:
    """Insert the rows of backup ``source`` into ``store`` in one transaction (all or
    nothing); refuses a store holding rows unless ``replace``. Returns the rows per table.
    Closes ``store``."""
    tables = {table.name: table for table in metadata.sorted_tables}
    try:
        if not source.is_file():
            raise ConfigError(f"{source}: no such file")
        with store.engine.begin() as connection:
            held = {n: connection.execute(select(func.count()).select_from(t)).scalar_one()
                    for n, t in tables.items()}  # fmt: skip
            if any(held.values()) and not replace:
                raise ConfigError(
                    f"the event store already holds {describe(held)}; restore into an empty "
                    "store, or add --replace to delete its rows first"
                )
            for table in reversed(list(tables.values())):
                connection.execute(table.delete())
            counts = _insert_rows(connection, tables, source)
            if store.dialect == "postgresql":  # explicit ids do not move the id sequences
                for table in tables.values():
                    for column in table.primary_key.columns:
                        if column.autoincrement is True:
                            connection.execute(text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                                f"'{column.name}'), COALESCE(MAX({column.name}), 0) + 1, false) "
                                f"FROM {table.name}"
                            ))  # fmt: skip
    finally:
        store.close()
    return counts


def _insert_rows(connection: Any, tables: dict[str, Any], source: Path) -> dict[str, int]:
    """Read ``source`` line by line, inserting its rows in batches; checks the header and the
    closing counts, so that another file or a truncated one is refused (and rolled back)."""
    counts = {name: 0 for name in tables}
    pending: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}

    def flush(name: str) -> None:
        if pending[name]:
            connection.execute(tables[name].insert(), pending[name])
            counts[name] += len(pending[name])
            pending[name] = []

    with _open_file(source, source.name, "rt") as file:
        lines = (json.loads(line) for line in file if line.strip())
        try:
            _check_header(next(lines, None), tables, source)
            closing = None
            for record in lines:
                if record.get("end"):
                    closing = record
                    break
                name = record.get("table")
                if name not in tables:
                    raise ConfigError(f"{source}: a row of unknown table {name!r}")
                pending[name].append(record["row"])
                if len(pending[name]) >= _BATCH:
                    flush(name)
        except (json.JSONDecodeError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as error:
            raise ConfigError(f"{source}: not a readable backup ({error})") from None
    for name in tables:
        flush(name)
    if closing is None or closing.get("counts") != counts:
        raise ConfigError(
            f"{source}: the file is truncated (it ends before its closing line, or its "
            f"counts differ from the {describe(counts)} read); nothing was restored"
        )
    return counts


def _check_header(header: Any, tables: dict[str, Any], source: Path) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ConfigError(f"{source}: not a backup of `recsys events backup`")
    if header.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(
            f"{source}: schema version {header.get('schema_version')}, this version "
            f"restores {SCHEMA_VERSION}; restore it with the version of member-recsys that "
            "wrote it"
        )
    expected = {name: [c.name for c in table.columns] for name, table in tables.items()}
    if header.get("tables") != expected:
        raise ConfigError(f"{source}: its tables' columns differ from this version's")


@contextmanager
def _snapshot(store: EventStore) -> Iterator[Any]:
    """One connection whose reads all see the same committed state: a REPEATABLE READ
    transaction on PostgreSQL, an explicit read transaction on SQLite (WAL: writers go on)."""
    if store.dialect == "postgresql":
        with store.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection
        return
    with store.engine.connect() as connection:
        connection.exec_driver_sql("BEGIN")
        try:
            yield connection
        finally:
            connection.rollback()


@contextmanager
def _open_file(path: Path, name: str, mode: str) -> Iterator[IO[str]]:
    if name.endswith(".gz"):
        with gzip.open(path, mode, encoding="utf-8") as file:
            yield file  # type: ignore[misc]
    else:
        with path.open(mode[0], encoding="utf-8") as file:
            yield file


def _write(file: IO[str], record: dict[str, Any]) -> None:
    file.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")


def describe(counts: dict[str, int]) -> str:
    return ", ".join(
        f"{rows:,} {'row' if rows == 1 else 'rows'} of {name}" for name, rows in counts.items()
    )
