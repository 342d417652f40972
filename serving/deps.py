"""Typed dependencies of the routes: settings, the service's components, and access checks.

The components live on ``app.state``, built by the lifespan from :func:`get_settings` (or a
test's override of it); routes get them through these aliases rather than reaching into the
application themselves. Every dependency is ``async``: FastAPI runs a plain ``def``
dependency in a worker thread, a hop that costs more than the rest of a request's routing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader

from features.pseudonyms import MemberPseudonyms
from serving.audit import AuditEntry, AuditLog, key_actor
from serving.auth import API_KEY_HEADER, KeyRing
from serving.erasure import ErasedMembers
from serving.event_store import EventStore
from serving.impressions import ImpressionBuffer
from serving.model_store import ModelStore
from serving.pseudonyms import pseudonyms_of
from serving.recommending import RecommendationService
from serving.reload_requests import ReloadRequests
from serving.settings import Role, Settings

__all__ = [
    "AdminAccess",
    "ErasedDep",
    "EventStoreDep",
    "EventsAccess",
    "ImpressionsDep",
    "ModelStoreDep",
    "PseudonymsDep",
    "ReadAccess",
    "ReloadRequestsDep",
    "ServiceDep",
    "audit_entry",
    "role_needed",
]


async def _model_store(request: Request) -> ModelStore:
    return request.app.state.models


async def _event_store(request: Request) -> EventStore:
    return request.app.state.events


async def _impressions(request: Request) -> ImpressionBuffer:
    return request.app.state.impressions


async def _service(request: Request) -> RecommendationService:
    return request.app.state.service


async def _reload_requests(request: Request) -> ReloadRequests:
    return request.app.state.reload_requests


async def _pseudonyms(request: Request) -> MemberPseudonyms | None:
    return pseudonyms_of(request.app.state)


async def _erased(request: Request) -> ErasedMembers:
    return request.app.state.erased


ModelStoreDep = Annotated[ModelStore, Depends(_model_store)]
ErasedDep = Annotated[ErasedMembers, Depends(_erased)]
ReloadRequestsDep = Annotated[ReloadRequests, Depends(_reload_requests)]
EventStoreDep = Annotated[EventStore, Depends(_event_store)]
ImpressionsDep = Annotated[ImpressionBuffer, Depends(_impressions)]
ServiceDep = Annotated[RecommendationService, Depends(_service)]
#: The pseudonyms of ``RECSYS_MEMBER_ID_KEY`` for member ids in bodies (None: ids are raw).
PseudonymsDep = Annotated[MemberPseudonyms | None, Depends(_pseudonyms)]

_api_key = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="A key from RECSYS_API_KEYS with the role the route needs.",
)
ApiKey = Annotated[str | None, Security(_api_key)]


def _keys(request: Request) -> KeyRing:  # a helper, not a dependency
    return request.app.state.keys


async def _require_read(key: ApiKey, request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.require_read_key:
        _keys(request).check(key, Role.READ)


async def _require_events(key: ApiKey, request: Request) -> None:
    _keys(request).check(key, Role.EVENTS)


async def _require_admin(key: ApiKey, request: Request) -> None:
    _keys(request).check(key, Role.ADMIN)


#: Route dependencies: reads (open unless RECSYS_REQUIRE_READ_KEY), event writes, admin.
ReadAccess = Depends(_require_read)
EventsAccess = Depends(_require_events)
AdminAccess = Depends(_require_admin)

_ROLES = {_require_read: Role.READ, _require_events: Role.EVENTS, _require_admin: Role.ADMIN}


def audit_entry(action: str) -> Any:
    """A dependency that records the route's call as ``action`` in the audit log: who (the
    key's id), what (the entry's target and detail, which the route fills in), when, and how
    it ended (ok, or refused or failed with the error the client got)."""

    async def entry(key: ApiKey, request: Request) -> AsyncIterator[AuditEntry]:
        store: EventStore = request.app.state.events
        made = AuditEntry(key_actor(key or ""), action)
        try:
            yield made
        except Exception as error:
            await asyncio.to_thread(AuditLog(store).record_entry, made, error)
            raise
        await asyncio.to_thread(AuditLog(store).record_entry, made)

    return Depends(entry)


def role_needed(route: APIRoute, settings: Settings) -> Role | None:
    """The role a key must grant for ``route`` (None: the route is open), read off the access
    dependency the route declares, so that the request guard, which checks keys before a
    body is read, can never disagree with the route itself."""
    for dependency in route.dependencies:
        role = _ROLES.get(dependency.dependency)  # type: ignore[arg-type]
        if role is Role.READ and not settings.require_read_key:
            continue
        if role is not None:
            return role
    return None
