"""Bodies of POST /v1/events: what a storefront reports, and what was stored."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from features import columns as col
from serving.schemas.base import ExternalId, Strict

__all__ = ["EventIn", "EventType", "EventsAccepted"]


class EventType(StrEnum):
    """What a member did. ``impression``: an item was shown (clients may report what was
    really displayed); the others are interactions, weakest first."""

    IMPRESSION = "impression"
    VIEW = col.VIEW
    CLICK = col.CLICK
    CART = col.CART
    PURCHASE = col.PURCHASE


class EventIn(Strict):
    """One event, as a storefront posts it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "7f7c3a52-click-1",
                    "event": "click",
                    "member_id": "M000001",
                    "item_id": "I00042",
                    "recommendation_id": "3b9d6c2e8f1a4b7c9d0e1f2a3b4c5d6e",
                    "timestamp": "2026-07-01T12:00:00Z",
                }
            ]
        },
    )

    event_id: ExternalId | None = Field(
        default=None,
        description="Your unique id of this event: a repeat is stored once (safe retries). "
        "Without one, the server assigns one and a retry is stored twice.",
    )
    event: EventType
    member_id: ExternalId
    item_id: ExternalId
    recommendation_id: ExternalId | None = Field(
        default=None,
        description="The recommendation_id of the list the item was shown in: attributes "
        "clicks and purchases to the model and variant that served it.",
    )
    timestamp: datetime | None = Field(
        default=None,
        description="When it happened (ISO-8601, naive = UTC; default: when it is received). "
        "Only events that happened after the loaded model's data ends (its data_end) shape "
        "the member's answers: earlier ones are what the model learned from, or came too late "
        "for it.",
    )


class EventsAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"received": 3, "stored": 2, "duplicates": 1, "erased": 0}]}
    )

    received: int = Field(description="Events in the request.")
    stored: int = Field(description="Events committed now.")
    duplicates: int = Field(description="Events whose event_id was already stored.")
    erased: int = Field(default=0, description="Events of erased members, not stored.")
