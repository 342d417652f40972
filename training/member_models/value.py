"""Value models: a buyer's expected purchases (distinct orders) and spend in the next H days.

* ``naive_rate``: the calibration period's pace carried forward, orders (spend) before the date
  over the days from the data's first event to it, times H: the issue's reference row;
* ``bgnbd``: BG/NBD's expected purchases times Gamma-Gamma's expected order value, both fit on
  the history before the scoring date;
* ``lightgbm``: two gradient-boosted regressors (purchases, spend) on the features and the
  BTYD predictions, one variant per objective. Only objectives whose optimum is the *mean*
  are offered (:data:`training.member_models.config.MEAN_OBJECTIVES`): the output is an
  expected value, which campaign budgets add up, so a median model (l1) is never shipped even
  where its MAE would be lower.

Spend predictions are None when the data has no prices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import polars as pl
from lightgbm import LGBMRegressor

from features.member_features import (
    OUTCOME_PURCHASES,
    OUTCOME_SPEND,
    TOTAL_ORDERS,
    TOTAL_SPEND,
)
from training.member_models.config import MemberModelConfig
from training.member_models.learners import (
    feature_columns,
    lightgbm_params,
    matrix,
    predict_in_batches,
)
from training.member_models.sampling import fit_rows
from training.member_models.snapshots import (
    CALIBRATION_DAYS,
    EXPECTED_ORDER_VALUE,
    EXPECTED_PURCHASES,
)

__all__ = ["ValueModel", "ValuePrediction", "value_variants"]

ValuePrediction = tuple[np.ndarray, np.ndarray | None]


class ValueModel(ABC):
    """Fit on training buyers (with ``purchases`` and ``spend``), predict both for others."""

    name: ClassVar[str]

    def __init__(self, horizon_days: int, *, has_prices: bool) -> None:
        self.horizon_days = horizon_days
        self.has_prices = has_prices

    @abstractmethod
    def fit(self, train: pl.DataFrame) -> None: ...

    @abstractmethod
    def predict(self, frame: pl.DataFrame) -> ValuePrediction: ...

    def describe(self) -> dict[str, Any]:
        return {}


class NaiveRateValue(ValueModel):
    name = "naive_rate"

    def fit(self, train: pl.DataFrame) -> None:
        del train

    def predict(self, frame: pl.DataFrame) -> ValuePrediction:
        per_day = self.horizon_days / frame.get_column(CALIBRATION_DAYS).to_numpy()
        purchases = frame.get_column(TOTAL_ORDERS).to_numpy() * per_day
        spend = frame.get_column(TOTAL_SPEND).to_numpy() * per_day if self.has_prices else None
        return purchases, spend


class BgnbdValue(ValueModel):
    """Nothing to fit on outcomes: the BTYD models were fit on each date's own history."""

    name = "bgnbd"

    def fit(self, train: pl.DataFrame) -> None:
        del train

    def predict(self, frame: pl.DataFrame) -> ValuePrediction:
        purchases = frame.get_column(EXPECTED_PURCHASES).to_numpy()
        if np.isnan(purchases).all():
            raise ValueError("BG/NBD could not be fit on this date's history (see 'failed')")
        if not self.has_prices:
            return purchases, None
        order_value = frame.get_column(EXPECTED_ORDER_VALUE).to_numpy()
        if np.isnan(order_value).all():
            raise ValueError("Gamma-Gamma could not be fit on this date's history (see 'failed')")
        return purchases, purchases * order_value


class LightGBMValue(ValueModel):
    name = "lightgbm"

    def __init__(
        self, horizon_days: int, *, has_prices: bool, config: MemberModelConfig, objective: str
    ) -> None:
        super().__init__(horizon_days, has_prices=has_prices)
        self.config = config
        self.objective = objective
        self.columns: list[str] = []
        self.regressors: dict[str, LGBMRegressor] = {}

    def fit(self, train: pl.DataFrame) -> None:
        rows = fit_rows(train.height, self.config.max_fit_members, self.config.seed)
        sample = train[rows]
        self.columns = feature_columns(sample)
        features = matrix(sample, self.columns)
        targets = (OUTCOME_PURCHASES, OUTCOME_SPEND) if self.has_prices else (OUTCOME_PURCHASES,)
        params = lightgbm_params(self.config.regressor_params, self.config.seed)
        for target in targets:
            regressor = LGBMRegressor(objective=self.objective, **params)
            regressor.fit(features, sample.get_column(target).to_numpy().astype(np.float64))
            self.regressors[target] = regressor

    def predict(self, frame: pl.DataFrame) -> ValuePrediction:
        def target_predictions(target: str) -> np.ndarray:
            # An l2 fit may dip below zero; a count or a spend cannot.
            values = predict_in_batches(
                self.regressors[target].predict, frame, self.columns, self.config.predict_batch
            )
            return np.maximum(values, 0.0)

        spend = target_predictions(OUTCOME_SPEND) if self.has_prices else None
        return target_predictions(OUTCOME_PURCHASES), spend

    def describe(self) -> dict[str, Any]:
        return {"objective": self.objective, **self.config.regressor_params.model_dump()}


def value_variants(
    config: MemberModelConfig, horizon_days: int, *, has_prices: bool
) -> dict[str, list[Callable[[], ValueModel]]]:
    """Each value model's variants (a factory each), tried on validation."""

    def lightgbm(objective: str) -> Callable[[], ValueModel]:
        return lambda: LightGBMValue(
            horizon_days, has_prices=has_prices, config=config, objective=objective
        )

    return {
        "naive_rate": [lambda: NaiveRateValue(horizon_days, has_prices=has_prices)],
        "bgnbd": [lambda: BgnbdValue(horizon_days, has_prices=has_prices)],
        "lightgbm": [lightgbm(objective) for objective in config.regressor_objectives],
    }
