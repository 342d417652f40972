"""Error responses the routes document in OpenAPI (the body is always ``ErrorResponse``)."""

from __future__ import annotations

from typing import Any

from serving.schemas import ErrorResponse

__all__ = ["errors"]

_MEANINGS = {
    401: "No API key, or not a valid one.",
    403: "The key lacks the role this route needs.",
    404: "Unknown item or route.",
    409: "The bundle was refused; the previous one keeps serving.",
    422: "Invalid parameters; the message names each field.",
    502: "The bundle source (registry) could not be read; nothing changed.",
    503: "No bundle loaded yet.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses."""
    return {
        status: {"model": ErrorResponse, "description": _MEANINGS[status]} for status in statuses
    }
