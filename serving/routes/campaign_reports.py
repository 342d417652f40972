"""Campaign reports: the campaigns of the ledger, and each one's uplift against its holdout."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from serving.campaign_uplift import campaign_report
from serving.deps import EventStoreDep, ModelStoreDep, ReadAccess
from serving.errors import NotFoundError
from serving.routes._responses import errors, json_response
from serving.schemas.campaign_reports import CampaignList, CampaignUplift
from training.uplift import DEFAULT_WINDOW_DAYS
from training.uplift_page import uplift_page

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/reports/campaigns",
    tags=["reports"],
    dependencies=[ReadAccess],
    responses=errors(401, 403, 422),
)


@router.get("", summary="Campaigns in the ledger")
async def campaigns(store: EventStoreDep) -> CampaignList:
    """Every campaign id the ledger holds, oldest first, with its sends per group."""
    rows = await asyncio.to_thread(store.campaigns)
    return CampaignList.model_validate({"campaigns": rows})


@router.get(
    "/{campaign_id}",
    summary="Uplift of a campaign against its holdout",
    response_model=CampaignUplift,
    responses={
        200: {
            "description": "The report (JSON), or its HTML page with Accept: text/html.",
            "content": {"application/json": {}, "text/html": {}},
        },
        **errors(404),
    },
)
async def campaign_uplift(
    request: Request,
    store: EventStoreDep,
    models: ModelStoreDep,
    campaign_id: Annotated[str, Path(max_length=128)],
    window_days: Annotated[
        float,
        Query(gt=0, le=365, description="Days after each member's send that purchases count."),
    ] = DEFAULT_WINDOW_DAYS,
) -> Response:
    """Treatment against holdout over the conversion window: conversion (any purchase, a sent
    item), revenue per member (catalog prices of the loaded model artifact) and offer
    redemption, with absolute and relative uplift and their 95% intervals, overall and per
    segment and tier (docs/campaigns.md, "Uplift report")."""
    # Prices and segments come from the primary model artifact; without one loaded the report
    # still answers, without revenue and breakdowns.
    primary = models.snapshots.get(models.assigner.primary)
    artifact = primary.artifact if primary is not None else None
    report = await asyncio.to_thread(
        partial(campaign_report, window_days=window_days, artifact=artifact),
        store,
        campaign_id,
    )
    if report is None:
        raise NotFoundError(
            f"campaign {campaign_id!r} is not in the ledger; GET /v1/reports/campaigns lists "
            "the campaigns there are"
        )
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(uplift_page(report.as_dict()))
    return json_response(report.as_dict())
