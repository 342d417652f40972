"""Light configuration shared by the CLI and the training modules (no heavy imports here, so
that ``recsys --help`` stays fast)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from features.errors import ConfigError

__all__ = [
    "DEFAULT_LIST_DEPTH",
    "DEFAULT_PROMOTION_MARGIN",
    "DEFAULT_SPARK_MASTER",
    "DEFAULT_SPLIT",
    "ENGINES",
    "MODEL_NAMES",
    "NEXT_BASKET_MODELS",
    "REPEAT_MODELS",
    "SPARK_MASTER_VARIABLE",
    "SPARK_MODELS",
    "TARGETS",
    "RuleConfig",
    "Target",
    "TuningBudget",
    "default_lineup",
    "parse_spark_conf",
    "spark_lineup",
]

#: Every model, in the order they are tuned; ``training.models.MODEL_CLASSES`` follows it.
MODEL_NAMES: tuple[str, ...] = (
    "popular",
    "item_knn",
    "ease",
    "als",
    "lightfm",
    "content",
    "user_knn",
    "top_personal",
    "tifu_knn",
    "repeat_explore",
    "rerank",
)

#: What a training run's lists are for (``recsys train --target``; see ``TrainConfig``).
Target = Literal["new-items", "next-basket"]
TARGETS: tuple[Target, ...] = get_args(Target)
#: Models that only rank what the member bought before (or mostly): no use when purchases
#: are excluded, the strongest guesses of a next basket.
REPEAT_MODELS: tuple[str, ...] = ("top_personal", "tifu_knn", "repeat_explore")
#: The next-basket target's default lineup: the repeat models beside the collaborative ones
#: that find items new to the member (the explore part of a basket).
NEXT_BASKET_MODELS: tuple[str, ...] = (
    "popular", "item_knn", "ease", "als", "user_knn", *REPEAT_MODELS,
)  # fmt: skip


#: What fits the models (``recsys train --engine``): this process (``implicit``, the default),
#: or Spark (``training.spark``), which writes the same model artifact.
ENGINES: tuple[str, ...] = ("implicit", "spark")
#: The models the Spark engine fits (MLlib's ALS, popularity counted in Spark): its lineup.
SPARK_MODELS: tuple[str, ...] = ("popular", "als")
#: The Spark engine's master unless ``--spark-master`` or :data:`SPARK_MASTER_VARIABLE` says.
DEFAULT_SPARK_MASTER = "local[*]"
SPARK_MASTER_VARIABLE = "RECSYS_SPARK_MASTER"


def spark_lineup(models: tuple[str, ...] | None) -> tuple[str, ...]:
    """The models of a Spark engine run: ``models`` (default: :data:`SPARK_MODELS`), which must
    be among them."""
    if not models:
        return SPARK_MODELS
    others = [name for name in models if name not in SPARK_MODELS]
    if others:
        raise ConfigError(
            f"--models: the spark engine (--engine spark) trains {' and '.join(SPARK_MODELS)} "
            f"only, not {', '.join(others)}; leave them out of --models, or use --engine implicit"
        )
    return models


def default_lineup(target: str) -> tuple[str, ...]:
    """The models a run of ``target`` tunes when none are named."""
    if target == "next-basket":
        return tuple(name for name in NEXT_BASKET_MODELS if name in MODEL_NAMES)
    return tuple(name for name in MODEL_NAMES if name not in REPEAT_MODELS)


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

    Support. A fixed ``min_support`` (a share of baskets) suits one store and fails the next:
    0.5% of 18,000 Online Retail invoices is 93 baskets, while in 870,000 baskets of a
    100,000-item store no pair reaches 0.5%, and a rule needs the same few dozen baskets of
    evidence whatever the number of baskets. So by default (``min_support`` None) an itemset
    must be in ``min_count`` baskets, raised when more than ``max_pairs`` pairs would pass,
    which bounds the work and the rule table on stores with large baskets
    (``training.rules.count_threshold``).

    Confidence. A fixed floor fails stores of small baskets: when a member's day holds 2 or 3
    items, no item's confidence reaches 0.3 even towards the best sellers (0 rules from
    11,484 baskets of a public grocery data set, and every bundle route fell back). A floor
    on lift alone (confidence relative to the consequent's base rate) fails the other way: a
    rule towards a rare item can have a high lift and still be right less often than the best
    sellers it pushes out of a list (on the Groceries baskets, the last fifth held out, lift at
    least 2 drops the hit rate@5 of rules-then-popular to 0.465, against 0.752 for the
    popular items alone). So by default
    (``min_confidence`` None) a rule must pass two tests that do not depend on the size of
    baskets: it is an association, its count more than ``min_excess_sd`` standard deviations
    above the count it would have if its antecedents and consequent were bought independently
    (a lift floor that is strict on little evidence and near 1 on much), and it is worth
    showing, its confidence at least popularity's, how often the ``baseline_rank``-th best
    seller is in the baskets of the other items (``training.rules.popularity_confidence``):
    a list of complements completed from popular items then only gains from the rule. An
    absolute ``min_confidence`` replaces both: the classic rule set of mlxtend, arules and
    pyfim.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A share of baskets; None: the count threshold below, scaled to the data.
    min_support: float | None = Field(default=None, gt=0, le=1)
    #: Baskets an itemset must be in at least (when ``min_support`` is None).
    min_count: int = Field(default=20, ge=1)
    #: Most frequent pairs (when ``min_support`` is None): the count threshold rises until at
    #: most this many pairs pass.
    max_pairs: int = Field(default=20_000, ge=1)
    #: Least P(consequent | antecedents), the only test on a rule; None: the two tests below.
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    #: Standard deviations (a Poisson count's: the square root of the expected count) by
    #: which a rule's count must exceed c(A) c(b) / N, its count were A and b independent
    #: (when ``min_confidence`` is None; 0: lift above 1).
    min_excess_sd: float = Field(default=2.0, ge=0)
    #: The best seller, by rank, whose hit chance a rule's confidence must reach (when
    #: ``min_confidence`` is None). A rule's consequent takes the place of a popular item in a
    #: list of 5, the last one for an anchor's first rule, earlier ones for the next rules: 3,
    #: the middle, kept rules-then-popular above popularity on the held-out baskets of
    #: Groceries, its small-basket stand-in and Online Retail, where 5 came within 0.0001 of
    #: popularity on Groceries and 8 fell below it (docs/metrics.md, "Which rules are kept").
    baseline_rank: int = Field(default=3, ge=1)
    max_size: int = Field(default=3, ge=2, le=10)


def parse_spark_conf(entries: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` entries (``--spark-conf``, as spark-submit's ``--conf``) as settings."""
    conf: dict[str, str] = {}
    for entry in entries or []:
        key, equals, value = entry.partition("=")
        if not equals or not key.strip().startswith("spark.") or not value.strip():
            raise ConfigError(
                f"--spark-conf {entry!r}: give a Spark setting as KEY=VALUE with a spark.* key, "
                "e.g. --spark-conf spark.driver.memory=8g"
            )
        conf[key.strip()] = value.strip()
    return conf
