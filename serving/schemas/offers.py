"""The body of ``GET /v1/members/{member_id}/offers``: the offer the member's latest campaign
chose for them, read from the campaign ledger (the event store's ``recsys_campaign_sends``).

How offers are chosen is ``training.offers`` (docs/campaigns.md, "Offers"); the ledger keeps
which offer each send carried and why (the export's ``offer_reason``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from training.campaigns.ledger import CampaignGroup

__all__ = ["CampaignOffer", "MemberCampaign", "MemberOffers"]


class CampaignOffer(BaseModel):
    """An offer of the campaign's offers file, and why it was chosen for the member."""

    offer_id: str
    reason: str | None = Field(
        default=None,
        description="Why this offer: its expected incremental value, how many offers were "
        "worth it and which spent offers were passed over (null: a campaign recorded before "
        "reasons were).",
    )


class MemberCampaign(BaseModel):
    """The member's row of the campaign export, as the ledger recorded it."""

    campaign_id: str
    family: str = Field(description="Campaigns of a family share holdouts and frequency caps.")
    group: CampaignGroup = Field(description="holdout: the control group, sent nothing.")
    sent_at: datetime
    items: list[str] = Field(description="The items sent (holdout: the items they would get).")


class MemberOffers(BaseModel):
    """The latest campaign that included the member and the offer it gave them; ``offer`` is
    null, with a ``note`` saying why, when no campaign included them, when they were held out,
    or when the campaign gave them none."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": "M0002",
                    "campaign": {
                        "campaign_id": "winback-20260701-3f2a", "family": "winback",
                        "group": "treatment", "sent_at": "2026-07-01T06:00:00Z",
                        "items": ["I042", "I007"],
                    },
                    "offer": {
                        "offer_id": "TEN-OFF",
                        "reason": "chosen: best of 2 offer(s) worth giving",
                    },
                    "note": None,
                }
            ]
        }
    )  # fmt: skip

    member_id: str
    campaign: MemberCampaign | None = Field(description="Null: no campaign included them.")
    offer: CampaignOffer | None
    note: str | None = Field(description="Why there is no offer (null when there is one).")
