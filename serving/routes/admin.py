"""Operations that change what is served (reloading model artifacts), and the audit log of
every such action."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from serving.audit import AuditEntry, AuditLog
from serving.deps import (
    AdminAccess,
    EventStoreDep,
    ModelStoreDep,
    ReloadRequestsDep,
    audit_entry,
)
from serving.errors import InvalidParameterError
from serving.routes._responses import errors
from serving.schemas import AuditEntryOut, AuditLogResponse, ReloadResponse, VariantReload

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
    audit: Annotated[AuditEntry, audit_entry("reload")],
    variant: Annotated[str | None, Query(description="Only this variant (default all).")] = None,
) -> ReloadResponse:
    """Fetch each variant's source (resolving a registry alias), verify and swap it in.

    A model artifact that fails verification is refused with a 409 and the previous one keeps
    serving; requests in flight are never interrupted. ``swapped`` is false when the source
    still held the loaded version (verified again, the answers unchanged). This worker
    reloads now and records the request, and every other worker sharing the event store
    follows within ``RECSYS_RELOAD_FOLLOW_SECONDS``. Recorded in the audit log.
    """
    audit.target = variant or "all variants"
    if variant is not None and variant not in models.configs:
        raise InvalidParameterError(
            f"variant: unknown variant {variant!r}; known: {list(models.configs)}"
        )
    await reload_requests.announce(variant)
    outcomes = await models.reload([variant] if variant is not None else None)
    audit.detail["versions"] = {outcome.variant: outcome.version for outcome in outcomes}
    audit.detail["swapped"] = [outcome.variant for outcome in outcomes if outcome.swapped]
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


@router.get("/audit", summary="The audit log, newest first")
async def audit_log(
    store: EventStoreDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most entries returned.")] = 100,
    before: Annotated[
        int | None, Query(ge=1, description="Only entries numbered below this (the next page).")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="Only this action, e.g. erase.")
    ] = None,
    actor: Annotated[
        str | None, Query(max_length=128, description="Only this actor, e.g. key:1a2b3c4d5e6f.")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Only entries at or after this time (naive = UTC).")
    ] = None,
) -> AuditLogResponse:
    """Every admin or write action: reloads and erasures through the API, and promotions,
    campaign exports, erasures, backups and restores from the command line. Who is an API
    key's id (never the key) or the command's user; the outcome is ok, refused or failed."""
    moment = None if since is None else (since if since.tzinfo else since.replace(tzinfo=UTC))
    records = await asyncio.to_thread(
        AuditLog(store).read, limit=limit, before=before, action=action, actor=actor,
        since=None if moment is None else moment.timestamp(),
    )  # fmt: skip
    return AuditLogResponse(
        entries=[
            AuditEntryOut(
                id=record.id,
                at=datetime.fromtimestamp(record.at, UTC),
                actor=record.actor,
                action=record.action,
                target=record.target,
                outcome=record.outcome,
                detail=record.detail,
            )
            for record in records
        ],
        next_before=records[-1].id if len(records) == limit else None,
    )
