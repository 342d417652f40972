"""The FastAPI application: ``create_app()`` builds it, its lifespan brings it up and down.

Nothing happens at import time. ``uvicorn --factory serving.app:create_app`` (what
``recsys serve`` runs) calls :func:`create_app` in each worker; the lifespan then opens the
event store, starts the impressions flusher, the registry poller and the follower of other
workers' reloads, and loads the model artifacts in the background, so that /healthz answers at once
and /readyz turns 200 once they are loaded. On shutdown, queued impressions are flushed
before the store closes.

Requests pass, outermost first: the request context (ids, metrics), the request guard
(undecodable URLs, keys before bodies, body limits), the member id of the path replaced by its
pseudonym (with ``RECSYS_MEMBER_ID_KEY``, :mod:`serving.pseudonyms`), the storefront's fast
lane, FastAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from threadpoolctl import threadpool_limits

from serving.artifact_sources import source_for
from serving.auth import KeyRing
from serving.dashboard import mount_dashboard
from serving.erasure import ErasedMembers
from serving.errors import install_error_handlers
from serving.event_store import EventStore
from serving.fast_lane import ROUTE_PATH as STOREFRONT_PATH
from serving.fast_lane import StorefrontLane
from serving.following import follow_forever
from serving.guard import RequestGuard
from serving.impressions import ImpressionBuffer
from serving.middleware import RequestContextMiddleware
from serving.model_store import ModelStore
from serving.pseudonyms import MemberPathPseudonyms
from serving.recommending import RecommendationService
from serving.reload_requests import ReloadRequests
from serving.routes import ROUTERS
from serving.settings import Settings, get_settings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

#: How often erasures are followed when reload following is off (RECSYS_RELOAD_FOLLOW_SECONDS=0).
_ERASURE_FOLLOW_SECONDS = 1.0

_DESCRIPTION = """\
Recommendations for a retail membership program: "recommended for you", similar items,
events that shape the next answer at once, A/B variants, and CTR reports.

Every error is JSON: `{"error": {"code", "message", "request_id"}}`. Write routes
(`/v1/events`) need an API key with the `events` role in `X-API-Key`, admin routes the
`admin` role; read routes are open unless the deployment requires a `read` key.
"""


def _settings_of(app: FastAPI) -> Settings:
    """The settings given to :func:`create_app`, else ``get_settings`` (or an override of it)."""
    given: Settings | None = getattr(app.state, "given_settings", None)
    if given is not None:
        return given
    return app.dependency_overrides.get(get_settings, get_settings)()


async def _load_artifacts(models: ModelStore) -> None:
    try:
        await models.reload()
    except Exception as error:
        logger.warning("not ready: %s", error)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = _settings_of(app)
    # One request is one member's scores: BLAS threads would only spin against the other
    # workers on the same cores (a 2-worker server on 2 cores ran several times slower).
    threadpool_limits(1)
    events = await asyncio.to_thread(EventStore.open, settings.events_url)
    erased = ErasedMembers(events)
    await erased.start()
    impressions = ImpressionBuffer(
        events,
        erased=erased,
        flush_seconds=settings.impression_flush_seconds,
        batch=settings.impression_batch,
        max_pending=settings.impression_buffer_max,
    )
    variants = settings.variant_configs()
    tracking_uri = settings.resolved_tracking_uri()
    sources = {
        name: source_for(config.source, tracking_uri, settings.artifact_cache)
        for name, config in variants.items()
    }
    pseudonyms = settings.member_pseudonyms()
    models = ModelStore(
        variants, sources, salt=settings.ab_salt, verify=settings.verify_checksums,
        member_key=pseudonyms.fingerprint if pseudonyms is not None else None,
    )  # fmt: skip
    app.state.pseudonyms = pseudonyms
    app.state.settings = settings
    app.state.events = events
    app.state.impressions = impressions
    app.state.models = models
    app.state.keys = KeyRing(settings.api_keys)
    app.state.erased = erased
    app.state.service = RecommendationService(models, events, impressions, erased)
    app.state.reload_requests = reload_requests = ReloadRequests(events, models)
    await reload_requests.start()
    flusher = asyncio.create_task(impressions.run())
    background = [asyncio.create_task(_load_artifacts(models))]
    if settings.poll_seconds > 0 and variants:
        background.append(asyncio.create_task(models.poll_forever(settings.poll_seconds)))
    if settings.reload_follow_seconds > 0 and variants:
        follow = follow_forever(
            reload_requests.follow_once, settings.reload_follow_seconds, "reload requests"
        )
        background.append(asyncio.create_task(follow))
    # Erasures are followed even with reload following off: an erased member must not be
    # answered from the artifact by the workers that did not take the erasure.
    follow = follow_forever(
        erased.follow_once, settings.reload_follow_seconds or _ERASURE_FOLLOW_SECONDS, "erasures"
    )
    background.append(asyncio.create_task(follow))
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        impressions.stop()
        await flusher
        await impressions.flush()
        events.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; ``settings`` (tests) replace the environment's."""
    # /docs and /redoc with their Swagger UI and ReDoc assets served from the package, not a
    # CDN: they work without internet (at /static-offline-docs).
    app = FastAPIOffline(
        title="member-recsys",
        version="1",
        description=_DESCRIPTION,
        lifespan=_lifespan,
        openapi_tags=[
            {"name": "recommendations", "description": "Lists for members."},
            {"name": "items", "description": "Lists for item pages."},
            {"name": "bundles", "description": "Frequently bought together."},
            {"name": "offers", "description": "The offer a member's latest campaign chose."},
            {"name": "events", "description": "What members did with what they saw."},
            {"name": "reports", "description": "Online CTR and offline evaluation."},
            {"name": "models", "description": "What is loaded."},
            {"name": "dashboard", "description": "Figures and member views of the dashboard."},
            {"name": "admin", "description": "Reloads (admin key)."},
            {"name": "operations", "description": "Probes and metrics."},
        ],
    )
    # Kept on the state, not as a dependency override: with any override present, FastAPI
    # rebuilds every route's dependency tree on every request (about 250 µs here).
    app.state.given_settings = settings
    install_error_handlers(app)
    routes = [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    storefront = next(route for route in routes if route.path == STOREFRONT_PATH)
    # Added innermost first: each runs inside the ones added after it.
    app.add_middleware(StorefrontLane, route=storefront)
    app.add_middleware(MemberPathPseudonyms)
    app.add_middleware(RequestGuard, routes=routes)
    app.add_middleware(RequestContextMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    mount_dashboard(app)
    return app
