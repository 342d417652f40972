"""Item pages: similar items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from serving.deps import ReadAccess, ServiceDep
from serving.query import query_dependency, query_openapi
from serving.routes._responses import errors, json_response
from serving.schemas import ExternalId, SimilarItemsQuery, SimilarItemsResponse

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/items",
    tags=["items"],
    dependencies=[ReadAccess],
    responses=errors(401, 403, 404, 422, 503),
)


@router.get(
    "/{item_id}/similar",
    summary="Items similar to an item",
    response_model=SimilarItemsResponse,
    openapi_extra=query_openapi(SimilarItemsQuery),
)
async def similar_items(
    item_id: Annotated[ExternalId, Path(description="The item's id.", examples=["I00042"])],
    query: Annotated[SimilarItemsQuery, Depends(query_dependency(SimilarItemsQuery))],
    service: ServiceDep,
) -> Response:
    """The ``n`` most similar available items; an item the model artifact does not know is a 404."""
    return json_response(await service.similar(item_id, query.n, query.model))
