"""Operations that change what is served: reloading model artifacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.deps import AdminAccess, ModelStoreDep, ReloadRequestsDep
from serving.errors import InvalidParameterError
from serving.routes._responses import errors
from serving.schemas import ReloadResponse, VariantReload

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[AdminAccess],
    responses=errors(401, 403, 409, 422, 502),
)


@router.post("/reload", summary="Reload model artifacts now")
async def reload_artifacts(
    models: ModelStoreDep,
    reload_requests: ReloadRequestsDep,
    variant: Annotated[str | None, Query(description="Only this variant (default all).")] = None,
) -> ReloadResponse:
    """Fetch each variant's source (resolving a registry alias), verify and swap it in.

    A model artifact that fails verification is refused with a 409 and the previous one keeps
    serving; requests in flight are never interrupted. ``swapped`` is false when the source
    still held the loaded version (verified again, the answers unchanged). This worker
    reloads now and records the request, and every other worker sharing the event store
    follows within ``RECSYS_RELOAD_FOLLOW_SECONDS``.
    """
    if variant is not None and variant not in models.configs:
        raise InvalidParameterError(
            f"variant: unknown variant {variant!r}; known: {list(models.configs)}"
        )
    await reload_requests.announce(variant)
    outcomes = await models.reload([variant] if variant is not None else None)
    return ReloadResponse(
        variants=[
            VariantReload(
                variant=outcome.variant,
                version=outcome.version,
                previous_version=outcome.previous_version,
                swapped=outcome.swapped,
            )
            for outcome in outcomes
        ]
    )
