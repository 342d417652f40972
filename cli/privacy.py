"""What the commands do for member-data protection: the erasures a training honours, and the
audit entries of commands that change what is served.

Both live in the event store the servers share (:mod:`serving.erasure`, :mod:`serving.audit`),
named by ``--events-url`` or ``RECSYS_EVENTS_URL`` as for every command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl

from cli.export import event_store_session
from features import columns as col
from serving.audit import AuditEntry, audited, cli_actor
from serving.erasure import erased_member_ids
from serving.event_store import EventStore

__all__ = ["Erasures", "audited_command"]


class Erasures:
    """The erased members a training drops from each input, and how many rows that removed."""

    def __init__(self, member_ids: frozenset[str]) -> None:
        self._member_ids = member_ids
        self._dropped: dict[str, int] = {}

    @classmethod
    def of_store(cls, events_url: str | None) -> Erasures:
        """The erasures recorded in the event store at ``events_url`` (default: serving's;
        none when that one does not exist, since nobody can have been erased there)."""
        with event_store_session(events_url) as store:
            return cls(erased_member_ids(store) if store is not None else frozenset())

    def drop(self, name: str, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` without the erased members' rows (input ``name``, for the record)."""
        if not self._member_ids or col.MEMBER_ID not in frame.columns:
            return frame
        kept = frame.filter(~pl.col(col.MEMBER_ID).is_in(list(self._member_ids)))
        self._dropped[name] = frame.height - kept.height
        return kept

    def record(self) -> dict[str, Any]:
        """What metrics.json says: how many members are erased, and the rows dropped per input."""
        return {"erased_members": len(self._member_ids), "rows_dropped": dict(self._dropped)}


@contextmanager
def audited_command(
    events_url: str | None, action: str, target: str | None = None
) -> Iterator[tuple[EventStore, AuditEntry]]:
    """The event store at ``events_url`` (created when missing: the record must be kept) and
    an audit entry of the block as ``action`` by this command's user: ok, or refused or failed
    with the error, which is then raised."""
    with event_store_session(events_url, create=True) as store:
        assert store is not None  # create=True always opens one
        with audited(store, cli_actor(), action, target) as entry:
            yield store, entry
