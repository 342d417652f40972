"""Response helpers of the routes: documented error responses, and pre-serialised JSON.

The error body is always ``ErrorResponse``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic_core import to_json

from serving.schemas import ErrorResponse

__all__ = ["BODY_ERRORS", "JSON_MEDIA_TYPE", "errors", "json_response"]

JSON_MEDIA_TYPE = "application/json"

_MEANINGS = {
    400: "The body cannot be decoded: not JSON text in UTF-8.",
    401: "No API key, or not a valid one.",
    403: "The key lacks the role this route needs.",
    404: "Unknown item or route.",
    408: "The body did not arrive within RECSYS_BODY_TIMEOUT_SECONDS.",
    409: "The model artifact was refused; the previous one keeps serving.",
    413: "The body is larger than RECSYS_MAX_BODY_BYTES (refused before it is read).",
    422: "Invalid parameters; the message names each field.",
    502: "The model artifact's source (registry) could not be read; nothing changed.",
    503: "No model artifact loaded yet.",
}


#: What a route that takes a body may answer besides its own errors.
BODY_ERRORS = (400, 408, 413)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses."""
    return {
        status: {"model": ErrorResponse, "description": _MEANINGS[status]} for status in statuses
    }


def json_response(payload: Any) -> Response:
    """``payload`` (dicts, lists, strings, numbers) as a JSON response, serialised in one call.

    FastAPI would validate a returned dict against the route's ``response_model`` and encode
    it in Python before ``json.dumps``: several times the cost of reading a precomputed list.
    Routes that return this keep ``response_model`` for the OpenAPI contract.
    """
    return Response(content=to_json(payload), media_type=JSON_MEDIA_TYPE)
