"""Bodies of the recommendation routes: a member's list, a batch of members, similar items."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from serving.schemas.base import (
    ITEM_EXAMPLE,
    MAX_BATCH_MEMBERS,
    MAX_LIKED,
    MAX_N,
    ExternalId,
    Served,
    Strict,
)

__all__ = [
    "BatchRecommendationRequest",
    "BatchRecommendationResponse",
    "MemberRecommendationQuery",
    "RecommendationOptions",
    "RecommendationResponse",
    "SimilarItemsQuery",
    "SimilarItemsResponse",
]


class RecommendationOptions(Strict):
    """What every recommendation request may ask for."""

    n: int = Field(default=10, ge=1, le=MAX_N, description="List length (exact when the "
                   "filtered catalog has that many items).")  # fmt: skip
    category: ExternalId | None = Field(
        default=None, description="Only items of this category.", examples=["Snacks"]
    )
    exclude_purchased: bool | None = Field(
        default=None,
        description="Leave out items the member bought (in training and since, via events): "
        "true every one, false none. Default: every one, except that a model artifact trained "
        "for the next basket (--target next-basket) keeps items members buy again "
        "(repeatable: docs/buy-again.md).",
    )
    model: ExternalId | None = Field(
        default=None,
        description="A model of the loaded model artifact by name (default: the artifact's "
        "chosen one), to compare models.",
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


class SimilarItemsQuery(Strict):
    """Query parameters of GET /v1/items/{item_id}/similar."""

    model_config = ConfigDict(extra="ignore")

    n: int = Field(default=10, ge=1, le=MAX_N, description="List length.")
    model: ExternalId | None = Field(
        default=None,
        description="A model that knows item similarity (default: the chosen one, else the "
        "first of item_knn, ease, als, lightfm, content in the model artifact).",
    )


class BatchRecommendationRequest(RecommendationOptions):
    """Body of POST /v1/recommendations/batch."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"member_ids": ["M000001", "M000002"], "n": 5}]}
    )

    member_ids: list[ExternalId] = Field(min_length=1, max_length=MAX_BATCH_MEMBERS)


class RecommendationResponse(Served):
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
                    "items": [ITEM_EXAMPLE],
                }
            ]
        }
    )

    member_id: str


class BatchRecommendationResponse(BaseModel):
    results: list[RecommendationResponse]


class SimilarItemsResponse(Served):
    item_id: str
