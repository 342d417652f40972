"""What the API's bodies share: the id type, the limits, the strict request base, an item of a
list, what every served list carries, and the body of every error."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ITEM_EXAMPLE",
    "MAX_BATCH_MEMBERS",
    "MAX_CART_ITEMS",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_LIKED",
    "MAX_N",
    "ErrorResponse",
    "ExternalId",
    "RecommendedItem",
    "Served",
    "Strict",
]

#: Longest list one request may ask for.
MAX_N = 100
#: Most members one batch request may name.
MAX_BATCH_MEMBERS = 100
#: Most events one POST /v1/events may carry.
MAX_EVENTS_PER_REQUEST = 1000
#: Most declared preferences a cold-start request may carry.
MAX_LIKED = 50
#: Items in a cart sent to POST /v1/bundles.
MAX_CART_ITEMS = 50


def _storable(value: str) -> str:
    """Ids travel to the event store and back into URLs: no control characters and valid
    UTF-8 (a lone surrogate from a JSON body would fail at the database, not here)."""
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (no lone surrogates)") from None
    return value


#: A member, item, event or recommendation id as clients send it.
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_storable)
]


class Strict(BaseModel):
    """A request: a field the API does not know is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    title: str | None = None
    category: str | None = None


class Served(BaseModel):
    """What every recommendation response carries, so that its impressions and clicks can be
    attributed and compared."""

    recommendation_id: str = Field(description="Quote it in events for this list's items.")
    variant: str = Field(description="The A/B arm that served the list.")
    model: str = Field(description="The model that answered.")
    model_version: str = Field(description="Registry version, or the model artifact's own version.")
    fallback: bool = Field(
        description="True when popularity or content answered instead of the model (a cold "
        "start), or completed a list the model could not fill."
    )
    items: list[RecommendedItem]


#: The item the examples in /docs show.
ITEM_EXAMPLE = {"item_id": "I00042", "score": 0.83, "title": "Oat Crunch", "category": "Snacks"}


class _ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """The body of every error."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "not_found",
                        "message": "unknown item 'X1'",
                        "request_id": "9f2c4e1a0b3d4c5e",
                    }
                }
            ]
        }
    )

    error: _ErrorDetail
