"""One member's buy-again list as served: the snapshot's :class:`~training.buy_again.BuyAgainTable`
answering for the member, with their live events, as an item list and the fields around it.

The ranking, the live fold and the reasons are ``training.buy_again``'s, the same code the
campaign export runs; this module turns one member's row into the response's fields, and
:meth:`serving.recommending.RecommendationService.buy_again` serves it like every list (a
recommendation id, the impressions log).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from features import columns as col
from serving.errors import InvalidParameterError, NotFoundError
from serving.snapshots import ModelSnapshot
from training.buy_again import DueLists
from training.live import LiveEvent
from training.recommend import ItemList

__all__ = ["BUY_AGAIN_MODEL", "BuyAgainAnswer", "buy_again_answer"]

#: The model name a buy-again list is served (and counted in the CTR report) under.
BUY_AGAIN_MODEL: Final = "buy-again"


@dataclass(frozen=True)
class BuyAgainAnswer:
    """The list to serve, each item's own fields (in the list's order), the response's other
    fields, and the member's index in the artifact (None: unknown to it)."""

    listed: ItemList
    item_fields: list[dict[str, Any]]
    fields: dict[str, Any]
    member_index: int | None


def buy_again_answer(
    snapshot: ModelSnapshot,
    member_id: str,
    events: Sequence[LiveEvent],
    *,
    n: int,
    as_of: datetime | None = None,
    erased: bool = False,
) -> BuyAgainAnswer:
    """The member's ``n`` most due past items, their live ``events`` folded in, judged at
    ``as_of`` (default: their latest live event, else the data's end). An artifact without
    purchase cycles is a 404 that says to retrain; an ``as_of`` before the data's end a 422;
    a member known nowhere a 404 (as their profile is). A member the artifact does not know
    but the members file or their live events do gets a list, empty or of their live
    purchases: events arrive before the next training run. An ``erased`` member is answered as
    one known nowhere, whatever the artifact still holds of them."""
    table = snapshot.buy_again
    if table is None:
        raise NotFoundError(
            "the model artifact has no purchase cycles (trained before buy-again lists); "
            "retrain it with recsys train"
        )
    moment = _epoch(as_of) if as_of is not None else None
    if moment is not None and moment < table.since:
        raise InvalidParameterError(
            f"as_of: {as_of.isoformat()} is before the data's end "  # type: ignore[union-attr]
            f"({_utc(table.since).isoformat()}); due dates are judged from then on"
        )
    index = None if erased else snapshot.artifact.member_ids.get(member_id)
    carried = not erased and member_id in snapshot.carried_segments
    if index is None and not carried and not _active(events):
        raise NotFoundError(
            f"unknown member {member_id!r}: neither the models, the members file nor the "
            "events posted since know them"
        )
    found = table.answer([-1 if index is None else index], n, [events], moment)
    count = int(found.counts()[0])
    items = found.items[0, :count].tolist()
    return BuyAgainAnswer(
        listed=ItemList(
            item_ids=snapshot.artifact.item_ids.external_ids[items].tolist(),
            scores=found.scores[0, :count].tolist(),
            model=BUY_AGAIN_MODEL,
            fallback=False,
            item_indices=items,
        ),
        item_fields=_item_fields(found, count),
        fields={
            "known": index is not None,
            "as_of": _utc(float(found.as_of[0])),
            "live_since": _utc(table.since),
            "live_purchases": int(found.live_purchases[0]),
            "note": None if count else _empty_note(int(found.past_items[0])),
        },
        member_index=index,
    )


def _item_fields(found: DueLists, count: int) -> list[dict[str, Any]]:
    due_in = found.due_in_days()[0]
    [reasons] = found.reasons()
    return [
        {
            "due_date": _utc(float(found.due[0, k])),
            "due_in_days": float(due_in[k]),
            "last_purchase": _utc(float(found.last[0, k])),
            "occasions": int(found.occasions[0, k]),
            "cycle_days": float(found.cycle_days[0, k]),
            "reason": reasons[k],
        }
        for k in range(count)
    ]


def _active(events: Sequence[LiveEvent]) -> bool:
    """Whether any of the events is the member's own doing (impressions are not)."""
    return any(event.event in col.EVENTS for event in events)


def _empty_note(past_items: int) -> str:
    """Why a member has nothing to buy again."""
    if not past_items:
        return "the member bought nothing, in the model artifact's data or since"
    return (
        "none of the member's past items can be due again: nobody ever bought them twice "
        "(no purchase cycle), or they are no longer available"
    )


def _epoch(moment: datetime) -> float:
    """A request's datetime (naive = UTC) as epoch seconds."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.timestamp()


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)
