"""``recsys events backup`` and ``recsys events restore``: the event store to one portable file
and back, on SQLite and PostgreSQL alike (the file and its checks: :mod:`serving.event_backup`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.render import console
from features.errors import ConfigError

__all__ = ["app"]

app = typer.Typer(
    name="events",
    help="Back up and restore the event store (SQLite or PostgreSQL) as one portable file.",
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


@app.command("backup")
def backup(
    out: Annotated[Path, typer.Option("--out", help="Backup file to write (.jsonl or .jsonl.gz).")],
    events_url: EventsUrlOption = None,
) -> None:
    """Write every table of the event store to one file (a consistent snapshot)."""
    from serving.event_backup import backup_store, describe

    url = _url(events_url)
    _require_sqlite_file(url)
    started = time.perf_counter()
    with _reported(url, out):
        counts = backup_store(_open(url), out)
    console.print(
        f"backed up {describe(counts)} from {_safe(url)} to {out} "
        f"in {time.perf_counter() - started:.2f} s"
    )


@app.command("restore")
def restore(
    source: Annotated[Path, typer.Option("--from", help="Backup file written by `backup`.")],
    events_url: EventsUrlOption = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Delete what the store holds first.")
    ] = False,
) -> None:
    """Load a backup into an empty event store (or, with --replace, instead of its rows)."""
    from serving.event_backup import describe, restore_store

    url = _url(events_url)
    started = time.perf_counter()
    with _reported(url, source):
        counts = restore_store(_open(url), source, replace=replace)
    console.print(
        f"restored {describe(counts)} from {source} into {_safe(url)} "
        f"in {time.perf_counter() - started:.2f} s"
    )


@contextmanager
def _reported(url: str, path: Path) -> Iterator[None]:
    """The store or the file failing midway is one message naming it, not a traceback (a
    restore rolls back, a backup leaves no file)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as error:
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
