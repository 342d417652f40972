"""Bodies of the bundle routes: complements of an item or a cart, and a member's bundles."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.schemas.base import (
    ITEM_EXAMPLE,
    MAX_CART_ITEMS,
    MAX_N,
    ExternalId,
    RecommendedItem,
    Strict,
)

__all__ = [
    "BundleItem",
    "BundleQuery",
    "BundleRequest",
    "BundleResponse",
    "MemberBundle",
    "MemberBundlesResponse",
]


class BundleQuery(Strict):
    """Query parameters of GET /v1/items/{item_id}/bundles."""

    model_config = ConfigDict(extra="ignore")

    n: int = Field(default=5, ge=1, le=MAX_N, description="How many items to propose.")


class BundleRequest(Strict):
    """Body of POST /v1/bundles: a cart, and how many complements to propose."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"item_ids": ["I00042", "I00007"], "n": 5}]}
    )

    item_ids: list[ExternalId] = Field(min_length=1, max_length=MAX_CART_ITEMS)
    n: int = Field(default=5, ge=1, le=MAX_N, description="How many items to propose.")


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
                        {**ITEM_EXAMPLE, "source": "rules", "support": 0.012,
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
