"""What member scoring depends on besides the data: seed, sample sizes, windows, the grids.

Defaults are the ones measured in docs/benchmarks.md ("Member models on Online Retail" and
"Member scoring"): fits on at most 100,000 members keep 1M members within two minutes (a
churn rate from 100,000 members is within 0.003 of the population's, finer than any model here
can use), and with 200 bootstrap resamples an interval's ends move by about 0.001 of AUC from
one seed to another (standard deviation over 20 seeds, 3,362 members).
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.errors import ConfigError
from features.members import SegmentConfig

__all__ = ["MEAN_OBJECTIVES", "LightGBMParams", "MemberModelConfig"]

#: LightGBM regression objectives whose optimum is the mean (l1's is the median).
MEAN_OBJECTIVES: Final[tuple[str, ...]] = ("l2", "poisson", "tweedie")


class LightGBMParams(BaseModel):
    """One point of the LightGBM grids (classifier and regressors share them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_leaves: int = Field(default=15, ge=2)
    n_estimators: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    min_child_samples: int = Field(default=50, ge=1)


_CLASSIFIER_GRID = (
    LightGBMParams(num_leaves=7, n_estimators=150),
    LightGBMParams(num_leaves=31, n_estimators=150),
    LightGBMParams(num_leaves=7, n_estimators=400, learning_rate=0.02, min_child_samples=100),
)


class MemberModelConfig(BaseModel):
    """Settings of :func:`training.member_models.score_members`.

    * ``seed``: every sample, split and bootstrap draws from it, so a run is reproducible;
    * ``max_fit_members``: members per fit at most (a seeded sample beyond it);
    * ``bootstrap_resamples``: resamples of the 95% intervals of ROC and PR AUC;
    * ``max_pooled_windows``: the most windows a fit pools: validation fits on windows 3, 4, ..,
      test on 2, 3, .., shipping on 1, 2, .., each as many as the data has up to this number
      (more members to learn from, and seasons averaged instead of the last one's taken);
    * ``min_history_days`` and ``min_window_buyers``: a window is usable when its feature date
      has at least this much history before it and this many buyers;
    * ``validation_share``: the share of window 2's members held out to validate on when the
      data is too short for a third window;
    * the grids: tried on validation only, the best one refit for test and shipping;
    * ``segments``: the lifecycle segments' thresholds (the ``segment`` column).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=42, ge=0)
    max_fit_members: int = Field(default=100_000, ge=100)
    bootstrap_resamples: int = Field(default=200, ge=10)
    max_pooled_windows: int = Field(default=1, ge=1)
    min_history_days: float = Field(default=30.0, gt=0)
    min_window_buyers: int = Field(default=30, ge=2)
    validation_share: float = Field(default=0.3, gt=0, lt=1)
    predict_batch: int = Field(default=250_000, ge=1_000)
    classifier_grid: tuple[LightGBMParams, ...] = Field(default=_CLASSIFIER_GRID, min_length=1)
    regressor_params: LightGBMParams = LightGBMParams()
    regressor_objectives: tuple[str, ...] = MEAN_OBJECTIVES
    logistic_c: tuple[float, ...] = Field(default=(0.1, 1.0), min_length=1)
    segments: SegmentConfig = SegmentConfig()

    @field_validator("regressor_objectives")
    @classmethod
    def _mean_objectives(cls, objectives: tuple[str, ...]) -> tuple[str, ...]:
        wrong = [name for name in objectives if name not in MEAN_OBJECTIVES]
        if wrong or not objectives:
            raise ConfigError(
                f"regressor_objectives must be some of {MEAN_OBJECTIVES} (objectives that "
                f"estimate the mean: the output is an expected value), got {objectives}"
            )
        return objectives
