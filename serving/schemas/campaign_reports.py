"""Bodies of GET /v1/reports/campaigns and /v1/reports/campaigns/{id}: the campaigns in the
ledger, and one campaign's treatment against its holdout (``training.uplift``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "CampaignList",
    "CampaignSummary",
    "CampaignUplift",
    "Comparison",
    "Estimate",
    "GroupOutcome",
    "UpliftSlice",
]


class Estimate(BaseModel):
    """A figure with its 95% interval; each is null when the data cannot give it (no member in
    a group; for a ratio, no conversion in the holdout)."""

    value: float | None
    low: float | None
    high: float | None


class GroupOutcome(BaseModel):
    members: int
    converted: int = Field(description="Members who bought anything in their window.")
    conversion: Estimate = Field(description="converted / members, Wilson interval.")
    sent_item_converted: int = Field(
        description="Members who bought one of their sent (holdout: would-be) items."
    )
    sent_item_conversion: Estimate
    revenue: float | None = Field(description="Price x quantity bought; null without prices.")
    revenue_per_member: float | None
    offers: int = Field(description="Members of the group given an offer.")
    redeemed: int = Field(description="Of them, members who bought an item sent with it.")
    redemption: Estimate


class Comparison(BaseModel):
    metric: str = Field(description="conversion, sent_item_conversion or revenue_per_member.")
    absolute: Estimate = Field(description="Treatment minus holdout.")
    relative: Estimate = Field(description="Treatment over holdout, minus one.")


class UpliftSlice(BaseModel):
    key: str = Field(description="'all', or the segment or tier ('unknown': none known).")
    treatment: GroupOutcome
    holdout: GroupOutcome
    uplift: list[Comparison]


class CampaignUplift(BaseModel):
    campaign_id: str
    family: str
    window_days: float
    first_sent_at: float = Field(description="UTC epoch seconds of the first send.")
    last_sent_at: float
    confidence: float
    overall: UpliftSlice
    breakdowns: dict[str, list[UpliftSlice]] = Field(
        description="segment and tier -> one slice per value (from the model artifact's "
        "member profiles; empty without them)."
    )


class CampaignSummary(BaseModel):
    campaign_id: str
    family: str
    created_at: float = Field(description="UTC epoch seconds of its first send.")
    counts: dict[str, int] = Field(description="Sends per group (treatment, holdout).")


class CampaignList(BaseModel):
    campaigns: list[CampaignSummary]
