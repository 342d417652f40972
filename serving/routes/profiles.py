"""``GET /v1/members/{member_id}/profile``: a member's scores, tags, tier progress and segments.

Read from the model artifact (``member_profiles.parquet``, ``tier_rules.json``: nothing is
computed anew) with the member's live events folded in (:mod:`serving.profiles`). Like every
read route it needs a ``read`` key when RECSYS_REQUIRE_READ_KEY is set.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path

from features import columns as col
from features import member_attributes as attributes
from features import member_tags as tags
from features import members as rfm
from serving.deps import ErasedDep, EventStoreDep, ModelStoreDep, ReadAccess
from serving.errors import NotFoundError
from serving.profiles import LIVE_FIELDS, as_utc, fold_live, live_activity
from serving.routes._responses import errors
from serving.schemas import ExternalId
from serving.schemas.profiles import AttributeSegments, MemberProfile
from training import member_profiles as profile

__all__ = ["router"]

router = APIRouter(
    prefix="/v1",
    tags=["dashboard"],
    dependencies=[ReadAccess],
    responses=errors(401, 403, 422, 503),
)

#: Response fields read from the profile row as they are (same names as its columns).
_AS_STORED = (
    rfm.SEGMENT, col.TIER, rfm.VALUE_TIER, rfm.R_SCORE, rfm.F_SCORE, rfm.M_SCORE, rfm.RFM_SCORE,
    profile.CHURN_RISK, profile.CHURN_BAND, profile.EXPECTED_PURCHASES, profile.EXPECTED_SPEND,
    tags.PREFERENCE_TAGS, tags.BEHAVIOUR_TAGS, tags.PURCHASE_CYCLE_DAYS, profile.TIER_SPEND,
    profile.EARNED_TIER, profile.NEXT_TIER, profile.SPEND_TO_NEXT_TIER,
)  # fmt: skip


@router.get("/members/{member_id}/profile", summary="A member's profile", responses=errors(404))
async def member_profile(
    member_id: Annotated[ExternalId, Path(description="The member's id.", examples=["M001"])],
    models: ModelStoreDep,
    store: EventStoreDep,
    erased: ErasedDep,
) -> MemberProfile:
    """RFM scores, segment, declared and earned tier, churn risk and expected value, preference
    and behaviour tags, purchase cycle, "spend X more to reach tier Y", and attribute segments,
    as of the data's end; last purchase, orders and recency follow the events posted since
    (``live_fields``). A member neither the models nor the members file know is a 404, and so
    is an erased member (the same answer: it does not tell that they were ever known)."""
    snapshot = models.for_member(member_id)
    if member_id in erased:
        raise NotFoundError(_unknown(member_id))
    index = snapshot.artifact.member_ids.get(member_id)
    rows = snapshot.profile_rows
    row = rows.row(member_id) if rows is not None else None
    if row is None and index is None and member_id not in snapshot.carried_segments:
        raise NotFoundError(_unknown(member_id))
    row = row or {rfm.SEGMENT: snapshot.segment_of_member(member_id, index)}
    live = await asyncio.to_thread(live_activity, store, member_id, snapshot.live_since)
    data_end = datetime.fromtimestamp(snapshot.live_since, UTC)
    return MemberProfile(
        member_id=member_id,
        variant=snapshot.variant,
        known=index is not None,
        **{name: row.get(name) for name in _AS_STORED},
        **fold_live(row, live, data_end),
        spend=row.get(rfm.MONETARY),
        first_seen=as_utc(row.get(rfm.FIRST_SEEN)),
        tier_rules=snapshot.tier_rules,
        attributes=_attributes(row),
        scores_as_of=as_utc(row.get(profile.SCORES_AS_OF)),
        live_since=data_end,
        live_events=live.events,
        live_fields=list(LIVE_FIELDS),
    )


def _unknown(member_id: str) -> str:
    return f"unknown member {member_id!r}: neither the models nor the members file know them"


def _attributes(row: dict[str, Any]) -> AttributeSegments:
    return AttributeSegments(
        region=row.get(col.REGION),
        age_band=row.get(attributes.AGE_BAND),
        join_cohort=row.get(attributes.JOIN_COHORT),
    )
