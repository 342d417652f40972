"""Backups of the event store, each checkable on its own (``recsys backup``, ``recsys backup
--verify``, ``recsys restore``), in two formats:

* **sqlite** (``.db``): a copy of a SQLite store, page for page, by SQLite's online backup API
  in one step: one read transaction, so a consistent snapshot while the servers go on writing
  (WAL). The copy is a self-contained file (rollback journal, not WAL) that SQLite opens as
  it is, and it carries its manifest in a table of its own (:data:`MANIFEST_TABLE`), so that
  one file is all there is to keep, encrypt and check.
* **jsonl** (``.jsonl``, ``.jsonl.gz``: gzip when the name ends in ``.gz``): portable, for
  PostgreSQL stores (read in one REPEATABLE READ transaction) and for moves between engines.
  A header names the format, its schema version and every table's columns; one line per row
  (``{"table": ..., "row": {...}}``); a closing line carries the manifest, so that a truncated
  file is refused rather than half restored. JSON keeps every value exactly (floats
  round-trip).

The manifest holds each table's row count and checksum: SHA-256 over the table's column names,
then each row's values as one canonical JSON array, rows in primary-key order (byte order for
text on both engines: PostgreSQL's collation would order them otherwise). The same digest of a
store, of a backup file and of the store it was restored into is equal exactly when their
rows are, whichever engine holds them, so that a backup is checked against its manifest
without the store it came from, and a restore against the backup. Checksums find damage
(a flipped byte, a lost row), not a forger: keep backups where only operators write, and
encrypt or sign them (docs/operations.md).

Every table of :data:`serving.event_store.metadata` is covered, whatever tables it gains; ids
are kept, so events stay idempotent on ``event_id`` and clicks keep pointing at their served
lists after a restore.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import sqlite3
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NamedTuple

from sqlalchemy import Connection, Engine, Select, String, Table, create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from features.errors import ConfigError, DataError
from serving.event_store import EventStore, metadata

__all__ = [
    "FORMAT",
    "JSONL",
    "MANIFEST_TABLE",
    "SCHEMA_VERSION",
    "SQLITE",
    "BackupReport",
    "DamagedBackupError",
    "TableDigest",
    "backup_format",
    "backup_store",
    "describe",
    "restore_store",
    "store_digests",
    "verify_backup",
]

#: What a manifest's ``format`` says; a file without it is not a backup of ours.
FORMAT = "member-recsys-events"
#: Bumped when a table of :mod:`serving.event_store` changes its columns.
SCHEMA_VERSION = 2
#: The two formats: a SQLite copy, and the portable JSON lines.
SQLITE, JSONL = "sqlite", "jsonl"
#: The table of a SQLite backup that holds its manifest; dropped from a store restored from it.
MANIFEST_TABLE = "recsys_backup_manifest"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_GZIP_MAGIC = b"\x1f\x8b"
_BATCH = 5_000
#: Lines of ``PRAGMA integrity_check`` quoted in a message (it can list thousands).
_INTEGRITY_LINES = 3


class DamagedBackupError(DataError):
    """A backup file, or a store restored from one, differs from the backup's manifest."""


class TableDigest(NamedTuple):
    """A table's row count and content checksum (None: a backup of an earlier version, which
    recorded counts only)."""

    rows: int
    sha256: str | None


@dataclasses.dataclass(frozen=True)
class BackupReport:
    """A backup as written, checked or restored: what its manifest says, all of it verified."""

    path: Path
    #: :data:`SQLITE` or :data:`JSONL`.
    format: str
    #: The engine of the store it was taken from.
    dialect: str
    written_at: float
    tables: dict[str, TableDigest]
    #: What ``PRAGMA integrity_check`` said of a SQLite backup (None for the portable format).
    integrity: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {name: digest.rows for name, digest in self.tables.items()}

    @property
    def checksummed(self) -> bool:
        return all(digest.sha256 is not None for digest in self.tables.values())


# -- digests ---------------------------------------------------------------------------------


def _line(values: list[Any]) -> bytes:
    """One canonical JSON array: the same bytes for the same values from either engine."""
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class _Digest:
    """The running count and SHA-256 of one table's rows, fed in canonical order."""

    def __init__(self, table: Table) -> None:
        self.columns = [column.name for column in table.columns]
        self.rows = 0
        self._hash = hashlib.sha256(_line(self.columns) + b"\n")

    def add(self, row: Mapping[str, Any]) -> None:
        self._hash.update(_line([row[name] for name in self.columns]) + b"\n")
        self.rows += 1

    def result(self) -> TableDigest:
        return TableDigest(self.rows, self._hash.hexdigest())


def _canonical(table: Table, dialect: str) -> Select:
    """Every row of ``table`` in the order its digest is taken: by primary key (every column
    for a table without one), text in byte order on PostgreSQL too, as on SQLite."""
    keys: list[Any] = list(table.primary_key.columns) or list(table.columns)
    if dialect == "postgresql":
        keys = [key.collate("C") if isinstance(key.type, String) else key for key in keys]
    return table.select().order_by(*keys).execution_options(yield_per=_BATCH)


def store_digests(
    connection: Connection, dialect: str, names: Iterable[str] | None = None
) -> dict[str, TableDigest]:
    """The digest of every table (or of the tables ``names``) as ``connection`` sees them."""
    wanted = set(names) if names is not None else None
    digests = {}
    for table in metadata.sorted_tables:
        if wanted is not None and table.name not in wanted:
            continue
        digest = _Digest(table)
        for row in connection.execute(_canonical(table, dialect)).mappings():
            digest.add(row)
        digests[table.name] = digest.result()
    return digests


def _differences(
    expected: Mapping[str, TableDigest], found: Mapping[str, TableDigest]
) -> list[str]:
    """What differs between a manifest and what was found, one phrase per table."""
    problems = []
    for table in metadata.sorted_tables:
        want, got = expected.get(table.name), found.get(table.name)
        if want is None:
            problems.append(f"{table.name} is not in the manifest")
        elif got is None:
            problems.append(f"{table.name} is missing")
        elif got.rows != want.rows:
            problems.append(f"{table.name} has {got.rows:,} rows, the manifest says {want.rows:,}")
        elif want.sha256 is not None and got.sha256 != want.sha256:
            problems.append(
                f"{table.name} has the manifest's {want.rows:,} rows but not their content "
                "(its checksum differs)"
            )
    return problems


# -- the manifest ----------------------------------------------------------------------------


def _columns() -> dict[str, list[str]]:
    return {
        table.name: [column.name for column in table.columns] for table in metadata.sorted_tables
    }


def _header(dialect: str) -> dict[str, Any]:
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "dialect": dialect,
            "written_at": time.time(), "tables": _columns()}  # fmt: skip


def _sums(digests: Mapping[str, TableDigest]) -> dict[str, Any]:
    """The manifest's counts and checksums (``counts`` alone is what issue 12's files carry)."""
    return {"counts": {name: digest.rows for name, digest in digests.items()},
            "sha256": {name: digest.sha256 for name, digest in digests.items()}}  # fmt: skip


def _digests_of(manifest: Mapping[str, Any]) -> dict[str, TableDigest]:
    counts, sums = manifest.get("counts") or {}, manifest.get("sha256") or {}
    return {name: TableDigest(int(rows), sums.get(name)) for name, rows in counts.items()}


def _check_header(header: Any, source: Path) -> None:
    """A manifest or header of this format, schema version and columns, or a ``ConfigError``
    saying what the file is instead."""
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ConfigError(f"{source}: not a backup written by `recsys backup`")
    if header.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(
            f"{source}: schema version {header.get('schema_version')}, this version "
            f"restores {SCHEMA_VERSION}; restore it with the version of member-recsys that "
            "wrote it"
        )
    if header.get("tables") != _columns():
        raise ConfigError(
            f"{source}: its tables' columns differ from this version's; restore it with the "
            "version of member-recsys that wrote it"
        )


# -- backup ----------------------------------------------------------------------------------


def backup_format(out: Path, requested: str | None, dialect: str) -> str:
    """The format to write: ``requested``, else by ``out``'s suffix (``.db``, ``.sqlite``,
    ``.sqlite3``: a SQLite copy; anything else the portable format). A SQLite copy is only
    of a SQLite store."""
    kind = requested or (SQLITE if out.suffix.lower() in _SQLITE_SUFFIXES else JSONL)
    if kind not in (SQLITE, JSONL):
        raise ConfigError(f"backup format {kind!r}: use {SQLITE} or {JSONL}")
    if kind == SQLITE and dialect != "sqlite":
        raise ConfigError(
            f"{out}: a {dialect} store is backed up in the portable format: name the file "
            ".jsonl or .jsonl.gz (or use pg_dump -Fc, docs/operations.md)"
        )
    return kind


def backup_store(store: EventStore, out: Path, *, kind: str | None = None) -> BackupReport:
    """Write every table of ``store`` to ``out`` from one snapshot, with its manifest, in
    ``kind`` (:func:`backup_format` decides when None). The file is written under a temporary
    name, flushed to disk and renamed when whole, so ``out`` is never a partial backup.
    Closes ``store``."""
    partial = out.with_name(f".{out.name}.partial")
    try:
        kind = backup_format(out, kind, store.dialect)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        written = _backup_sqlite if kind == SQLITE else _backup_portable
        report = written(store, partial)
        _fsync(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        store.close()
    return dataclasses.replace(report, path=out)


def _backup_sqlite(store: EventStore, partial: Path) -> BackupReport:
    """SQLite's online backup of the store into ``partial``, checked (integrity, digests of the
    copy itself, so the manifest says what the file holds), with its manifest inside."""
    header = _header(store.dialect)
    source = store.engine.raw_connection()
    try:
        copy = sqlite3.connect(partial)
        try:
            source.driver_connection.backup(copy)  # type: ignore[union-attr]  # one step
            copy.execute("PRAGMA journal_mode=DELETE")  # one file: no -wal beside it
        finally:
            copy.close()
    finally:
        source.close()
    engine = create_engine(f"sqlite:///{partial}", poolclass=NullPool)
    try:
        with engine.begin() as connection:
            integrity = _integrity(connection)
            if integrity != "ok":
                raise DamagedBackupError(
                    f"the store's own file is damaged (PRAGMA integrity_check: {integrity}); "
                    "back up with the portable format (.jsonl.gz) to save what is readable"
                )
            digests = store_digests(connection, "sqlite")
            connection.exec_driver_sql(f"CREATE TABLE {MANIFEST_TABLE} (manifest TEXT NOT NULL)")
            manifest = json.dumps({**header, **_sums(digests)})
            connection.exec_driver_sql(f"INSERT INTO {MANIFEST_TABLE} VALUES (?)", (manifest,))
    finally:
        engine.dispose()
    return BackupReport(partial, SQLITE, store.dialect, header["written_at"], digests, integrity)


def _backup_portable(store: EventStore, partial: Path) -> BackupReport:
    header = _header(store.dialect)
    digests: dict[str, TableDigest] = {}
    with _snapshot(store) as connection, _writer(partial, partial.name) as file:
        _write(file, header)
        for table in metadata.sorted_tables:
            digest = _Digest(table)
            for row in connection.execute(_canonical(table, store.dialect)).mappings():
                _write(file, {"table": table.name, "row": dict(row)})
                digest.add(row)
            digests[table.name] = digest.result()
        _write(file, {"end": True, **_sums(digests)})
    return BackupReport(partial, JSONL, store.dialect, header["written_at"], digests)


@contextmanager
def _snapshot(store: EventStore) -> Iterator[Connection]:
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


# -- verify ----------------------------------------------------------------------------------


def verify_backup(path: Path) -> BackupReport:
    """Check a backup on its own: a SQLite copy by ``PRAGMA integrity_check`` and its tables'
    counts and checksums against its manifest; a portable file by reading it whole against its
    closing line. Raises :class:`DamagedBackupError` naming every difference (``ConfigError``
    for a file that is no backup of ours)."""
    _require_file(path)
    if _is_sqlite(path):
        return _verify_sqlite(path)
    reader = _PortableReader(path)
    for _ in reader.rows():
        pass
    return reader.report()


def _verify_sqlite(path: Path) -> BackupReport:
    engine = _read_only(path)
    try:
        with engine.connect() as connection:
            manifest = _sqlite_manifest(connection, path)
            integrity = _integrity(connection)
            held = {name for (name,) in connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip
            found = store_digests(connection, "sqlite", held)
    except DBAPIError as error:
        raise DamagedBackupError(
            f"{path}: SQLite cannot read it ({_first_line(error.orig)}): the file is damaged "
            "or truncated; check another backup"
        ) from None
    finally:
        engine.dispose()
    expected = _digests_of(manifest)
    problems = [] if integrity == "ok" else [f"PRAGMA integrity_check says {integrity}"]
    problems += _differences(expected, found)
    if problems:
        raise DamagedBackupError(
            f"{path}: the backup does not match its manifest: {'; '.join(problems)}; it is "
            "damaged or was changed: check another backup"
        )
    return BackupReport(path, SQLITE, str(manifest.get("dialect")),
                        float(manifest.get("written_at") or 0), expected, integrity)  # fmt: skip


def _sqlite_manifest(connection: Connection, path: Path) -> dict[str, Any]:
    tables = connection.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (MANIFEST_TABLE,)
    ).all()
    if not tables:
        raise ConfigError(
            f"{path}: a SQLite file without a backup manifest (a store, not a backup?); back "
            "it up with `recsys backup --events-url sqlite:///<it> --out <backup>.db`"
        )
    rows = connection.exec_driver_sql(f"SELECT manifest FROM {MANIFEST_TABLE}").all()
    try:
        (manifest,) = (json.loads(row[0]) for row in rows)
    except (ValueError, TypeError):
        raise DamagedBackupError(
            f"{path}: its manifest is not one JSON object: it was changed or is damaged"
        ) from None
    _check_header(manifest, path)
    return manifest


def _integrity(connection: Connection) -> str:
    """``ok``, or the first problems ``PRAGMA integrity_check`` lists."""
    lines = [str(row[0]) for row in connection.exec_driver_sql("PRAGMA integrity_check")]
    more = len(lines) - _INTEGRITY_LINES
    return "; ".join(lines[:_INTEGRITY_LINES]) + (f" (and {more:,} more)" if more > 0 else "")


class _PortableReader:
    """A portable backup read row by row, each row checked and digested as it goes by;
    :meth:`report` then compares the digests with the closing line."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self._digests = {table.name: _Digest(table) for table in metadata.sorted_tables}
        self._header: dict[str, Any] = {}
        self._closing: dict[str, Any] | None = None

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(table, row) of every row line, in file order."""
        number = 0
        try:
            with _reader(self.source) as file:
                lines = ((n, line) for n, line in enumerate(file, 1) if line.strip())
                self._header = self._checked_header(next(lines, (0, ""))[1])
                for number, line in lines:
                    record = json.loads(line)
                    if self._closing is not None or not isinstance(record, dict):
                        raise self._damaged(f"line {number} is not a row of the backup")
                    if record.get("end"):
                        self._closing = record
                        continue
                    yield self._checked(number, record)
        except (ValueError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            # JSON, UTF-8, gzip's CRC and length, a stream cut short
            if not self._header:
                raise ConfigError(
                    f"{self.source}: not a backup written by `recsys backup`"
                ) from None
            raise self._damaged(f"unreadable after line {number} ({error})") from None

    def _checked_header(self, line: str) -> dict[str, Any]:
        header = json.loads(line) if line else None
        _check_header(header, self.source)
        return header  # type: ignore[return-value]

    def _checked(self, number: int, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name, row = record.get("table"), record.get("row")
        digest = self._digests.get(name)  # type: ignore[arg-type]
        if digest is None:
            raise self._damaged(f"line {number} is a row of unknown table {name!r}")
        if not isinstance(row, dict) or sorted(row) != sorted(digest.columns):
            raise self._damaged(f"line {number}: a row of {name} without its columns")
        digest.add(row)
        return name, row  # type: ignore[return-value]

    def report(self) -> BackupReport:
        """What the file holds, once every row is read; raises when it differs from its
        closing line (or has none: a truncated file)."""
        if self._closing is None:
            raise self._damaged("the file is truncated: it ends before its closing line")
        expected = _digests_of(self._closing)
        problems = _differences(expected, {n: d.result() for n, d in self._digests.items()})
        if problems:
            raise self._damaged(f"it does not match its closing manifest: {'; '.join(problems)}")
        return BackupReport(self.source, JSONL, str(self._header.get("dialect")),
                            float(self._header.get("written_at") or 0), expected)  # fmt: skip

    def _damaged(self, what: str) -> DamagedBackupError:
        return DamagedBackupError(
            f"{self.source}: {what}; the backup is damaged or was changed: nothing was restored "
            "from it, check another backup"
        )


# -- restore ---------------------------------------------------------------------------------


def restore_store(store: EventStore, source: Path, *, replace: bool = False) -> BackupReport:
    """Restore backup ``source`` into ``store``, refusing a store that holds rows unless
    ``replace``, and check the restored store against the backup's manifest.

    A SQLite copy is checked first, then copied into a SQLite store page for page (SQLite's
    backup API, into the store's own file: a whole-file swap that other connections see at
    once); into PostgreSQL, or a SQLite file that holds tables of others too, its rows are
    inserted instead. A portable file is inserted into any store. Inserts run in one
    transaction that the manifest's checks end: all or nothing. Closes ``store``."""
    try:
        _require_file(source)
        if not _is_sqlite(source):
            reader = _PortableReader(source)
            _insert(store, reader.rows(), lambda: reader.report().tables, replace, source)
            return reader.report()
        report = verify_backup(source)
        if _copies_into(store):
            _copy_into_place(store, source, report.tables, replace)
            return report
        engine = _read_only(source)
        try:
            with engine.connect() as backup:
                _insert(store, _rows_of(backup), lambda: report.tables, replace, source)
        finally:
            engine.dispose()
        return report
    finally:
        store.close()


def _insert(
    store: EventStore,
    rows: Iterator[tuple[str, dict[str, Any]]],
    expected: Callable[[], dict[str, TableDigest]],
    replace: bool,
    source: Path,
) -> None:
    """Insert ``rows`` in batches in one transaction, after the store's own rows when
    ``replace``; commits only when the store then holds what ``expected`` says."""
    tables = {table.name: table for table in metadata.sorted_tables}
    with store.engine.begin() as connection:
        _refuse_rows(connection, replace)
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
        # One table's batch at a time, in the file's order (parents first): a send's campaign
        # is inserted before the send, as PostgreSQL's foreign keys require.
        batch: list[dict[str, Any]] = []
        current = None
        for name, row in rows:
            if batch and (name != current or len(batch) >= _BATCH):
                connection.execute(tables[current].insert(), batch)  # type: ignore[index]
                batch = []
            current = name
            batch.append(row)
        if batch:
            connection.execute(tables[current].insert(), batch)  # type: ignore[index]
        manifest = expected()
        if store.dialect == "postgresql":
            _move_sequences(connection)
        _check_restored(manifest, store_digests(connection, store.dialect), source)


def _copies_into(store: EventStore) -> bool:
    """Whether a SQLite copy can replace ``store``'s file whole: a SQLite file that holds no
    table but the event store's (a file shared with other tables gets rows inserted)."""
    if store.dialect != "sqlite" or store.engine.url.database in (None, "", ":memory:"):
        return False
    ours = {table.name for table in metadata.sorted_tables}
    with store.engine.connect() as connection:
        held = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return {name for (name,) in held} <= ours


def _copy_into_place(
    store: EventStore, source: Path, manifest: Mapping[str, TableDigest], replace: bool
) -> None:
    with store.engine.connect() as connection:
        _refuse_rows(connection, replace)
    backup = sqlite3.connect(_read_only_uri(source), uri=True)
    target = store.engine.raw_connection()
    try:
        backup.backup(target.driver_connection)  # type: ignore[arg-type]  # stays in WAL mode
        target.driver_connection.execute(f"DROP TABLE {MANIFEST_TABLE}")  # type: ignore[union-attr]
        target.driver_connection.commit()  # type: ignore[union-attr]
    finally:
        target.close()
        backup.close()
    with store.engine.connect() as connection:
        _check_restored(manifest, store_digests(connection, "sqlite"), source)


def _check_restored(
    manifest: Mapping[str, TableDigest], found: Mapping[str, TableDigest], source: Path
) -> None:
    problems = _differences(manifest, found)
    if problems:
        raise DamagedBackupError(
            f"the store restored from {source} differs from the backup's manifest: "
            f"{'; '.join(problems)}; restore into an empty store of this version"
        )


def _refuse_rows(connection: Connection, replace: bool) -> None:
    held = {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables}  # fmt: skip
    if any(held.values()) and not replace:
        raise ConfigError(
            f"the event store already holds {describe(held)}; restore into an empty store, or "
            "add --replace to delete its rows first"
        )


def _rows_of(backup: Connection) -> Iterator[tuple[str, dict[str, Any]]]:
    for table in metadata.sorted_tables:
        for row in backup.execute(_canonical(table, "sqlite")).mappings():
            yield table.name, dict(row)


def _move_sequences(connection: Connection) -> None:
    """Explicit ids do not move PostgreSQL's id sequences: set each past the restored rows."""
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if column.autoincrement is True:
                connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"COALESCE(MAX({column.name}), 0) + 1, false) FROM {table.name}"
                ))  # fmt: skip


# -- files -----------------------------------------------------------------------------------


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


def _read_only_uri(path: Path) -> str:
    return f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"


def _read_only(path: Path) -> Engine:
    """An engine that reads the SQLite file ``path`` and cannot change it."""
    uri = _read_only_uri(path)
    return create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True), poolclass=NullPool
    )


@contextmanager
def _writer(path: Path, name: str) -> Iterator[IO[str]]:
    """Text out, gzip-compressed when ``name`` ends in ``.gz``."""
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as file:
            yield file  # type: ignore[misc]
    else:
        with path.open("w", encoding="utf-8") as file:
            yield file


@contextmanager
def _reader(path: Path) -> Iterator[IO[str]]:
    """Text in, gunzipped when the file is gzip (by its bytes, whatever its name)."""
    with path.open("rb") as probe:
        compressed = probe.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
    if compressed:
        with gzip.open(path, "rt", encoding="utf-8") as file:
            yield file  # type: ignore[misc]
    else:
        with path.open(encoding="utf-8") as file:
            yield file


def _write(file: IO[str], record: dict[str, Any]) -> None:
    file.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")


def _fsync(path: Path) -> None:
    """On disk before it is renamed into place: a backup that a power loss empties is none."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _first_line(error: BaseException | None) -> str:
    return str(error).splitlines()[0] if error is not None and str(error) else "no detail"


def describe(counts: Mapping[str, int]) -> str:
    return ", ".join(
        f"{rows:,} {'row' if rows == 1 else 'rows'} of {name}" for name, rows in counts.items()
    )
