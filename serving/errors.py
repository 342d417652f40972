"""Every error the API returns, and the one boundary that turns exceptions into JSON.

A client always gets ``{"error": {"code", "message", "request_id"}}`` (validation errors add
``details``), whatever went wrong: a route it mistyped, a parameter out of range, a model it
named that is not loaded, a key it lacks, or a bug. Code raises :class:`ApiError` subclasses
(or the library's own errors, mapped here) and never builds an error response itself. The two
layers below the application answer with the same body (:func:`error_body`): the request
guard (:mod:`serving.guard`: bodies, keys of write routes, URLs that are not UTF-8) and the
HTTP protocol (:mod:`serving.protocol`: requests that are not HTTP, oversized headers).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from serving.artifact_sources import SourceUnavailableError
from training.artifact import ArtifactError

__all__ = [
    "REQUEST_ID_HEADER",
    "ApiError",
    "BodyTimeoutError",
    "BodyTooLargeError",
    "ForbiddenError",
    "InvalidParameterError",
    "NotFoundError",
    "NotReadyError",
    "UnauthorizedError",
    "error_body",
    "error_response",
    "install_error_handlers",
    "request_id_of",
    "scope_error_response",
]

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_INPUT_ECHO_CHARS = 60


class ApiError(Exception):
    """An error with the HTTP status and machine-readable code the client gets."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class InvalidParameterError(ApiError):
    """A parameter is well-formed but names something that does not exist here."""

    status_code = 422
    code = "invalid_parameter"


class NotFoundError(ApiError):
    status_code = 404
    code = "not_found"


class UnauthorizedError(ApiError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "APIKey"})


class ForbiddenError(ApiError):
    status_code = 403
    code = "forbidden"


class BodyTooLargeError(ApiError):
    """A request body larger than ``RECSYS_MAX_BODY_BYTES``: refused before it is read."""

    status_code = 413
    code = "body_too_large"


class BodyTimeoutError(ApiError):
    """A request body that did not arrive within ``RECSYS_BODY_TIMEOUT_SECONDS``."""

    status_code = 408
    code = "body_timeout"


class NotReadyError(ApiError):
    """No model artifact is loaded (yet): the client should retry later or ask another replica."""

    status_code = 503
    code = "not_ready"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "5"})


def request_id_of(request: Request) -> str | None:
    """The id the request-context middleware gave this request."""
    return getattr(request.state, "request_id", None)


def error_body(
    code: str,
    message: str,
    request_id: str | None,
    details: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The one error body of the API, ``{"error": {"code", "message", "request_id"}}``
    (validation errors add ``details``), wherever the error is answered: a route, a
    middleware, or the HTTP protocol itself (:mod:`serving.protocol`)."""
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details is not None:
        body["details"] = list(details)
    return {"error": body}


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    *,
    details: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error response of a request that reached the application."""
    body = error_body(code, message, request_id_of(request), details)
    return JSONResponse(body, status_code=status_code, headers=headers)


def scope_error_response(
    scope: Scope,
    status_code: int,
    code: str,
    message: str,
    *,
    details: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The same response for a plain ASGI middleware, which has a scope but no ``Request``
    (the request id is the one the request-context middleware put in the scope's state)."""
    request_id = scope.get("state", {}).get("request_id")
    body = error_body(code, message, request_id, details)
    return JSONResponse(body, status_code=status_code, headers=headers)


def _field_name(location: Sequence[Any]) -> str:
    """``("query", "n")`` -> ``n``; ``("body", 0, "event")`` -> ``body[0].event``."""
    parts = list(location)
    if len(parts) > 1 and parts[0] in ("query", "path", "header"):
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "request"


def _echo(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _INPUT_ECHO_CHARS else text[: _INPUT_ECHO_CHARS - 3] + "..."


#: Pydantic's "wrong shape" errors: at a union branch's root they only say that branch did
#: not apply (an event object is not a list), noise beside the other branch's real problem.
_SHAPE_ERRORS = frozenset(
    {"model_type", "model_attributes_type", "dict_type", "list_type", "is_instance_of"}
)


def _union_branch(location: Sequence[Any]) -> str | None:
    """The union branch a body error is under (``EventIn``, ``list[EventIn]``), if any.

    Pydantic puts the branch's tag right after ``body``; our field names are snake_case, so a
    tag is told by its capital or its brackets."""
    if len(location) > 1 and location[0] == "body" and isinstance(location[1], str):
        tag = location[1]
        if tag[:1].isupper() or "[" in tag:
            return tag
    return None


def _without_branch(location: Sequence[Any]) -> tuple[Any, ...]:
    """``("body", "list[EventIn]", 0, "event")`` -> ``("body", 0, "event")``."""
    parts = tuple(location)
    return (parts[0], *parts[2:]) if _union_branch(parts) else parts


def _is_branch_mismatch(problem: Mapping[str, Any]) -> bool:
    location = tuple(problem.get("loc", ()))
    return (
        problem.get("type") in _SHAPE_ERRORS
        and len(location) == 2
        and _union_branch(location) is not None
    )


def _useful_problems(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The problems a client can act on, first.

    A body that is one event or a list fails both branches of the union: an event with a bad
    type also fails "should be a list". Branch mismatches are dropped when another branch got
    further (its errors are the real ones); when every branch failed on shape, one problem
    says which shapes were expected."""
    mismatches = [problem for problem in problems if _is_branch_mismatch(problem)]
    if not mismatches:
        return problems
    others = [problem for problem in problems if not _is_branch_mismatch(problem)]
    if others:
        return others
    expected = " or ".join(str(problem["loc"][1]) for problem in mismatches)
    return [
        {
            "type": "union_shape",
            "loc": ("body",),
            "msg": f"expected {expected}",
            "input": mismatches[0].get("input"),
        }
    ]


def _validation_details(error: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for problem in _useful_problems(list(error.errors())):
        if problem.get("type") == "json_invalid":
            # FastAPI's loc is ("body", character) and its input an empty dict: say the
            # decoder's reason and where, not "JSON decode error (got {})".
            position = problem.get("loc", ("body", None))[-1]
            reason = problem.get("ctx", {}).get("error", "invalid JSON")
            details.append(
                {
                    "field": "body",
                    "message": f"not valid JSON: {reason} at character {position}",
                }
            )
            continue
        field = _field_name(_without_branch(problem.get("loc", ())))
        message = str(problem.get("msg", "invalid value"))
        if problem.get("type") != "missing" and "input" in problem:
            message += f" (got {_echo(problem['input'])})"
        details.append({"field": field, "message": message})
    return details


async def _on_api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(
        request, error.status_code, error.code, error.message, headers=error.headers
    )


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    details = _validation_details(error)
    message = "; ".join(f"{detail['field']}: {detail['message']}" for detail in details)
    return error_response(request, 422, "invalid_request", message, details=details)


async def _on_artifact_error(request: Request, error: Exception) -> JSONResponse:
    return error_response(request, 409, "artifact_refused", str(error))


async def _on_source_unavailable(request: Request, error: Exception) -> JSONResponse:
    return error_response(request, 502, "source_unavailable", str(error))


async def _on_store_error(request: Request, error: Exception) -> JSONResponse:
    """The event store failed (unreachable, locked too long): the client should retry, which
    is safe, since events are idempotent on their ``event_id``."""
    logger.warning("event store error in %s %s: %s", request.method, request.url.path, error)
    return error_response(
        request,
        503,
        "store_unavailable",
        "the event store is unavailable; retry later (events are idempotent on event_id)",
        headers={"Retry-After": "1"},
    )


#: Codes of the Starlette and FastAPI errors that have a name of their own here.
_HTTP_ERROR_CODES = {400: "unparseable_body"}


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    """Starlette's own errors: unknown routes (404), wrong methods (405), and bodies FastAPI
    cannot decode (400: JSON that is not UTF-8, for one)."""
    assert isinstance(error, StarletteHTTPException)
    messages = {
        400: "the request body cannot be decoded: send JSON text in UTF-8 with "
        "Content-Type: application/json",
        404: f"no route {request.url.path}; see /docs for the API",
        405: f"{request.method} is not allowed on {request.url.path}",
    }
    message = messages.get(error.status_code, str(error.detail))
    code = _HTTP_ERROR_CODES.get(error.status_code, f"http_{error.status_code}")
    return error_response(request, error.status_code, code, message, headers=error.headers)


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    """A bug: logged with the request id, answered as JSON without internals."""
    logger.error(
        "unhandled error in %s %s (request %s)",
        request.method,
        request.url.path,
        request_id_of(request),
        exc_info=error,
    )
    request_id = request_id_of(request)
    return error_response(
        request,
        500,
        ApiError.code,
        "internal error; quote the request id when reporting it",
        # Answered outside the request-context middleware, which adds it to all others.
        headers={REQUEST_ID_HEADER: request_id} if request_id else None,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through the handlers above (most specific class first)."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ArtifactError, _on_artifact_error)
    app.add_exception_handler(SourceUnavailableError, _on_source_unavailable)
    app.add_exception_handler(SQLAlchemyError, _on_store_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
