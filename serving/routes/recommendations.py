"""Recommendations for members: one member per request, or a bounded batch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from serving.deps import PseudonymsDep, ReadAccess, ServiceDep
from serving.query import query_dependency, query_openapi
from serving.routes._responses import BODY_ERRORS, errors, json_response
from serving.schemas import (
    BatchRecommendationRequest,
    BatchRecommendationResponse,
    ExternalId,
    MemberRecommendationQuery,
    RecommendationResponse,
)

__all__ = ["router"]

router = APIRouter(
    prefix="/v1",
    tags=["recommendations"],
    dependencies=[ReadAccess],
    responses=errors(401, 403, 422, 503),
)


@router.get(
    "/members/{member_id}/recommendations",
    summary="Recommended for a member",
    response_model=RecommendationResponse,
    openapi_extra=query_openapi(MemberRecommendationQuery),
)
async def member_recommendations(
    member_id: Annotated[ExternalId, Path(description="The member's id.", examples=["M000001"])],
    query: Annotated[
        MemberRecommendationQuery, Depends(query_dependency(MemberRecommendationQuery))
    ],
    service: ServiceDep,
) -> Response:
    """Exactly ``n`` distinct items (when the filtered catalog has that many), best first.

    Purchased items are left out (including purchases posted to /v1/events since the model
    was trained), and events posted since shape the answer at once. A member the model does
    not know gets a cold-start answer flagged ``fallback``: the content model from declared
    ``liked`` items, else the popularity of their ``segment``, else overall popularity; with
    events posted, the model answers from them.
    """
    return json_response(
        await service.for_member(member_id, query, segment=query.segment, liked=query.liked)
    )


@router.post(
    "/recommendations/batch",
    summary="Recommended for many members",
    response_model=BatchRecommendationResponse,
    responses=errors(*BODY_ERRORS),
)
async def batch_recommendations(
    body: BatchRecommendationRequest, service: ServiceDep, pseudonyms: PseudonymsDep
) -> Response:
    """One list per member id, in the order given, each from the member's own A/B variant."""
    members = body.member_ids if pseudonyms is None else pseudonyms.of_all(body.member_ids)
    return json_response({"results": await service.for_members(members, body)})
