"""The body of ``GET /v1/members/{member_id}/profile``: a member's scores, tags and tier progress.

The figures are the artifact's (``member_profiles.parquet`` and ``tier_rules.json``, written at
training time by ``training.member_profiles``), as of its data end; ``last_purchase``, ``orders``
and ``recency_days`` also follow the events posted since (``live_fields``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from features.tier_rules import TierRules

__all__ = ["AttributeSegments", "MemberProfile", "PreferenceTag"]


class PreferenceTag(BaseModel):
    kind: Literal["category", "brand"]
    name: str
    affinity: float = Field(
        description="The member's share of purchase lines in it over the store's share (> 1: "
        "more than the store)."
    )


class AttributeSegments(BaseModel):
    """From the members file; null where it lacks what a segment needs."""

    region: str | None
    age_band: str | None = Field(description="under-18, 18-24, ..., 55-64, 65+.")
    join_cohort: str | None = Field(description="Quarter of joined_at.", examples=["2024-Q3"])


class MemberProfile(BaseModel):
    """A member as of the artifact's data end, with the live events since folded into
    ``live_fields``; ``known`` says whether the models index them (members of the members file
    without events are answered by their segment). Null: not in the artifact (churn and value
    without member scores, tags and tier progress in an artifact older than them)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": "M0002", "variant": "default", "known": True,
                    "segment": "active", "tier": "platinum", "value_tier": "gold",
                    "orders": 9, "spend": 243.88, "last_purchase": "2026-07-02T10:00:00Z",
                    "first_seen": "2024-07-01T05:15:01Z", "recency_days": 0.0,
                    "r_score": 3, "f_score": 5, "m_score": 5, "rfm_score": "355",
                    "churn_risk": 0.21, "churn_band": "low", "expected_purchases": 1.4,
                    "expected_spend": 38.2,
                    "preference_tags": [
                        {"kind": "category", "name": "Men's Clothing", "affinity": 16.86}
                    ],
                    "behaviour_tags": ["bundle-buyer"], "purchase_cycle_days": 44.5,
                    "tier_spend": 155.93, "earned_tier": "gold", "next_tier": "platinum",
                    "spend_to_next_tier": 94.07,
                    "tier_rules": {"window_days": 365.0, "tiers": [
                        {"name": "bronze", "min_spend": 0.0},
                        {"name": "silver", "min_spend": 25.0},
                        {"name": "gold", "min_spend": 100.0},
                        {"name": "platinum", "min_spend": 250.0}]},
                    "attributes": {"region": "Mid-Atlantic", "age_band": None,
                                   "join_cohort": "2024-Q3"},
                    "as_of": "2026-07-02T10:00:00Z", "scores_as_of": "2026-07-01T00:00:00Z",
                    "live_since": "2026-06-30T23:06:48Z", "live_events": 3,
                    "live_fields": ["last_purchase", "orders", "recency_days"],
                }
            ]
        }
    )  # fmt: skip

    member_id: str
    variant: str = Field(description="The A/B variant that serves this member.")
    known: bool = Field(description="The models learned from this member's events.")
    segment: str | None = Field(description="Lifecycle segment at the data's end.")
    tier: str | None = Field(description="Declared in the members file (null: none).")
    value_tier: str | None = Field(description="Computed from spend quantiles at training.")
    orders: int | None = Field(description="Purchase orders, live ones included.")
    spend: float | None = Field(description="Quantity x price of purchases to the data's end.")
    last_purchase: datetime | None = Field(description="Live purchases included.")
    first_seen: datetime | None
    recency_days: float | None = Field(description="Days from the last activity to as_of.")
    r_score: int | None = Field(description="RFM quintile scores 1-5 (5: best).")
    f_score: int | None
    m_score: int | None
    rfm_score: str | None = Field(examples=["355"])
    churn_risk: float | None = Field(
        description="Probability of no purchase in the scoring horizon (as of scores_as_of)."
    )
    churn_band: str | None = Field(description="low, medium, high, or uninformative.")
    expected_purchases: float | None = Field(description="Over the scoring horizon.")
    expected_spend: float | None = Field(description="Over the scoring horizon.")
    preference_tags: list[PreferenceTag] | None = Field(
        description="Top categories, then brands, by affinity (docs/members.md)."
    )
    behaviour_tags: list[str] | None = Field(
        description="weekend-shopper, bundle-buyer, high-price-buyer, new-arrival-buyer, "
        "deal-seeker: each defined in docs/members.md."
    )
    purchase_cycle_days: float | None = Field(
        description="Median days between orders (null with fewer than two)."
    )
    tier_spend: float | None = Field(description="Spend in the tier rules' trailing window.")
    earned_tier: str | None = Field(description="The tier the rules give that spend.")
    next_tier: str | None = Field(description="The next tier up (null: at the top).")
    spend_to_next_tier: float | None = Field(description="Spend more by this to reach it.")
    tier_rules: TierRules | None = Field(description="The ladder the artifact was built with.")
    attributes: AttributeSegments
    as_of: datetime = Field(
        description="What live_fields describe: the member's latest live event, else the "
        "data's end."
    )
    scores_as_of: datetime | None = Field(
        description="When churn risk and expected value were scored (they do not follow "
        "live events)."
    )
    live_since: datetime = Field(description="The data's end: events after it are live.")
    live_events: int = Field(description="Interaction events of the member since live_since.")
    live_fields: list[str] = Field(description="The fields that follow live events.")
