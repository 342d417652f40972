"""One router per resource; :data:`ROUTERS` is what the application mounts, in order."""

from __future__ import annotations

from serving.routes import (
    admin,
    bundles,
    buy_again,
    campaign_reports,
    dashboard,
    erasure,
    events,
    health,
    items,
    models,
    offers,
    profiles,
    recommendations,
    reports,
)

__all__ = ["ROUTERS"]

ROUTERS = (
    recommendations.router,
    items.router,
    bundles.router,
    buy_again.router,
    offers.router,
    events.router,
    reports.router,
    campaign_reports.router,
    models.router,
    dashboard.router,
    profiles.router,
    erasure.router,
    admin.router,
    health.router,
)
