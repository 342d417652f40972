"""Probes and metrics for operators and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from serving import metrics
from serving.deps import ModelStoreDep
from serving.errors import NotReadyError
from serving.routes._responses import errors
from serving.schemas import Health, Readiness

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> Health:
    """200 while the process serves HTTP, loaded or not."""
    return Health()


@router.get("/readyz", summary="Readiness", responses=errors(503))
async def readyz(models: ModelStoreDep) -> Readiness:
    """200 once every variant has a model artifact loaded, 503 before."""
    if not models.ready:
        missing = [name for name in models.configs if name not in models.snapshots]
        raise NotReadyError(
            f"variants without a model artifact: {', '.join(missing)}"
            if missing
            else "no model artifact is configured (RECSYS_ARTIFACT, RECSYS_MODEL_URI or "
            "RECSYS_VARIANTS)"
        )
    return Readiness(versions={name: snap.version for name, snap in models.snapshots.items()})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Exposition format."}},
)
async def prometheus_metrics() -> Response:
    """Latency per route, requests by status, fallbacks, served versions, events, reloads."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
