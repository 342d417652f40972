"""Light configuration shared by the CLI and the training modules (no heavy imports here, so
that ``recsys --help`` stays fast)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_LIST_DEPTH", "DEFAULT_SPLIT", "MODEL_NAMES", "RuleConfig", "TuningBudget"]

#: Every model, in the order they are tuned; ``training.models.MODEL_CLASSES`` follows it.
MODEL_NAMES: tuple[str, ...] = (
    "popular",
    "item_knn",
    "ease",
    "als",
    "lightfm",
    "content",
    "rerank",
)

#: Split used by ``recsys train`` when neither --split nor --test-file is given.
DEFAULT_SPLIT = "last-days:30"

#: Items precomputed per member into the bundle (``recsys train --list-depth``): any list of
#: up to 50, or a storefront list of 5 diversified from 50 candidates, is then read, not
#: scored. 50 int32 + float32 per member: 40 MB per 100,000 members, memory-mapped and shared
#: by the serving workers.
DEFAULT_LIST_DEPTH = 50


class TuningBudget(BaseModel):
    """How much search each model gets: whichever of the two limits is reached first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(default=8, ge=1)
    seconds: float = Field(default=60.0, gt=0)


class RuleConfig(BaseModel):
    """Thresholds of rule mining; the defaults suit a retailer's order history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_support: float = Field(default=0.005, gt=0, le=1)
    min_confidence: float = Field(default=0.3, ge=0, le=1)
    max_size: int = Field(default=3, ge=2, le=10)
