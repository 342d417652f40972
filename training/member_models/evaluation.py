"""Fitting the member models on one window and judging them on the next.

Validation tries every variant of every model (:func:`validate`) and keeps, per model, the one
with the best figure (churn: Brier score; value: MAE relative to the naive rate); the test
(:func:`evaluate`) refits those kept variants on the test window. Full figures (bootstrap
intervals, reliability) are computed for the kept variants only: the others need one number.
A model that raises while fitting or predicting is recorded in ``failures`` with the step and
the error, and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import polars as pl

from features.member_features import OUTCOME_PURCHASES, OUTCOME_SPEND
from training.member_models.churn import ChurnModel
from training.member_models.config import MemberModelConfig
from training.member_models.failures import failure
from training.member_models.metrics import churn_metrics, value_metrics
from training.member_models.selection import value_score
from training.member_models.snapshots import CHURNED
from training.member_models.value import ValueModel, ValuePrediction

#: Models whose scores *are* the BTYD columns: they fail, rather than learn around, a gap.

__all__ = ["Kept", "evaluate_churn", "evaluate_value", "validate_churn", "validate_value"]

Model = TypeVar("Model", ChurnModel, ValueModel)


@dataclass
class Kept(Generic[Model]):
    """Per model: the variant kept on validation (a factory; the first variant of a model that
    failed there, so that the test still tries it), what it is, and its figures."""

    factories: dict[str, Callable[[], Model]] = field(default_factory=dict)
    described: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


def validate_churn(
    variants: dict[str, list[Callable[[], ChurnModel]]],
    train: pl.DataFrame,
    held_out: pl.DataFrame,
    config: MemberModelConfig,
    failures: list[dict[str, Any]],
) -> Kept[ChurnModel]:
    """Every churn variant fit on ``train`` and scored on ``held_out``; the best kept."""
    kept: Kept[ChurnModel] = Kept()
    labels = held_out.get_column(CHURNED).to_numpy()
    for name, factories in variants.items():
        best: tuple[float, int, np.ndarray, ChurnModel] | None = None
        for position, factory in enumerate(factories):
            fitted = _fitted("churn", name, factory, train, held_out, "validation", failures)
            if fitted is None:
                continue
            model, risk = fitted
            brier = float(np.mean((risk - labels) ** 2))
            if best is None or brier < best[0]:
                best = (brier, position, risk, model)
        kept.factories[name] = factories[0 if best is None else best[1]]
        if best is not None:
            _, _, risk, model = best
            kept.described[name] = model.describe()
            kept.figures[name] = _churn_figures(train, held_out, risk, config)
    return kept


def evaluate_churn(
    kept: Kept[ChurnModel],
    train: pl.DataFrame,
    held_out: pl.DataFrame,
    config: MemberModelConfig,
    failures: list[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The kept churn variants refit on ``train``, figures on ``held_out``."""
    figures = {}
    for name, factory in kept.factories.items():
        fitted = _fitted("churn", name, factory, train, held_out, "test", failures)
        if fitted is not None:
            figures[name] = _churn_figures(train, held_out, fitted[1], config)
    return figures


def validate_value(
    variants: dict[str, list[Callable[[], ValueModel]]],
    train: pl.DataFrame,
    held_out: pl.DataFrame,
    failures: list[dict[str, Any]],
) -> Kept[ValueModel]:
    """Every value variant fit on ``train`` and scored on ``held_out``; the best kept (the
    naive rate first: the others are measured against it)."""
    kept: Kept[ValueModel] = Kept()
    for name, factories in variants.items():
        best: tuple[float, int, dict[str, Any], ValueModel] | None = None
        for position, factory in enumerate(factories):
            fitted = _fitted("value", name, factory, train, held_out, "validation", failures)
            if fitted is None:
                continue
            model, prediction = fitted
            figures = _value_figures(held_out, prediction)
            score = value_score(figures, kept.figures.get("naive_rate"))
            if best is None or score < best[0]:
                best = (score, position, figures, model)
        kept.factories[name] = factories[0 if best is None else best[1]]
        if best is not None:
            _, _, figures, model = best
            kept.described[name] = model.describe()
            kept.figures[name] = figures
    return kept


def evaluate_value(
    kept: Kept[ValueModel],
    train: pl.DataFrame,
    held_out: pl.DataFrame,
    failures: list[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The kept value variants refit on ``train``, figures on ``held_out``."""
    figures = {}
    for name, factory in kept.factories.items():
        fitted = _fitted("value", name, factory, train, held_out, "test", failures)
        if fitted is not None:
            figures[name] = _value_figures(held_out, fitted[1])
    return figures


def fit_and_predict(
    factory: Callable[[], Model], train: pl.DataFrame, frame: pl.DataFrame
) -> tuple[Model, Any]:
    """A fresh model from ``factory``, fit on ``train``, and its predictions for ``frame``."""
    model = factory()
    model.fit(train)
    return model, model.predict(frame)


def _fitted(
    task: str,
    name: str,
    factory: Callable[[], Model],
    train: pl.DataFrame,
    frame: pl.DataFrame,
    step: str,
    failures: list[dict[str, Any]],
) -> tuple[Model, Any] | None:
    try:
        return fit_and_predict(factory, train, frame)
    except Exception as error:  # recorded, and the other models go on
        failures.append(failure(f"{name} ({task})", error, step))
        return None


def _churn_figures(
    train: pl.DataFrame, held_out: pl.DataFrame, risk: np.ndarray, config: MemberModelConfig
) -> dict[str, Any]:
    return churn_metrics(
        held_out.get_column(CHURNED).to_numpy(),
        risk,
        train_base_rate=float(train.get_column(CHURNED).mean()),  # type: ignore[arg-type]
        resamples=config.bootstrap_resamples,
        seed=config.seed,
    )


def _value_figures(held_out: pl.DataFrame, prediction: ValuePrediction) -> dict[str, Any]:
    purchases, spend = prediction
    return value_metrics(
        held_out.get_column(OUTCOME_PURCHASES).to_numpy(),
        purchases,
        held_out.get_column(OUTCOME_SPEND).to_numpy(),
        spend,
    )
