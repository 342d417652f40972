"""Light configuration shared by the CLI and the training modules (no heavy imports here, so
that ``recsys --help`` stays fast)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_LIST_DEPTH",
    "DEFAULT_PROMOTION_MARGIN",
    "DEFAULT_SPLIT",
    "MODEL_NAMES",
    "RuleConfig",
    "TuningBudget",
]

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

#: Items precomputed per member into the model artifact (``recsys train --list-depth``): any
#: list of up to 50, or a storefront list of 5 diversified from 50 candidates, is then read,
#: not scored. 50 int32 + float32 per member: 40 MB per 100,000 members, memory-mapped and
#: shared by the serving workers.
DEFAULT_LIST_DEPTH = 50

#: How far, as a fraction of popularity's test figure, a version without a comparable champion
#: must beat popularity to be promoted (``recsys train --promotion-margin``).
DEFAULT_PROMOTION_MARGIN = 0.05

#: H of the member scores (``--horizon-days``): churn risk is the probability of no purchase in
#: the next H days, expected value the purchases and spend in them. 90 days is a quarter, the
#: rhythm most programs plan campaigns to.
DEFAULT_HORIZON_DAYS = 90


class TuningBudget(BaseModel):
    """How much search each model gets: whichever of the two limits is reached first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(default=8, ge=1)
    seconds: float = Field(default=60.0, gt=0)


class RuleConfig(BaseModel):
    """Thresholds of rule mining.

    A fixed ``min_support`` (a share of baskets) suits one store and fails the next: 0.5% of
    18,000 Online Retail invoices is 93 baskets, while in 870,000 baskets of a 100,000-item
    store no pair reaches 0.5%, and a rule needs the same few dozen baskets of evidence
    whatever the number of baskets. So by default (``min_support`` None) an itemset must be in
    ``min_count`` baskets, raised when more than ``max_pairs`` pairs would pass, which bounds
    the work and the rule table on stores with large baskets (``training.rules.count_threshold``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A share of baskets; None: the count threshold below, scaled to the data.
    min_support: float | None = Field(default=None, gt=0, le=1)
    #: Baskets an itemset must be in at least (when ``min_support`` is None).
    min_count: int = Field(default=20, ge=1)
    #: Most frequent pairs (when ``min_support`` is None): the count threshold rises until at
    #: most this many pairs pass.
    max_pairs: int = Field(default=20_000, ge=1)
    min_confidence: float = Field(default=0.3, ge=0, le=1)
    max_size: int = Field(default=3, ge=2, le=10)
