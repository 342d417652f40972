"""The storefront's route answered in plain ASGI, past FastAPI's per-request machinery.

``GET /v1/members/{member_id}/recommendations`` is called on every page view. Its answer
costs about 25 µs when the member's list is precomputed, while FastAPI's routing, exception
middleware and dependency resolution around it cost several times that. This middleware
answers that one route itself when the request is plainly valid: the path id and the query
validate (with the same pydantic types as the documented route), reads need no key, and the
model artifacts are loaded. It calls the same :class:`RecommendationService` and sends the same
JSON, so the answer is the route's by construction. Everything else (an invalid parameter, an
unknown segment, a read key to check, no model artifact yet) goes on to FastAPI, which answers
with its usual errors; the service raises those before it records anything, so nothing is done
twice.

It sits inside :class:`serving.middleware.RequestContextMiddleware` (request ids, metrics by
route template) and sets the scope's ``route`` to the FastAPI route it stands in for (given
by :func:`serving.app.create_app`), so that requests are counted under the same template
either way. ``RECSYS_FAST_LANE=false`` turns it
off (tests compare both).
"""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.errors import ApiError
from serving.query import parse_query
from serving.routes._responses import JSON_MEDIA_TYPE
from serving.schemas import ExternalId, MemberRecommendationQuery

__all__ = ["ROUTE_PATH", "StorefrontLane"]

ROUTE_PATH = "/v1/members/{member_id}/recommendations"
_PATH = re.compile(re.escape(ROUTE_PATH).replace(re.escape("{member_id}"), "([^/]+)"))
_MEMBER_ID = TypeAdapter(ExternalId)
_CONTENT_TYPE = (b"content-type", JSON_MEDIA_TYPE.encode())


class StorefrontLane:
    """Answers valid storefront recommendation requests; passes everything else on."""

    def __init__(self, app: ASGIApp, route: APIRoute) -> None:
        self.app = app
        self._route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._answer(scope) if scope["type"] == "http" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [_CONTENT_TYPE, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope) -> bytes | None:
        """The response body, or None when FastAPI must answer."""
        if scope["method"] != "GET":
            return None
        matched = _PATH.fullmatch(scope["path"])
        if matched is None:
            return None
        state = scope["app"].state
        settings = getattr(state, "settings", None)
        if settings is None or not settings.fast_lane or settings.require_read_key:
            return None
        if not state.models.ready:
            return None
        try:
            member_id = _MEMBER_ID.validate_python(matched.group(1))
            query = parse_query(MemberRecommendationQuery, QueryParams(scope["query_string"]))
        except ValidationError:
            return None
        try:
            answer = await state.service.for_member(
                member_id, query, segment=query.segment, liked=query.liked
            )
        except ApiError:
            return None
        scope["route"] = self._route
        return to_json(answer)
