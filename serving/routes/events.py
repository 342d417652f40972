"""Events posted by the storefront: impressions, clicks, carts and purchases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import Field

from serving.deps import ErasedDep, EventsAccess, EventStoreDep, PseudonymsDep
from serving.ingest import store_events
from serving.pseudonyms import with_pseudonyms
from serving.routes._responses import BODY_ERRORS, errors
from serving.schemas import MAX_EVENTS_PER_REQUEST, EventIn, EventsAccepted

__all__ = ["router"]

router = APIRouter(
    prefix="/v1",
    tags=["events"],
    dependencies=[EventsAccess],
    responses=errors(*BODY_ERRORS, 401, 403, 422),
)

EventBatch = Annotated[list[EventIn], Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)]


@router.post("/events", summary="Record events")
async def post_events(
    body: Annotated[EventIn | EventBatch, Body(description="One event or a list of events.")],
    store: EventStoreDep,
    erased: ErasedDep,
    pseudonyms: PseudonymsDep,
) -> EventsAccepted:
    """Store one event or a list (at most 1,000), idempotent on ``event_id``.

    Committed before the response: a 2xx means stored. A purchase or click changes the
    member's next recommendations at once (purchases are excluded, the model folds the new
    history in). Quote the ``recommendation_id`` of the list an item was shown in to attribute
    clicks and purchases in the CTR report. Events of an erased member are not stored
    (``erased`` counts them). With RECSYS_MEMBER_ID_KEY set, member ids are stored as their
    pseudonyms.
    """
    events = with_pseudonyms(body if isinstance(body, list) else [body], pseudonyms)
    return await store_events(store, events, erased)
