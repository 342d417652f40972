"""``recsys backup`` and ``recsys restore``: the event store to one file that checks itself,
and back, on SQLite and PostgreSQL alike (formats and checks: :mod:`serving.event_backup`).

``recsys events backup`` / ``restore``, the names of earlier versions, stay as hidden aliases
of the same two commands (:data:`app`), so that scripts written for them keep working.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.render import console
from features.errors import ConfigError

if TYPE_CHECKING:
    from serving.event_backup import BackupReport

__all__ = ["app", "backup", "restore"]

app = typer.Typer(
    name="events",
    help="Aliases of `recsys backup` and `recsys restore` (earlier versions' names).",
    no_args_is_help=True,
)

EventsUrlOption = Annotated[
    str | None,
    typer.Option(
        envvar="RECSYS_EVENTS_URL",
        help="Event store URL (default: RECSYS_EVENTS_URL, else serving's SQLite file "
        "data/serving/events.db).",
    ),
]


class BackupFormat(StrEnum):
    """``--format``: ``auto`` goes by the name of ``--out``."""

    AUTO = "auto"
    SQLITE = "sqlite"
    JSONL = "jsonl"


@app.command("backup")
def backup(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Backup file to write: .db is a SQLite copy (of a SQLite store), .jsonl or "
            ".jsonl.gz the portable format (any store).",
        ),
    ] = None,
    verify: Annotated[
        Path | None,
        typer.Option(
            "--verify",
            metavar="FILE",
            help="Check this backup instead, on its own: SQLite's integrity check, and every "
            "table's row count and checksum against its manifest.",
        ),
    ] = None,
    backup_format: Annotated[
        BackupFormat,
        typer.Option("--format", help="sqlite or jsonl; auto: by the suffix of --out."),
    ] = BackupFormat.AUTO,
    events_url: EventsUrlOption = None,
) -> None:
    """Back up every table of the event store to one file, from one consistent snapshot while
    the servers write (with --verify, check a backup instead)."""
    from serving.event_backup import backup_store, verify_backup

    if (out is None) == (verify is None):
        raise ConfigError("give --out FILE (take a backup) or --verify FILE (check one): one")
    if verify is not None:
        with _reported(None, verify):
            report = verify_backup(verify)
        console.print(_verified(report), highlight=False)
        return
    assert out is not None
    url = _url(events_url)
    _require_sqlite_file(url)
    chosen = None if backup_format is BackupFormat.AUTO else backup_format.value
    started = time.perf_counter()
    try:
        with _reported(url, out):
            report = backup_store(_open(url), out, kind=chosen)
    except ConfigError as error:
        _audit(url, "backup", str(out), {}, error)
        raise
    _audit(url, "backup", str(out), {"format": report.format, "rows": report.counts})
    console.print(
        f"backed up {_counted(report)} from {_safe(url)} to {out} ({_kind(report)}, each "
        f"table's count and checksum in its manifest) in {time.perf_counter() - started:.2f} s",
        highlight=False,
    )


@app.command("restore")
def restore(
    source: Annotated[Path, typer.Option("--from", help="Backup file written by `recsys backup`.")],
    events_url: EventsUrlOption = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace what the store holds.")
    ] = False,
) -> None:
    """Restore a backup into an empty event store (or, with --replace, instead of its rows),
    checked before and after against the backup's manifest."""
    from serving.event_backup import restore_store

    url = _url(events_url)
    started = time.perf_counter()
    with _reported(url, source):
        report = restore_store(_open(url), source, replace=replace)
    # Recorded once the store matches the backup (an entry in a refused, empty target would
    # make the next restore find a row there); a refused restore changed nothing to record.
    _audit(url, "restore", str(source), {"replace": replace, "rows": report.counts})
    console.print(
        f"restored {_counted(report)} from {source} into {_safe(url)} in "
        f"{time.perf_counter() - started:.2f} s; the store matches the backup's manifest",
        highlight=False,
    )


def _audit(
    url: str, action: str, target: str, detail: dict[str, Any], error: Exception | None = None
) -> None:
    """Record ``action`` in the store's audit log (:mod:`serving.audit`), by this command's
    user; a store that cannot take the entry is said, not raised: the backup or restore
    itself is done."""
    from sqlalchemy.exc import SQLAlchemyError

    from serving.audit import AuditEntry, AuditLog, cli_actor

    try:
        store = _open(url)
    except ConfigError as failure:
        console.print(f"not recorded in the audit log: {failure}", highlight=False)
        return
    try:
        AuditLog(store).record_entry(AuditEntry(cli_actor(), action, target, detail), error)
    except SQLAlchemyError as failure:
        console.print(f"not recorded in the audit log: {failure}", highlight=False)
    finally:
        store.close()


def _kind(report: BackupReport) -> str:
    return "a SQLite copy" if report.format == "sqlite" else "the portable format"


def _counted(report: BackupReport) -> str:
    from serving.event_backup import describe

    return describe(report.counts)


def _verified(report: BackupReport) -> str:
    """What a check found: the backup's kind and age, and that it matches its manifest."""
    written = datetime.fromtimestamp(report.written_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    integrity = "" if report.integrity is None else f"; SQLite integrity check: {report.integrity}"
    checked = (
        "match the manifest's counts and checksums"
        if report.checksummed
        else "match the manifest's counts (it has no checksums: an earlier version wrote it)"
    )
    return (
        f"{report.path}: {_kind(report)} of a {report.dialect} store, written {written}"
        f"{integrity}; {_counted(report)}: {checked}"
    )


@contextmanager
def _reported(url: str | None, path: Path) -> Iterator[None]:
    """The store or the file failing midway is one message naming it, not a traceback (a
    restore rolls back, a backup leaves no file); ``url`` None: no store is involved."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, sqlite3.Error) as error:
        if url is None:
            raise ConfigError(f"{path}: SQLite cannot read it ({error})") from None
        raise ConfigError(
            f"--events-url {_safe(url)}: the event store failed ({error.__class__.__name__}: "
            f"{str(error).splitlines()[0]}); nothing was changed, retry or fix the database"
        ) from None
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror or error}") from None


def _url(url: str | None) -> str:
    from serving.settings import Settings

    return url or str(Settings.model_fields["events_url"].default)


def _require_sqlite_file(url: str) -> None:
    """A backup of a SQLite file that does not exist would create an empty store: say so."""
    parsed = _parse(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database not in (None, "", ":memory:") and not Path(database).is_file():
        raise ConfigError(f"--events-url {url}: no such file {database}")


def _parse(url: str) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"--events-url {url!r}: not a database URL; use e.g. sqlite:///data/serving/"
            "events.db or postgresql+psycopg://user@host/db"
        ) from None


def _open(url: str) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    from serving.event_store import EventStore

    _parse(url)
    try:
        return EventStore.open(url)
    except (SQLAlchemyError, ImportError) as error:
        raise ConfigError(
            f"--events-url {_safe(url)}: cannot open the event store ({error}); fix the URL or "
            "RECSYS_EVENTS_URL, or start the database"
        ) from None


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    return _parse(url).render_as_string(hide_password=True)
