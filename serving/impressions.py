"""Served lists are recorded without making any response wait for the database.

A response appends its record to an in-memory list (no I/O, no lock: one event loop per
worker); a background task writes the list in one transaction every
``impression_flush_seconds``, sooner when ``impression_batch`` records wait, and once more on
shutdown. What is lost: records still in memory when a worker is killed (``kill -9``,
out-of-memory), at most one flush interval's worth. When the store is unreachable the records
stay queued, up to ``impression_buffer_max``; beyond it the oldest are dropped and counted
(``recsys_impressions_dropped_total``). A record of a member erased meanwhile is written
without the member (:mod:`serving.erasure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from serving import metrics
from serving.erasure import ErasedMembers
from serving.event_store import EventStore

__all__ = ["ImpressionBuffer"]

logger = logging.getLogger(__name__)


class ImpressionBuffer:
    """Queue of served-list records and the task that flushes it."""

    def __init__(
        self,
        store: EventStore,
        *,
        flush_seconds: float,
        batch: int,
        max_pending: int,
        erased: ErasedMembers | None = None,
    ) -> None:
        self._store = store
        self._erased = erased
        self._flush_seconds = flush_seconds
        self._batch = batch
        self._max_pending = max_pending
        self._pending: list[Mapping[str, Any]] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._stopping = False

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, record: Mapping[str, Any]) -> None:
        """Queue one served list (never blocks)."""
        self._pending.append(record)
        if len(self._pending) >= self._batch:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued; on failure it stays queued (bounded) for the next try."""
        async with self._flushing:
            taken, self._pending = self._pending, []
            if not taken:
                return
            if self._erased is not None and len(self._erased):
                taken = [self._erased.unlinked(record) for record in taken]
            try:
                await asyncio.to_thread(self._store.add_served, taken)
            except Exception:
                logger.exception("could not record %d served lists; will retry", len(taken))
                self._requeue(taken)

    def _requeue(self, taken: list[Mapping[str, Any]]) -> None:
        merged = taken + self._pending
        overflow = len(merged) - self._max_pending
        if overflow > 0:
            metrics.IMPRESSIONS_DROPPED.inc(overflow)
            merged = merged[overflow:]
        self._pending = merged

    async def run(self) -> None:
        """Flush every interval, or as soon as a batch is full, until :meth:`stop`."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_seconds)
            self._wake.clear()
            await self.flush()

    def stop(self) -> None:
        """Make :meth:`run` return after one last flush (shutdown: nothing is cut short)."""
        self._stopping = True
        self._wake.set()
