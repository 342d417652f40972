"""Frequently bought together: for an item page, and for a cart."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from serving.deps import ReadAccess, ServiceDep
from serving.query import query_dependency, query_openapi
from serving.routes._responses import BODY_ERRORS, errors, json_response
from serving.schemas import (
    BundleQuery,
    BundleRequest,
    BundleResponse,
    ExternalId,
    MemberBundlesResponse,
)

__all__ = ["router"]

router = APIRouter(
    prefix="/v1",
    tags=["bundles"],
    dependencies=[ReadAccess],
    responses=errors(401, 403, 404, 422, 503),
)


@router.get(
    "/items/{item_id}/bundles",
    summary="Frequently bought with an item",
    response_model=BundleResponse,
    openapi_extra=query_openapi(BundleQuery),
)
async def item_bundles(
    item_id: Annotated[ExternalId, Path(description="The item's id.", examples=["I00042"])],
    query: Annotated[BundleQuery, Depends(query_dependency(BundleQuery))],
    service: ServiceDep,
) -> Response:
    """The items most often bought with this one (the model artifact's association rules, strongest
    lift first, with support, confidence and lift); items similar to it in its category
    complete the list, flagged ``source: similar``, when the rules propose fewer than ``n``.
    An item the model artifact does not know is a 404."""
    return json_response(await service.complements([item_id], query.n))


@router.post(
    "/bundles",
    summary="Complements of a cart",
    response_model=BundleResponse,
    responses=errors(*BODY_ERRORS),
)
async def cart_bundles(body: BundleRequest, service: ServiceDep) -> Response:
    """The best items to add to a cart: every rule whose antecedents are all in the cart
    proposes its consequent, an item keeps its strongest rule, and no item already in the
    cart is proposed. Completed like the item route; an unknown cart item is a 404."""
    return json_response(await service.complements(body.item_ids, body.n))


@router.get(
    "/members/{member_id}/bundles",
    summary="Bundles ranked for a member",
    response_model=MemberBundlesResponse,
    openapi_extra=query_openapi(BundleQuery),
)
async def member_bundles(
    member_id: Annotated[ExternalId, Path(description="The member's id.", examples=["M000001"])],
    query: Annotated[BundleQuery, Depends(query_dependency(BundleQuery))],
    service: ServiceDep,
) -> Response:
    """Up to ``n`` bundles: each anchor is one of the member's top recommendations (purchases
    excluded, events since the model artifact counted), paired with its strongest
    frequently-bought-together complement that the member may be offered (not bought unless
    repeatable; a same-category stand-in, flagged, when no rule applies), and a third item when
    a rule proposes one for the pair; with each item's measures, the total price and a score
    (the complement's lift over the anchor's rank). No item appears twice."""
    return json_response(await service.member_bundles(member_id, query.n))
