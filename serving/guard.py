"""What a request must pass before the application routes it or reads its body.

* **URLs that are not UTF-8.** The server percent-decodes the path with replacement
  characters, so ``/v1/members/%FF%FE/recommendations`` would reach the route as a member
  called ``"\\ufffd\\ufffd"`` and be answered 200. Here a path or query parameter whose
  percent-decoded bytes are not UTF-8 gets a 422 that names the parameter.
* **Keys before bodies.** FastAPI reads and parses a route's whole body before it resolves
  the route's dependencies, key checks included: a 75 MB body without a key took a worker to
  794 MB before its 401. A request with a body to a route that needs a key has its key checked
  here first, with the same rule the route declares (:func:`serving.deps.role_needed`).
* **Bounded bodies.** A body larger than ``RECSYS_MAX_BODY_BYTES`` is refused with a 413:
  at once when its ``Content-Length`` says so, and as soon as a chunked body passes the limit
  otherwise. A body that does not arrive within ``RECSYS_BODY_TIMEOUT_SECONDS`` gets a 408.
  The body is read here (at most the limit, which is what FastAPI would have held anyway) and
  handed on whole.

Refusals are the API's JSON errors with the request id; a request whose body was not read is
answered with ``Connection: close``, so that the server does not read the rest to find the
next request. GET and HEAD requests without percent signs in their URL pass untouched: the
storefront's hot path pays one byte search.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.deps import role_needed
from serving.errors import ApiError, BodyTimeoutError, BodyTooLargeError, scope_error_response

__all__ = ["RequestGuard", "undecodable_parameter"]

_BODYLESS_METHODS = frozenset({"GET", "HEAD"})
_API_KEY = b"x-api-key"
_CONTENT_LENGTH = b"content-length"
_CLOSE = {"Connection": "close"}


class RequestGuard:
    """Refuses undecodable URLs, keyless writes and oversized or slow bodies (see above)."""

    def __init__(self, app: ASGIApp, routes: Sequence[APIRoute]) -> None:
        self.app = app
        self._routes = list(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        undecodable = undecodable_parameter(scope, self._routes)
        if undecodable is not None:
            scope["route"] = self._route_of(scope)  # counted under the route's template
            await self._refuse_undecodable(scope, receive, send, undecodable)
            return
        if scope["method"] in _BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            self._check_key(scope)
            body = await self._read_body(scope, receive)
        except ApiError as error:
            headers = {**(error.headers or {}), **_CLOSE}
            response = scope_error_response(
                scope, error.status_code, error.code, error.message, headers=headers
            )
            await response(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        await self.app(scope, _replay(body, receive), send)

    def _route_of(self, scope: Scope) -> APIRoute | None:
        for route in self._routes:
            if route.matches(scope)[0] is Match.FULL:
                return route
        return None

    def _check_key(self, scope: Scope) -> None:
        """The route's key check, before anything of the body is read (401 or 403)."""
        state = scope["app"].state
        route = self._route_of(scope)
        settings = getattr(state, "settings", None)
        if route is None or settings is None:
            return  # no such route (a 404 or 405 follows) or not started
        scope["route"] = route  # counted under the route's template
        role = role_needed(route, settings)
        if role is not None:
            state.keys.check(_header(scope, _API_KEY), role)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, at most ``max_body_bytes``; None when the client disconnected."""
        settings = scope["app"].state.settings
        limit = settings.max_body_bytes
        declared = _header(scope, _CONTENT_LENGTH)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit, f"its Content-Length is {int(declared):,}")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(settings.body_timeout_seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit, "the chunked body ran past it")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise BodyTimeoutError(
                f"the request body did not arrive within {settings.body_timeout_seconds:g} s "
                "(RECSYS_BODY_TIMEOUT_SECONDS); send it at once"
            ) from None

    @staticmethod
    async def _refuse_undecodable(
        scope: Scope, receive: Receive, send: Send, undecodable: tuple[str, str]
    ) -> None:
        field, encoded = undecodable
        message = f"must be valid UTF-8 text (the percent-encoded bytes {encoded} are not)"
        response = scope_error_response(
            scope, 422, "invalid_request", f"{field}: {message}",
            details=[{"field": field, "message": message}],
        )  # fmt: skip
        await response(scope, receive, send)


def undecodable_parameter(scope: Scope, routes: Sequence[APIRoute]) -> tuple[str, str] | None:
    """(name, percent-encoded text) of the first path or query parameter of this request whose
    bytes are not UTF-8, else None. The path parameter is named after the route that matches
    the still-encoded path (``member_id``), ``path`` when none does."""
    # (``split``: some ASGI clients, httpx's test transport among them, append the query.)
    raw_path: bytes = (scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0]
    if b"%" in raw_path and not _is_utf8(unquote_to_bytes(raw_path)):
        return _path_parameter(scope, raw_path.decode("latin-1"), routes)
    query: bytes = scope.get("query_string", b"")
    if b"%" not in query:
        return None
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        for part in (name, value):
            if not _is_utf8(unquote_to_bytes(part.replace(b"+", b" "))):
                return unquote_to_bytes(name).decode("utf-8", "replace"), part.decode("latin-1")
    return None


def _path_parameter(scope: Scope, encoded_path: str, routes: Sequence[APIRoute]) -> tuple[str, str]:
    probe = {**scope, "path": encoded_path, "root_path": ""}
    for route in routes:
        matched, child = route.matches(probe)
        if matched is Match.NONE:
            continue
        for name, value in child.get("path_params", {}).items():
            if isinstance(value, str) and not _is_utf8(unquote_to_bytes(value)):
                return name, value
    return "path", encoded_path


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _too_large(limit: int, why: str) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"the request body is larger than {limit:,} bytes ({why}; RECSYS_MAX_BODY_BYTES): "
        "split it over several requests"
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the body read here to the application in one message, then
    passes on what the server sends next (a disconnect)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
