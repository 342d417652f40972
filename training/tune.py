"""Hyperparameter search on a validation split carved from the training data only.

Each model has a search space (an optuna sampling function). A study starts with the model's
default parameters as its first trial, so tuning can only improve on the defaults as measured on
validation, then samples with a seeded TPE sampler until the trial or time budget runs out.
The test set is never seen here: the caller hands in a validation task built from training
interactions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from training.config import TuningBudget
from training.dataset import TrainingData
from training.evaluate import EvaluationTask, evaluate_model
from training.models import FitModel, ModelFitError, Recommender, fit_model
from training.models.base import failure_reason

__all__ = ["SEARCH_SPACES", "TuningBudget", "TuningResult", "tune_model"]

SearchSpace = Callable[[optuna.Trial], dict[str, Any]]


def _popular(trial: optuna.Trial) -> dict[str, Any]:
    window = trial.suggest_categorical("window_days", [0, 14, 30, 90, 180])
    return {
        "window_days": window or None,
        "by_segment": trial.suggest_categorical("by_segment", [False, True]),
    }


def _item_knn(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "similarity": trial.suggest_categorical("similarity", ["cosine", "bm25"]),
        "neighbors": trial.suggest_int("neighbors", 20, 400, log=True),
    }


def _ease(trial: optuna.Trial) -> dict[str, Any]:
    return {"l2": trial.suggest_float("l2", 10.0, 5000.0, log=True)}


def _als(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "factors": trial.suggest_categorical("factors", [32, 64, 128]),
        "regularization": trial.suggest_float("regularization", 1e-3, 1.0, log=True),
        "alpha": trial.suggest_float("alpha", 0.5, 50.0, log=True),
        "iterations": trial.suggest_int("iterations", 8, 25),
    }


def _lightfm(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "no_components": trial.suggest_categorical("no_components", [32, 64]),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1, log=True),
        "epochs": trial.suggest_int("epochs", 10, 40),
        "item_alpha": trial.suggest_float("item_alpha", 1e-7, 1e-4, log=True),
    }


def _content(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "history_weighting": trial.suggest_categorical("history_weighting", ["weights", "binary"])
    }


def _user_knn(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "neighbors": trial.suggest_int("neighbors", 10, 400, log=True),
        "weighting": trial.suggest_categorical("weighting", ["binary", "weights"]),
        "exponent": trial.suggest_float("exponent", 0.5, 4.0),
    }


def _top_personal(trial: optuna.Trial) -> dict[str, Any]:
    half_life = trial.suggest_categorical("half_life_days", [0, 30, 90, 180, 365])
    return {"half_life_days": half_life or None}


def _tifu_knn(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "neighbors": trial.suggest_int("neighbors", 50, 600, log=True),
        "within_decay": trial.suggest_float("within_decay", 0.5, 1.0),
        "group_decay": trial.suggest_float("group_decay", 0.3, 1.0),
        "alpha": trial.suggest_float("alpha", 0.0, 1.0),
        "group_count": trial.suggest_int("group_count", 2, 12),
    }


def _repeat_explore(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "rebuy_weight": trial.suggest_float("rebuy_weight", 0.0, 1.5),
        "trend_weight": trial.suggest_float("trend_weight", 0.0, 1.5),
        "trend_days": trial.suggest_categorical("trend_days", [30.0, 60.0, 90.0]),
        "explore_neighbors": trial.suggest_int("explore_neighbors", 20, 400, log=True),
    }


SEARCH_SPACES: dict[str, SearchSpace] = {
    "popular": _popular,
    "item_knn": _item_knn,
    "ease": _ease,
    "als": _als,
    "lightfm": _lightfm,
    "content": _content,
    "user_knn": _user_knn,
    "top_personal": _top_personal,
    "tifu_knn": _tifu_knn,
    "repeat_explore": _repeat_explore,
}


@dataclass
class TuningResult:
    """The outcome of one model's search on validation."""

    model: str
    params: dict[str, Any]
    value: float
    validation: dict[str, float]
    trials: int
    seconds: float
    failures: list[str] = field(default_factory=list)


def _trial_params(model: type[Recommender], trial: optuna.Trial) -> dict[str, Any]:
    space = SEARCH_SPACES.get(model.name)
    return space(trial) if space else {}


def tune_model(
    model: type[Recommender],
    data: TrainingData,
    validation: EvaluationTask,
    primary_metric: str,
    budget: TuningBudget,
    seed: int = 42,
    fit: FitModel = fit_model,
) -> TuningResult:
    """Search ``model``'s parameters on ``validation``; the defaults are always trial one.

    A trial whose fit fails (a :class:`ModelFitError`, e.g. EASE on too large a catalog, or
    any library error) is recorded in ``failures`` with its parameters; if every trial fails,
    the first failure is raised.
    ``fit`` fits each trial's model (default: here; the Spark engine's fits in Spark).
    """
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    defaults = model.Params().model_dump()
    if model.name in SEARCH_SPACES:
        study.enqueue_trial(_as_trial_values(model.name, defaults))
    metrics_of: dict[int, dict[str, float]] = {}
    failures: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        params = _trial_params(model, trial)
        try:
            fitted = fit(model.name, params, data)
        except Exception as exc:  # recorded and reported by the caller, never the run's end
            failures.append(f"{params}: {failure_reason(exc)}")
            raise optuna.TrialPruned(str(exc)) from exc
        metrics = evaluate_model(fitted, validation)
        metrics_of[trial.number] = metrics
        return metrics[primary_metric]

    started = time.perf_counter()
    trials = budget.trials if model.name in SEARCH_SPACES else 1
    study.optimize(objective, n_trials=trials, timeout=budget.seconds, catch=())
    elapsed = time.perf_counter() - started
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise ModelFitError(failures[0] if failures else f"{model.name}: no trial completed")
    best = study.best_trial
    return TuningResult(
        model=model.name,
        params=model(**_trial_params(model, optuna.trial.FixedTrial(best.params))).get_params(),
        value=best.value if best.value is not None else float("nan"),
        validation=metrics_of[best.number],
        trials=len(study.trials),
        seconds=elapsed,
        failures=failures,
    )


def _as_trial_values(name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The default parameters in the search space's own encoding (``None`` window -> 0)."""
    values = dict(defaults)
    if name == "popular":
        values["window_days"] = defaults["window_days"] or 0
    if name == "top_personal":
        values["half_life_days"] = defaults["half_life_days"] or 0
    return values
