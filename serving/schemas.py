"""Request and response bodies of the API (DESIGN section 5), with the examples /docs shows.

Requests and responses are separate models: a request says what a client may send (bounded,
validated, with messages that name the field), a response what it always gets back.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "MAX_BATCH_MEMBERS",
    "MAX_CART_ITEMS",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_N",
    "BatchRecommendationRequest",
    "BatchRecommendationResponse",
    "BundleItem",
    "BundleQuery",
    "BundleRequest",
    "BundleResponse",
    "CtrGroup",
    "CtrReport",
    "ErrorResponse",
    "EventIn",
    "EventType",
    "EventsAccepted",
    "ExternalId",
    "GroupBy",
    "Health",
    "MemberBundle",
    "MemberBundlesResponse",
    "MemberRecommendationQuery",
    "ModelsResponse",
    "Rate",
    "Readiness",
    "RecommendationOptions",
    "RecommendationResponse",
    "RecommendedItem",
    "ReloadResponse",
    "SimilarItemsQuery",
    "SimilarItemsResponse",
    "VariantInfo",
    "VariantReload",
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ----------------------------------------------------------------------------------


class RecommendationOptions(_Strict):
    """What every recommendation request may ask for."""

    n: int = Field(default=10, ge=1, le=MAX_N, description="List length (exact when the "
                   "filtered catalog has that many items).")  # fmt: skip
    category: ExternalId | None = Field(
        default=None, description="Only items of this category.", examples=["Snacks"]
    )
    exclude_purchased: bool = Field(
        default=True,
        description="Leave out items the member bought (in training and since, via events).",
    )
    model: ExternalId | None = Field(
        default=None,
        description="A model of the loaded bundle by name (default: the bundle's chosen one), "
        "to compare models.",
        examples=["als"],
    )
    max_per_category: int | None = Field(
        default=None,
        ge=1,
        le=MAX_N,
        description="Diversify: at most this many items of one category (storefront "
        "carousels); relaxed only when the list could not be filled otherwise.",
    )


class MemberRecommendationQuery(RecommendationOptions):
    """Query parameters of GET /v1/members/{member_id}/recommendations."""

    model_config = ConfigDict(extra="ignore")

    segment: ExternalId | None = Field(
        default=None,
        description="Cold start: the segment of a member the model does not know (their "
        "segment's popularity answers). Ignored for known members.",
        examples=["new"],
    )
    liked: list[ExternalId] = Field(
        default_factory=list,
        max_length=MAX_LIKED,
        description="Cold start: item ids the member declared they like (repeat the "
        "parameter); the content model answers from them. Ignored once the member has "
        "behaviour.",
    )


class SimilarItemsQuery(_Strict):
    """Query parameters of GET /v1/items/{item_id}/similar."""

    model_config = ConfigDict(extra="ignore")

    n: int = Field(default=10, ge=1, le=MAX_N, description="List length.")
    model: ExternalId | None = Field(
        default=None,
        description="A model that knows item similarity (default: the chosen one, else the "
        "first of item_knn, ease, als, lightfm, content in the bundle).",
    )


class BundleQuery(_Strict):
    """Query parameters of GET /v1/items/{item_id}/bundles."""

    model_config = ConfigDict(extra="ignore")

    n: int = Field(default=5, ge=1, le=MAX_N, description="How many items to propose.")


class BundleRequest(_Strict):
    """Body of POST /v1/bundles: a cart, and how many complements to propose."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"item_ids": ["I00042", "I00007"], "n": 5}]}
    )

    item_ids: list[ExternalId] = Field(min_length=1, max_length=MAX_CART_ITEMS)
    n: int = Field(default=5, ge=1, le=MAX_N, description="How many items to propose.")


class BatchRecommendationRequest(RecommendationOptions):
    """Body of POST /v1/recommendations/batch."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"member_ids": ["M000001", "M000002"], "n": 5}]}
    )

    member_ids: list[ExternalId] = Field(min_length=1, max_length=MAX_BATCH_MEMBERS)


class EventType(StrEnum):
    """What a member did. ``impression``: an item was shown (clients may report what was
    really displayed); the others are interactions, weakest first."""

    IMPRESSION = "impression"
    VIEW = "view"
    CLICK = "click"
    CART = "cart"
    PURCHASE = "purchase"


class EventIn(_Strict):
    """One event, as a storefront posts it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "7f7c3a52-click-1",
                    "event": "click",
                    "member_id": "M000001",
                    "item_id": "I00042",
                    "recommendation_id": "3b9d6c2e8f1a4b7c9d0e1f2a3b4c5d6e",
                    "timestamp": "2026-07-01T12:00:00Z",
                }
            ]
        },
    )

    event_id: ExternalId | None = Field(
        default=None,
        description="Your unique id of this event: a repeat is stored once (safe retries). "
        "Without one, the server assigns one and a retry is stored twice.",
    )
    event: EventType
    member_id: ExternalId
    item_id: ExternalId
    recommendation_id: ExternalId | None = Field(
        default=None,
        description="The recommendation_id of the list the item was shown in: attributes "
        "clicks and purchases to the model and variant that served it.",
    )
    timestamp: datetime | None = Field(
        default=None,
        description="When it happened (ISO-8601, naive = UTC; default: when it is received). "
        "Only events that happened after the loaded model's data ends (its data_end) shape "
        "the member's answers: earlier ones are what the model learned from, or came too late "
        "for it.",
    )


# -- responses ---------------------------------------------------------------------------------


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    title: str | None = None
    category: str | None = None


class _Served(BaseModel):
    """What every recommendation response carries, so that its impressions and clicks can be
    attributed and compared."""

    recommendation_id: str = Field(description="Quote it in events for this list's items.")
    variant: str = Field(description="The A/B arm that served the list.")
    model: str = Field(description="The model that answered.")
    model_version: str = Field(description="Registry version, or the bundle's own version.")
    fallback: bool = Field(
        description="True when popularity or content answered instead of the model (a cold "
        "start), or completed a list the model could not fill."
    )
    items: list[RecommendedItem]


_ITEM_EXAMPLE = {"item_id": "I00042", "score": 0.83, "title": "Oat Crunch", "category": "Snacks"}


class RecommendationResponse(_Served):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recommendation_id": "3b9d6c2e8f1a4b7c9d0e1f2a3b4c5d6e",
                    "member_id": "M000001",
                    "variant": "champion",
                    "model": "als",
                    "model_version": "7",
                    "fallback": False,
                    "items": [_ITEM_EXAMPLE],
                }
            ]
        }
    )

    member_id: str


class BatchRecommendationResponse(BaseModel):
    results: list[RecommendationResponse]


class SimilarItemsResponse(_Served):
    item_id: str


class BundleItem(RecommendedItem):
    source: Literal["rules", "similar", "recommended"] = Field(
        description="rules: a frequently-bought-together rule proposes it; similar: no rule "
        "did, so an item of the anchor's category stands in; recommended: a member bundle's "
        "anchor, from the member's recommendations."
    )
    support: float | None = Field(description="Share of baskets with the rule's items.")
    confidence: float | None = Field(description="P(item | the rule's antecedents).")
    lift: float | None = Field(description="Confidence over the item's own basket share.")
    antecedents: list[str] = Field(description="The cart items of the rule that proposes it.")


class BundleResponse(BaseModel):
    """Items to add to a cart (or to an item page's "frequently bought together")."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recommendation_id": "0187a2b3c4d5e6f70011223344556677",
                    "cart": ["I00042"],
                    "variant": "champion",
                    "model": "rules",
                    "model_version": "7",
                    "fallback": False,
                    "items": [
                        {**_ITEM_EXAMPLE, "source": "rules", "support": 0.012,
                         "confidence": 0.61, "lift": 8.4, "antecedents": ["I00042"]}
                    ],
                }
            ]
        }
    )  # fmt: skip

    recommendation_id: str = Field(description="Quote it in events for this list's items.")
    cart: list[str] = Field(description="The items the proposal is for.")
    variant: str
    model: str = Field(description="rules, or the similarity model when no rule applied.")
    model_version: str
    fallback: bool = Field(description="True when similar items completed the list.")
    items: list[BundleItem]


class MemberBundle(BaseModel):
    """An item the member is likely to want (the anchor) with what is bought with it."""

    items: list[BundleItem] = Field(description="The anchor first, then its complements.")
    score: float = Field(description="The complement's lift over the anchor's rank (1-based): "
                         "strong pairs around the member's top recommendations first.")  # fmt: skip
    total_price: float | None = Field(description="Sum of the catalog prices (null when one "
                                      "is unknown).")  # fmt: skip


class MemberBundlesResponse(BaseModel):
    """Bundles ranked for a member."""

    recommendation_id: str = Field(description="Quote it in events for these items.")
    member_id: str
    variant: str
    model: str = Field(description="The model whose recommendations gave the anchors.")
    model_version: str
    fallback: bool = Field(description="True when a same-category stand-in completed a bundle "
                           "or popularity gave the anchors.")  # fmt: skip
    bundles: list[MemberBundle]


class EventsAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"received": 3, "stored": 2, "duplicates": 1}]}
    )

    received: int = Field(description="Events in the request.")
    stored: int = Field(description="Events committed now.")
    duplicates: int = Field(description="Events whose event_id was already stored.")


class Rate(BaseModel):
    """A proportion with its 95% Wilson score interval; null without any trial."""

    value: float | None
    low: float | None
    high: float | None


class CtrGroup(BaseModel):
    key: str
    impressions: int = Field(description="Items served in lists of this group.")
    clicks: int = Field(description="Distinct (list, item) pairs clicked.")
    ctr: Rate
    conversions: int = Field(description="Distinct (list, item) pairs purchased.")
    conversion_rate: Rate = Field(description="Conversions per impression.")


class GroupBy(StrEnum):
    MODEL = "model"
    VARIANT = "variant"
    SEGMENT = "segment"
    DAY = "day"


class CtrReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: datetime | None = Field(alias="from")
    end: datetime | None = Field(alias="to")
    group_by: GroupBy
    confidence: float
    groups: list[CtrGroup]
    total: CtrGroup


class VariantInfo(BaseModel):
    variant: str
    weight: float = Field(description="Share of members, normalised.")
    source: str
    loaded: bool
    version: str | None = None
    chosen: str | None = Field(default=None, description="The model that answers by default.")
    models: list[str] = Field(default_factory=list)
    created_at: str | None = None
    loaded_at: datetime | None = None
    n_members: int | None = None
    n_items: int | None = None


class ModelsResponse(BaseModel):
    variants: list[VariantInfo]


class VariantReload(BaseModel):
    variant: str
    version: str
    previous_version: str | None
    swapped: bool = Field(description="False when the source still held the loaded version.")


class ReloadResponse(BaseModel):
    variants: list[VariantReload]


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    status: str = "ready"
    versions: dict[str, str]


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
