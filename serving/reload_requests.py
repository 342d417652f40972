"""A reload asked of one worker reaches every worker.

``POST /v1/admin/reload`` is answered by whichever worker the connection lands on, and each
worker holds its own snapshots: without more, the others kept serving the old version until
their next poll (or forever, with polling off), so that two workers answered with two
versions. The worker that takes the request records it in the event store, which every worker
(and every replica behind the same load balancer) already shares; each worker checks for new
requests every ``RECSYS_RELOAD_FOLLOW_SECONDS`` (one indexed read) and reloads as the first
one did. A worker skips the requests it recorded itself: it reloaded when it took them.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from features.errors import RecsysError
from serving.event_store import EventStore
from serving.model_store import ModelStore

__all__ = ["ReloadRequests"]

logger = logging.getLogger(__name__)


class ReloadRequests:
    """Records this worker's manual reloads and follows everyone else's."""

    def __init__(self, store: EventStore, models: ModelStore) -> None:
        self._store = store
        self._models = models
        self._seen = 0
        self._own: set[int] = set()

    async def start(self) -> None:
        """Requests made before this worker started are already in what it loads."""
        self._seen = await asyncio.to_thread(self._store.last_reload_request)

    async def announce(self, variant: str | None) -> None:
        """Record a reload this worker was asked for, so that the others follow. A store
        that cannot be written only delays them until their next poll: logged, not raised."""
        try:
            number = await asyncio.to_thread(self._store.request_reload, variant)
        except SQLAlchemyError as error:
            logger.warning(
                "reload not recorded in the event store (%s): other workers follow at their "
                "next poll",
                error,
            )
            return
        self._own.add(number)

    async def follow_once(self) -> None:
        """Reload for every request recorded by another worker since the last look."""
        requests = await asyncio.to_thread(self._store.reload_requests_after, self._seen)
        for number, variant in requests:
            self._seen = number
            if number in self._own:
                self._own.discard(number)
                continue
            if variant is not None and variant not in self._models.configs:
                continue  # a variant of another deployment sharing the store
            try:
                await self._models.reload([variant] if variant is not None else None)
            except RecsysError as error:  # refusals are logged and counted where they happen
                logger.debug("followed reload %d: %s", number, error)
