"""``GET /v1/members/{member_id}/offers``: the offer the member's latest campaign chose for them.

Read from the campaign ledger in the event store (what ``recsys campaign export`` recorded), so
that every worker and replica answers the same; the model artifact only decides whether a member
without sends is known (200 with no offer) or unknown (404).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from serving.deps import EventStoreDep, ModelStoreDep, ReadAccess
from serving.errors import NotFoundError
from serving.routes._responses import errors
from serving.schemas import ExternalId
from serving.schemas.offers import CampaignOffer, MemberCampaign, MemberOffers
from training.campaigns.ledger import CampaignSend

__all__ = ["router"]

router = APIRouter(
    prefix="/v1",
    tags=["offers"],
    dependencies=[ReadAccess],
    responses=errors(401, 403, 422, 503),
)


@router.get(
    "/members/{member_id}/offers",
    summary="The member's offer in their latest campaign",
    responses=errors(404),
)
async def member_offers(
    member_id: Annotated[ExternalId, Path(description="The member's id.", examples=["M0001"])],
    models: ModelStoreDep,
    store: EventStoreDep,
) -> MemberOffers:
    """The latest campaign export that included the member (its id, family, group, send time
    and items) and the offer it chose for them. ``offer`` is null with a ``note`` when no
    campaign included the member, when they were in its holdout (control) group, or when it
    gave them none (the note says why, when the campaign recorded it). A member neither a
    campaign, the models nor the members file know is a 404."""
    sends = await asyncio.to_thread(store.sends, member_ids=[member_id])
    if not sends:
        snapshot = models.for_member(member_id)
        known = member_id in snapshot.artifact.member_ids or member_id in snapshot.carried_segments
        if not known:
            raise NotFoundError(
                f"unknown member {member_id!r}: no campaign, model or members file knows them"
            )
        note = "no campaign has included this member yet"
        return MemberOffers(member_id=member_id, campaign=None, offer=None, note=note)
    latest = sends[-1]  # oldest first
    return MemberOffers(
        member_id=member_id,
        campaign=_campaign(latest),
        offer=(
            CampaignOffer(offer_id=latest.offer_id, reason=latest.offer_reason)
            if latest.offer_id
            else None
        ),
        note=_note(latest),
    )


def _campaign(send: CampaignSend) -> MemberCampaign:
    return MemberCampaign(
        campaign_id=send.campaign_id,
        family=send.family,
        group=send.group,
        sent_at=datetime.fromtimestamp(send.sent_at, UTC),
        items=list(send.items),
    )


def _note(send: CampaignSend) -> str | None:
    if send.group == "holdout":
        return (
            f"held out of campaign {send.campaign_id!r} (its control group): sent nothing, "
            "so no offer"
        )
    if send.offer_id is None:
        why = f" ({send.offer_reason})" if send.offer_reason else ""
        return f"campaign {send.campaign_id!r} gave this member no offer{why}"
    return None
