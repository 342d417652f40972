"""Reports: online CTR and conversion of what was served, and the offline evaluation."""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from serving.deps import EventStoreDep, ImpressionsDep, ModelStoreDep, ReadAccess
from serving.errors import InvalidParameterError, NotFoundError
from serving.reports import build_ctr_report, epoch
from serving.routes._responses import errors
from serving.schemas import CtrReport, GroupBy
from training.artifact import METRICS_FILE, REPORT_FILE

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/reports",
    tags=["reports"],
    dependencies=[ReadAccess],
    responses=errors(401, 403, 422),
)


@router.get("/ctr", summary="CTR and conversion of served lists")
async def ctr_report(
    store: EventStoreDep,
    impressions: ImpressionsDep,
    start: Annotated[
        datetime | None,
        Query(alias="from", description="Lists served at or after (ISO-8601; naive = UTC)."),
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="Lists served before (ISO-8601).")
    ] = None,
    group_by: Annotated[GroupBy, Query(description="What to compare.")] = GroupBy.VARIANT,
    per_day: Annotated[
        bool, Query(description="Split each group by the UTC day its lists were served.")
    ] = False,
) -> CtrReport:
    """Impressions (items served), clicks, CTR, conversions (purchases) and conversion rate
    per group (and per day with ``per_day``: the trend the dashboard plots), each rate with
    its 95% Wilson interval. Clicks and purchases count when they quote the
    ``recommendation_id`` of a served list, once per (list, item)."""
    start_at, end_at = epoch(start), epoch(end)
    if start_at is not None and end_at is not None and start_at >= end_at:
        raise InvalidParameterError(f"from ({start}) must be before to ({end})")
    await impressions.flush()  # this worker's queued lists count too
    counts = await asyncio.to_thread(
        partial(store.ctr_counts, by_day=per_day), group_by.value, start_at, end_at
    )
    return build_ctr_report(counts, group_by, start, end, per_day=per_day)


@router.get(
    "/evaluation",
    summary="Offline evaluation of the loaded model",
    response_class=Response,
    responses={
        200: {
            "description": "metrics.json of the model artifact, or report.html with Accept: "
            "text/html.",
            "content": {"application/json": {}, "text/html": {}},
        },
        **errors(404, 503),
    },
)
async def evaluation_report(
    request: Request,
    models: ModelStoreDep,
    variant: Annotated[str | None, Query(description="Default: the largest variant.")] = None,
) -> Response:
    """The training run's test metrics of every model (JSON), or its HTML report when the
    request accepts ``text/html``."""
    if variant is not None and variant not in models.configs:
        raise InvalidParameterError(
            f"variant: unknown variant {variant!r}; known: {list(models.configs)}"
        )
    snapshot = models.snapshot(variant) if variant is not None else models.primary()
    html = "text/html" in request.headers.get("accept", "")
    # Read when the snapshot was loaded: the artifact's path may hold another version by now.
    content = snapshot.evaluation_html if html else snapshot.evaluation_json
    if content is None:
        name = REPORT_FILE if html else METRICS_FILE
        raise NotFoundError(f"the model artifact of variant {snapshot.variant!r} has no {name}")
    if html:
        return HTMLResponse(content)
    return Response(content, media_type="application/json")
