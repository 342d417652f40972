"""Bodies of the dashboard's read routes: the overview's figures, a member's profile and
history, member search, and the registry's versions.

The figures are the artifact's (``kpis.json`` and ``member_profiles.parquet``, written at
training time by ``training.member_kpis``); serving only reads them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = [
    "HistoryItem",
    "KeyFigures",
    "LiveEvent",
    "MemberHistory",
    "MemberMatch",
    "MemberProfile",
    "MemberSearch",
    "MonthFigures",
    "Overview",
    "RegistryResponse",
    "RegistryVersion",
    "SegmentTierCount",
]


class KeyFigures(BaseModel):
    members: int = Field(description="Members of the program (with or without events).")
    active_members: int = Field(description="Members with a purchase in the window.")
    orders: int = Field(description="Purchase orders in the window.")
    revenue: float = Field(description="Quantity x price of the window's purchases.")
    average_order_value: float | None = Field(description="Revenue per order in the window.")
    repurchase_rate: float | None = Field(
        description="Share of the window's buyers with two or more orders in it."
    )


class MonthFigures(BaseModel):
    month: str = Field(description="Calendar month (UTC), YYYY-MM.", examples=["2026-05"])
    revenue: float
    orders: int
    active_members: int = Field(description="Members with a purchase in the month.")
    average_order_value: float | None
    complete: bool = Field(description="False for a month the data covers only in part.")


class SegmentTierCount(BaseModel):
    segment: str | None
    tier: str | None = Field(description="The members file's declared tier (null: none).")
    members: int


class Overview(BaseModel):
    """The overview page: key figures as of the data's end, months, members by segment and tier."""

    variant: str
    version: str
    reference_time: datetime = Field(description="The data's end: the last event learned from.")
    data_start: datetime | None
    window_days: float = Field(description="The trailing window of the key figures.")
    definitions: dict[str, str] = Field(description="What each figure means, in words.")
    figures: KeyFigures
    months: list[MonthFigures]
    members_by_segment_tier: list[SegmentTierCount]
    segments: list[str] = Field(description="Lifecycle segments, most engaged first.")
    tiers: list[str] = Field(description="Tiers, lowest first.")


class MemberProfile(BaseModel):
    """A member as of the artifact's data end; ``known`` says whether the models index them
    (members of the members file without events are answered by their segment)."""

    member_id: str
    variant: str = Field(description="The A/B variant that serves this member.")
    known: bool = Field(description="The models learned from this member's events.")
    segment: str | None
    tier: str | None = Field(description="Declared in the members file (null: none).")
    value_tier: str | None = Field(description="Computed from spend quantiles at training.")
    orders: int | None = Field(description="Purchase orders up to the data's end.")
    spend: float | None = Field(description="Quantity x price of purchases up to the data's end.")
    last_purchase: datetime | None
    first_seen: datetime | None
    recency_days: float | None = Field(description="Days from the last activity to the data end.")


class HistoryItem(BaseModel):
    item_id: str
    title: str | None
    category: str | None
    weight: float = Field(description="The member's weighted interactions with the item.")
    purchased: bool


class LiveEvent(BaseModel):
    item_id: str
    title: str | None
    category: str | None
    event: str
    occurred_at: datetime


class MemberHistory(BaseModel):
    """What the artifact learned of a member (items by weight, strongest first) and the events
    posted to /v1/events that occurred after its data ended (newest first)."""

    member_id: str
    trained: list[HistoryItem]
    live: list[LiveEvent]
    live_since: datetime = Field(description="Events after this are not in the artifact.")


class MemberMatch(BaseModel):
    member_id: str
    segment: str | None
    tier: str | None


class MemberSearch(BaseModel):
    query: str
    members: list[MemberMatch] = Field(description="Matching ids, in id order.")
    total: int = Field(description="Members matching in all (the list is cut at limit).")


class RegistryVersion(BaseModel):
    version: str
    aliases: list[str]
    champion: bool
    created_at: datetime | None
    run_id: str | None
    chosen_model: str | None
    primary_metric: str | None
    primary_value: float | None
    decision: str | None = Field(description="The promotion decision recorded at registration.")
    reason: str | None


class RegistryResponse(BaseModel):
    """The registry's versions of each registered model the service's variants follow."""

    configured: bool = Field(description="Whether a tracking URI is set (else nothing to list).")
    registered_model: str | None
    versions: list[RegistryVersion]
    message: str | None = Field(description="Why there is nothing to list, when there is not.")
