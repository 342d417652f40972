"""The audit log: who did what to the service, when, and how it ended.

Every admin or write action (an API reload or erasure, a ``recsys promote``, a campaign export,
a ``recsys members forget``, a backup or restore) leaves one row in the event store's
``recsys_audit`` table, which ``GET /v1/admin/audit`` reads back. Who is never a secret: an API
key is recorded by its id (:func:`key_actor`, a fingerprint that names the key without
revealing it), a command by the operating-system user that ran it (:func:`cli_actor`).

The outcome is ``ok``, ``refused`` (the request was wrong or not allowed: the caller's to fix)
or ``failed`` (the service could not do it), so that an auditor can tell an attempt from a
change. Rows are only ever added; the log is read newest first.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select

from features.errors import RecsysError
from serving.event_store import AUDIT, EventStore

__all__ = [
    "AuditEntry",
    "AuditLog",
    "AuditRecord",
    "Outcome",
    "audited",
    "cli_actor",
    "key_actor",
    "outcome_of",
]

Outcome = Literal["ok", "refused", "failed"]
#: Hex digits of a key's fingerprint: enough that two keys of one deployment never share one.
_KEY_ID_DIGITS = 12


def key_actor(key: str) -> str:
    """An API key's id: ``key:`` and the first hex digits of its SHA-256. The same key always
    has the same id, so that the audit of a key can be found after it is retired, and the id
    cannot be turned back into the key."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    return f"key:{digest[:_KEY_ID_DIGITS]}"


def cli_actor() -> str:
    """The command line's user, ``cli:<login>`` (``cli:uid-<n>`` where the system has no name
    for the user, as in many containers)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid-{os.getuid()}"


def outcome_of(error: BaseException) -> tuple[Outcome, str]:
    """How an action that raised ``error`` ended, and the error as the log keeps it: an error
    the caller can fix (the product's own, or an API error below 500) is a refusal."""
    status = getattr(error, "status_code", None)
    refused = isinstance(error, RecsysError) or (isinstance(status, int) and status < 500)
    return ("refused" if refused else "failed"), f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class AuditRecord:
    """One row of the log."""

    id: int
    at: float
    actor: str
    action: str
    target: str | None
    outcome: Outcome
    detail: dict[str, Any]


@dataclass
class AuditEntry:
    """An action being done: what it was on and what it reported, filled in as it runs."""

    actor: str
    action: str
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class AuditLog:
    """Writes and reads of ``recsys_audit``."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    def record(
        self,
        actor: str,
        action: str,
        *,
        target: str | None = None,
        outcome: Outcome = "ok",
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Add a row, committed at once; returns its number."""
        row = {
            "at": time.time(),
            "actor": actor,
            "action": action,
            "target": target,
            "outcome": outcome,
            "detail": json.dumps(dict(detail or {}), sort_keys=True, default=str),
        }
        with self._store.engine.begin() as connection:
            return int(connection.execute(AUDIT.insert().values(**row)).inserted_primary_key[0])

    def record_entry(self, entry: AuditEntry, error: BaseException | None = None) -> int:
        """Record ``entry`` as done (``error`` None) or as ended by ``error``."""
        detail = dict(entry.detail)
        outcome: Outcome = "ok"
        if error is not None:
            outcome, detail["error"] = outcome_of(error)
        return self.record(
            entry.actor, entry.action, target=entry.target, outcome=outcome, detail=detail
        )

    def read(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: float | None = None,
    ) -> list[AuditRecord]:
        """The newest ``limit`` rows (numbered below ``before``, when given), optionally of one
        ``action`` or ``actor`` and at or after ``since`` (epoch seconds), newest first."""
        query = select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AUDIT.c.id < before)
        if action is not None:
            query = query.where(AUDIT.c.action == action)
        if actor is not None:
            query = query.where(AUDIT.c.actor == actor)
        if since is not None:
            query = query.where(AUDIT.c.at >= since)
        with self._store.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            AuditRecord(
                id=int(row["id"]), at=float(row["at"]), actor=row["actor"],
                action=row["action"], target=row["target"], outcome=row["outcome"],
                detail=json.loads(row["detail"]),
            )
            for row in rows
        ]  # fmt: skip


@contextmanager
def audited(
    store: EventStore, actor: str, action: str, target: str | None = None
) -> Iterator[AuditEntry]:
    """Record the block as ``action``: ok when it ends, refused or failed (with the error)
    when it raises, which it then re-raises. The block adds to the entry's ``detail``."""
    entry = AuditEntry(actor, action, target)
    try:
        yield entry
    except BaseException as error:
        AuditLog(store).record_entry(entry, error)
        raise
    AuditLog(store).record_entry(entry)
