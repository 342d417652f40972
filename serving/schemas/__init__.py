"""Request and response bodies of the API (DESIGN section 5), with the examples /docs shows,
one module per group of routes.

Requests and responses are separate models: a request says what a client may send (bounded,
validated, with messages that name the field), a response what it always gets back.
"""

from serving.schemas.admin import (
    Health,
    ModelsResponse,
    Readiness,
    ReloadResponse,
    VariantInfo,
    VariantReload,
)
from serving.schemas.base import (
    MAX_BATCH_MEMBERS,
    MAX_CART_ITEMS,
    MAX_EVENTS_PER_REQUEST,
    MAX_N,
    ErrorResponse,
    ExternalId,
    RecommendedItem,
)
from serving.schemas.bundles import (
    BundleItem,
    BundleQuery,
    BundleRequest,
    BundleResponse,
    MemberBundle,
    MemberBundlesResponse,
)
from serving.schemas.events import EventIn, EventsAccepted, EventType
from serving.schemas.privacy import AuditEntryOut, AuditLogResponse, MemberErased
from serving.schemas.recommendations import (
    BatchRecommendationRequest,
    BatchRecommendationResponse,
    MemberRecommendationQuery,
    RecommendationOptions,
    RecommendationResponse,
    SimilarItemsQuery,
    SimilarItemsResponse,
)
from serving.schemas.reports import CtrGroup, CtrReport, GroupBy, Rate

__all__ = [
    "MAX_BATCH_MEMBERS",
    "MAX_CART_ITEMS",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_N",
    "AuditEntryOut",
    "AuditLogResponse",
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
    "MemberErased",
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
