"""Bodies of the dashboard's read routes: the overview's figures, a member's history, member
search, and the registry's versions (a member's profile: :mod:`serving.schemas.profiles`).

The figures are the artifact's (``kpis.json`` and ``member_profiles.parquet``, written at
training time by ``training.member_kpis``); serving only reads them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = [
    "BandCount",
    "ChurnDistribution",
    "CohortCurve",
    "CohortRetention",
    "FrequencyBin",
    "HistoryItem",
    "KeyFigures",
    "LiveEvent",
    "MemberHistory",
    "MemberMatch",
    "MemberSearch",
    "MonthFigures",
    "Overview",
    "RegistryResponse",
    "RegistryVersion",
    "RfmCell",
    "RfmGrid",
    "RiskBin",
    "SegmentSize",
    "SegmentTierCount",
    "SegmentValue",
    "ValueBySegment",
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
    repurchase_rate: float | None = Field(
        None, description="Share of the month's buyers with two or more orders in it."
    )
    complete: bool = Field(description="False for a month the data covers only in part.")


class SegmentTierCount(BaseModel):
    segment: str | None
    tier: str | None = Field(description="The members file's declared tier (null: none).")
    members: int


class SegmentSize(BaseModel):
    segment: str
    members: int
    member_share: float | None
    revenue: float = Field(description="Spend of the segment's members up to the data's end.")
    revenue_share: float | None = Field(description="Of all revenue up to the data's end.")


class RfmCell(BaseModel):
    r_score: int
    f_score: int
    members: int
    mean_monetary: float | None = Field(description="Mean spend of the cell (null: empty).")


class RfmGrid(BaseModel):
    r_scores: list[int]
    f_scores: list[int]
    cells: list[RfmCell] = Field(description="Every R x F cell, empty ones included.")


class FrequencyBin(BaseModel):
    label: str = Field(examples=["5-9"])
    min_orders: int
    max_orders: int | None = Field(description="Null: no upper bound.")
    members: int


class CohortCurve(BaseModel):
    cohort: str = Field(description="Join month, YYYY-MM.", examples=["2026-01"])
    members: int
    retention: list[float | None] = Field(
        description="Share with a purchase k = 1, 2, ... months after joining (null: a month "
        "the data does not hold whole)."
    )


class CohortRetention(BaseModel):
    months_after: list[int]
    cohorts: list[CohortCurve] = Field(description="The latest cohorts, oldest first.")
    cohorts_with_data: int = Field(description="Cohorts with an observed month (shown or not).")
    members_by_joined_at: int
    members_by_first_purchase: int
    members_without_cohort: int


class RiskBin(BaseModel):
    lower: float
    upper: float
    members: int


class BandCount(BaseModel):
    band: str
    members: int


class ChurnDistribution(BaseModel):
    available: bool = Field(description="False: the members were not scored.")
    informative: bool | None = Field(
        description="False: the churn model beat neither a constant nor recency; every "
        "scored member has the base rate and no histogram is given."
    )
    note: str | None = Field(description="Why there is no histogram, when there is none.")
    horizon_days: float | None
    scored_members: int
    mean_risk: float | None
    histogram: list[RiskBin] = Field(description="Members per tenth of churn risk.")
    bands: list[BandCount]


class SegmentValue(BaseModel):
    segment: str
    members: int
    expected_purchases_sum: float | None
    expected_purchases_mean: float | None
    expected_spend_sum: float | None = Field(description="Null: the data has no prices.")
    expected_spend_mean: float | None


class ValueBySegment(BaseModel):
    available: bool = Field(description="False: the members were not scored.")
    spend_available: bool
    note: str | None
    horizon_days: float | None
    rows: list[SegmentValue]


class Overview(BaseModel):
    """The overview page: key figures as of the data's end, months, members by segment and
    tier, and the member report's distributions (null in an artifact older than them)."""

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
    segment_sizes: list[SegmentSize] | None = None
    rfm_grid: RfmGrid | None = None
    purchase_frequency: list[FrequencyBin] | None = Field(
        None, description="Members by orders up to the data's end."
    )
    cohorts: CohortRetention | None = None
    churn: ChurnDistribution | None = None
    value_by_segment: ValueBySegment | None = None


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
