"""The query and body of ``GET /v1/members/{member_id}/buy-again``: a member's past items by how
due each is (``training.buy_again``; definitions in docs/buy-again.md)."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from serving.schemas.base import MAX_N, RecommendedItem, Served, Strict

__all__ = ["BuyAgainItem", "BuyAgainQuery", "BuyAgainResponse"]


class BuyAgainQuery(Strict):
    """Query parameters of GET /v1/members/{member_id}/buy-again."""

    model_config = ConfigDict(extra="ignore")

    n: int = Field(default=10, ge=1, le=MAX_N, description="How many items, at most.")
    as_of: datetime | None = Field(
        default=None,
        description="When due-ness is judged (ISO-8601, naive = UTC; not before the data's "
        "end). Default: the member's latest live event, else the data's end.",
        examples=["2026-07-15T09:00:00Z"],
    )


class BuyAgainItem(RecommendedItem):
    """A past item of the member (``score``: how due it is, 1 at most)."""

    due_date: datetime = Field(description="The last purchase plus the cycle.")
    due_in_days: float = Field(description="From as_of to the due date (negative: overdue).")
    last_purchase: datetime = Field(description="Live purchases included.")
    occasions: int = Field(description="Orders holding the item (one per UTC day live).")
    cycle_days: float = Field(
        description="The member's median days between purchases of it, shrunk towards the "
        "item's (the item's when bought once)."
    )
    reason: str = Field(
        examples=["bought 6 times, about every 14 days; last bought 16 days ago, due 2 days ago"]
    )


class BuyAgainResponse(Served):
    """The member's past items, most due first. ``fallback`` is always false: nothing stands in
    for a member's own purchases."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recommendation_id": "0187a2b3c4d5e6f70011223344556677",
                    "member_id": "M0002", "variant": "default", "model": "buy-again",
                    "model_version": "7", "fallback": False, "known": True,
                    "as_of": "2026-06-30T23:06:48Z", "live_since": "2026-06-30T23:06:48Z",
                    "live_purchases": 0, "note": None,
                    "items": [{
                        "item_id": "I042", "score": 0.88, "title": "Oat Crunch",
                        "category": "Snacks", "due_date": "2026-06-28T10:00:00Z",
                        "due_in_days": -2.5, "last_purchase": "2026-06-14T10:00:00Z",
                        "occasions": 6, "cycle_days": 14.0,
                        "reason": "bought 6 times, about every 14 days; last bought 17 days "
                                  "ago, due 3 days ago",
                    }],
                }
            ]
        }
    )  # fmt: skip

    member_id: str
    known: bool = Field(description="The models learned from this member's events.")
    as_of: datetime = Field(description="When due-ness was judged.")
    live_since: datetime = Field(description="The data's end: purchases after it are live.")
    live_purchases: int = Field(description="The member's live purchases folded in.")
    note: str | None = Field(description="Why the list is empty (null when it is not).")
    items: list[BuyAgainItem]  # type: ignore[assignment]
