"""One router per resource; :data:`ROUTERS` is what the application mounts, in order."""

from __future__ import annotations

from serving.routes import (
    admin,
    bundles,
    buy_again,
    dashboard,
    events,
    health,
    items,
    models,
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
    events.router,
    reports.router,
    models.router,
    dashboard.router,
    profiles.router,
    admin.router,
    health.router,
)
