"""Following what other workers record in the shared event store.

Each worker of each replica holds its own state (loaded snapshots, the set of erased members);
what one worker is asked to change it records in the event store, and every other worker looks
for new records every ``RECSYS_RELOAD_FOLLOW_SECONDS``. This is that loop, once for all of
them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

__all__ = ["follow_forever"]

logger = logging.getLogger(__name__)


async def follow_forever(look: Callable[[], Awaitable[None]], interval: float, what: str) -> None:
    """``await look()`` every ``interval`` seconds until cancelled. A store that cannot be
    read is logged once per outage, not once per look; any other failure is logged and the
    loop goes on: a follower must outlive any one failure."""
    failing = False
    while True:
        await asyncio.sleep(interval)
        try:
            await look()
        except SQLAlchemyError as error:
            if not failing:
                logger.warning("cannot read %s (%s); trying again", what, error)
            failing = True
            continue
        except Exception:
            logger.exception("following %s failed; trying again", what)
        failing = False
