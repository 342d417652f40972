"""Erasing a member on request: their data leaves the store, the answers, the exports and the
next training.

:func:`forget_members` (``recsys members forget``, ``DELETE /v1/members/{id}``) does, in one
transaction per call:

* deletes the member's events (``recsys_events``) and campaign sends (``recsys_campaign_sends``:
  the member leaves both the treated and the held-out counts of every campaign report, so that
  uplift stays an unbiased comparison of those left);
* unlinks the lists served to them (``recsys_served.member_id`` set to null): the impressions
  stay counted in the CTR report, with no one behind them;
* records the erasure in ``recsys_erasures`` (who asked, when, what was deleted).

The loaded model artifact still holds what it learnt of the member until the next training, so
every worker keeps the set of erased members (:class:`ErasedMembers`, followed from the store
like reload requests) and answers an erased member as one it never knew; exports leave them
out; events posted for them afterwards are not stored; and ``recsys train`` drops their rows
from its input (:func:`erased_member_ids`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from serving.event_store import CAMPAIGN_SENDS, ERASURES, EVENTS, SERVED, EventStore

__all__ = ["ErasedMembers", "Erasure", "erased_member_ids", "forget_members"]

#: Members per statement: under SQLite's oldest limit of bound parameters (999).
_CHUNK = 900


@dataclass(frozen=True)
class Erasure:
    """What erasing one member deleted."""

    member_id: str
    events_deleted: int
    sends_deleted: int
    served_unlinked: int
    #: False when the member had been erased before (what was posted since is deleted now).
    first: bool


def forget_members(store: EventStore, member_ids: Sequence[str], actor: str) -> list[Erasure]:
    """Erase ``member_ids`` (each once, in the order given) in one committed transaction."""
    members = list(dict.fromkeys(member_ids))
    erasures: list[Erasure] = []
    now = time.time()
    with store.engine.begin() as connection:
        for start in range(0, len(members), _CHUNK):
            chunk = members[start : start + _CHUNK]
            before = dict(
                connection.execute(
                    select(ERASURES.c.member_id, ERASURES.c.id).where(
                        ERASURES.c.member_id.in_(chunk)
                    )
                ).all()
            )
            for member_id in chunk:
                erasure = Erasure(
                    member_id,
                    _count(
                        connection.execute(delete(EVENTS).where(EVENTS.c.member_id == member_id))
                    ),
                    _count(
                        connection.execute(
                            delete(CAMPAIGN_SENDS).where(CAMPAIGN_SENDS.c.member_id == member_id)
                        )
                    ),
                    _count(
                        connection.execute(
                            update(SERVED)
                            .where(SERVED.c.member_id == member_id)
                            .values(member_id=None)
                        )
                    ),
                    first=member_id not in before,
                )
                counts = {
                    "events_deleted": erasure.events_deleted,
                    "sends_deleted": erasure.sends_deleted,
                    "served_unlinked": erasure.served_unlinked,
                }
                if erasure.first:
                    connection.execute(
                        ERASURES.insert().values(
                            member_id=member_id, erased_at=now, actor=actor, **counts
                        )
                    )
                else:  # a repeat adds what was posted since to the first erasure's counts
                    connection.execute(
                        update(ERASURES)
                        .where(ERASURES.c.member_id == member_id)
                        .values({name: getattr(ERASURES.c, name) + value
                                 for name, value in counts.items()})
                    )  # fmt: skip
                erasures.append(erasure)
    return erasures


def _count(result: object) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def _unlink_served(store: EventStore, member_ids: Sequence[str]) -> None:
    with store.engine.begin() as connection:
        for start in range(0, len(member_ids), _CHUNK):
            chunk = list(member_ids[start : start + _CHUNK])
            connection.execute(
                update(SERVED).where(SERVED.c.member_id.in_(chunk)).values(member_id=None)
            )


def erased_member_ids(store: EventStore) -> frozenset[str]:
    """Every erased member's id: what an export leaves out and a training drops."""
    with store.engine.connect() as connection:
        return frozenset(connection.execute(select(ERASURES.c.member_id)).scalars())


class ErasedMembers:
    """This worker's set of erased members, kept up to date from the store.

    The worker that takes an erasure adds it at once (:meth:`add`); the others (and other
    replicas on the same store) see it within ``RECSYS_RELOAD_FOLLOW_SECONDS``, with one
    indexed read per look, as they follow reload requests. Looking a member up is a set
    membership: nothing on the storefront's path touches the database for it.
    """

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._members: set[str] = set()
        self._seen = 0

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._members

    def __len__(self) -> int:
        return len(self._members)

    async def start(self) -> None:
        """Every erasure recorded before this worker started (one read: the ids and the
        number to follow from)."""
        found = await asyncio.to_thread(self._store.erasures_after, 0)
        self._members = {member_id for _, member_id in found}
        self._seen = found[-1][0] if found else 0

    def ids(self) -> list[str]:
        """The erased members' ids (a copy)."""
        return list(self._members)

    def add(self, member_ids: Iterable[str]) -> None:
        """Erasures this worker just made (the store has them; the next look finds them too)."""
        self._members.update(member_ids)

    async def follow_once(self) -> None:
        """Take in the erasures recorded since the last look, and unlink the lists this worker
        served them before it knew (flushed after the erasure unlinked the rest)."""
        found = await asyncio.to_thread(self._store.erasures_after, self._seen)
        if not found:
            return
        new = [member_id for _, member_id in found]
        self._members.update(new)
        self._seen = found[-1][0]
        await asyncio.to_thread(_unlink_served, self._store, new)

    def unlinked(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """A served-list record as the impressions log may keep it: without the member when
        they are erased."""
        if record.get("member_id") in self._members:
            return {**record, "member_id": None}
        return record
