"""Storing posted events: ids, times, idempotency, and the answer the client gets.

An event is committed before the response is sent (the transaction commits in a worker
thread while the event loop serves other requests), so a 2xx means the event is stored and
will survive a crash of the server. A repeated ``event_id`` (a client retry, within one
request or across requests) is stored once. Events of an erased member
(:mod:`serving.erasure`) are acknowledged and counted, never stored.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from serving import metrics
from serving.erasure import ErasedMembers
from serving.event_store import EventStore
from serving.reports import epoch
from serving.schemas import EventIn, EventsAccepted

__all__ = ["store_events"]


def _rows(events: Sequence[EventIn], received_at: float) -> list[dict[str, Any]]:
    """One row per distinct event id (the first of repeats), server ids for events without."""
    rows: dict[str, dict[str, Any]] = {}
    for posted in events:
        event_id = posted.event_id or f"srv-{uuid.uuid4().hex}"
        rows.setdefault(
            event_id,
            {
                "event_id": event_id,
                "event": posted.event.value,
                "member_id": posted.member_id,
                "item_id": posted.item_id,
                "recommendation_id": posted.recommendation_id,
                "occurred_at": epoch(posted.timestamp) or received_at,
                "received_at": received_at,
            },
        )
    return list(rows.values())


async def store_events(
    store: EventStore, events: Sequence[EventIn], erased: ErasedMembers
) -> EventsAccepted:
    """Commit ``events`` (those of members not erased) and say how many were new."""
    rows = _rows(events, time.time())
    dropped_ids = {row["event_id"] for row in rows if row["member_id"] in erased}
    kept = [row for row in rows if row["event_id"] not in dropped_ids]
    stored = await asyncio.to_thread(store.add_events, kept) if kept else set()
    for row in rows:
        if row["event_id"] in dropped_ids:
            outcome = "erased"
        else:
            outcome = "stored" if row["event_id"] in stored else "duplicate"
        metrics.EVENTS.labels(row["event"], outcome).inc()
    dropped = len(dropped_ids)
    return EventsAccepted(
        received=len(events),
        stored=len(stored),
        duplicates=len(events) - len(stored) - dropped,
        erased=dropped,
    )
