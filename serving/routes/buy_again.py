"""``GET /v1/members/{member_id}/buy-again``: the member's past items, most due first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from serving.deps import ReadAccess, ServiceDep
from serving.query import query_dependency, query_openapi
from serving.routes._responses import errors, json_response
from serving.schemas import ExternalId
from serving.schemas.buy_again import BuyAgainQuery, BuyAgainResponse

__all__ = ["router"]

router = APIRouter(
    prefix="/v1",
    tags=["recommendations"],
    dependencies=[ReadAccess],
    responses=errors(401, 403, 422, 503),
)


@router.get(
    "/members/{member_id}/buy-again",
    summary="Bought before, due again",
    response_model=BuyAgainResponse,
    openapi_extra=query_openapi(BuyAgainQuery),
    responses=errors(404),
)
async def buy_again(
    member_id: Annotated[ExternalId, Path(description="The member's id.", examples=["M0001"])],
    query: Annotated[BuyAgainQuery, Depends(query_dependency(BuyAgainQuery))],
    service: ServiceDep,
) -> Response:
    """Up to ``n`` items the member bought before, most due first: how far along its purchase
    cycle each is (time since the last purchase against the member's cycle, shrunk towards
    the item's), weighed by how habitually the member rebuys it; each with its due date and
    the reason in words. Purchases posted since the model artifact reset an item's clock at
    once. A member with nothing to buy again (the members file's members without events, or
    one known only by live events) gets an empty list and a ``note`` saying why; a member
    known nowhere is a 404, and so is every member when the artifact predates purchase
    cycles (the message says to retrain). Definitions: docs/buy-again.md."""
    return json_response(await service.buy_again(member_id, query.n, query.as_of))
