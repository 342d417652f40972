"""``recsys train``: tune every model on validation, evaluate on test, write the bundle.

The protocol, in order, so that the test set is only ever used for the final report:

1. the caller's split gives ``train`` and ``test``;
2. a validation split is carved from ``train`` alone (the same kind of split; for time-based
   splits, the last stretch of training time as long as the test window);
3. each model is tuned on that validation split (:mod:`training.tune`) and the chosen model is
   the best one on validation by the primary metric;
4. every model is refit on the whole of ``train`` with its tuned parameters and evaluated on
   ``test``, overall and per member segment, beside the popularity baseline;
5. the bundle (all models, FAISS indexes, popularity, histories, catalog) is written with
   ``metrics.json`` and ``report.html``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features import columns as col
from features.baskets import baskets_from_interactions
from features.errors import ConfigError
from features.matrices import EventWeights
from features.members import SEGMENT, compute_member_profiles
from features.splits import (
    LeaveLastOutSpec,
    RatioSplitSpec,
    Split,
    SplitSpec,
    temporal_split,
)
from training.config import MODEL_NAMES, RuleConfig, TuningBudget
from training.dataset import TrainingData, build_training_data
from training.evaluate import (
    EvaluationTask,
    evaluate_by_segment,
    evaluate_recommended,
    item_category_codes,
    recommended_lists,
)
from training.index import IndexConfig, ItemIndex, measure_recall
from training.metrics import DEFAULT_KS
from training.models import ModelFitError, Recommender, model_class
from training.models.popular import PopularityRecommender
from training.rules import association_rules, count_threshold
from training.rules_quality import complement_quality
from training.tune import TuningResult, tune_model

__all__ = ["TrainConfig", "TrainOutcome", "carve_validation", "run_training"]

#: Bounds on the validation window of time-based splits, in days.
_MIN_VALIDATION_DAYS, _MAX_VALIDATION_DAYS = 7, 180
_LONG_TAIL_BINS = 10

Progress = Callable[[str], None]


class TrainConfig(BaseModel):
    """Everything ``recsys train`` decides besides the data; logged with the run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[str, ...] = MODEL_NAMES
    primary_metric: str = "ndcg@10"
    budget: TuningBudget = TuningBudget()
    relevant_events: tuple[str, ...] = ("purchase",)
    new_items_only: bool = True
    event_weights: EventWeights = EventWeights()
    half_life_days: float | None = Field(default=None, gt=0)
    max_eval_members: int | None = Field(default=50_000, ge=1)
    seed: int = 42
    index: IndexConfig = IndexConfig()
    #: Frequently-bought-together rules mined from the training purchases into the bundle.
    rules: RuleConfig = RuleConfig()

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: tuple[str, ...]) -> tuple[str, ...]:
        if not models:
            raise ConfigError("train at least one model")
        for name in models:
            model_class(name)
        return models

    @field_validator("primary_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        base, _, k = metric.partition("@")
        known = ("precision", "recall", "f1", "ndcg", "map", "hit_rate")
        if base not in known or (k and int(k) not in DEFAULT_KS) or (not k and base != "map"):
            raise ConfigError(
                f"unknown primary metric {metric!r}; use one of {', '.join(known)} at "
                f"k in {DEFAULT_KS}, e.g. ndcg@10, or map"
            )
        return metric


@dataclass
class TrainOutcome:
    """What a training run produced, in memory, for the bundle writer and the trackers."""

    metrics: dict[str, Any]
    models: dict[str, Recommender]
    data: TrainingData
    test_task: EvaluationTask
    indexes: dict[str, ItemIndex] = field(default_factory=dict)
    #: Association rules of the training purchases (``training.rules.RULE_COLUMNS``).
    rules: pl.DataFrame | None = None


def carve_validation(train: pl.DataFrame, test: pl.DataFrame, spec: SplitSpec | None) -> Split:
    """A validation split of ``train`` alone, shaped like the train/test split.

    Random splits are repeated on ``train``; time-based splits and explicit test files become
    a temporal split whose validation window is as long as the test window (within 7-180 days).
    """
    if isinstance(spec, RatioSplitSpec | LeaveLastOutSpec):
        return spec.split(train)
    stamps = test.get_column(col.TIMESTAMP)
    window = (stamps.max() - stamps.min()) if test.height else timedelta(days=30)  # type: ignore[operator]
    days = min(max(window.days, _MIN_VALIDATION_DAYS), _MAX_VALIDATION_DAYS)
    return temporal_split(train, last_days=days)


def _segments_of(interactions: pl.DataFrame, members: pl.DataFrame | None) -> pl.DataFrame:
    profiles = compute_member_profiles(interactions, members=members)
    return profiles.select(col.MEMBER_ID, SEGMENT)


def _training_data(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None,
    members: pl.DataFrame | None,
    config: TrainConfig,
) -> tuple[TrainingData, pl.DataFrame]:
    segments = _segments_of(interactions, members)
    data = build_training_data(
        interactions,
        items=items,
        member_segment_of=segments,
        weights=config.event_weights,
        half_life_days=config.half_life_days,
    )
    return data, segments


def _task(
    data: TrainingData,
    test: pl.DataFrame,
    items: pl.DataFrame | None,
    segments: pl.DataFrame,
    config: TrainConfig,
) -> EvaluationTask:
    return EvaluationTask.from_split(
        data,
        test,
        relevant_events=config.relevant_events,
        new_items_only=config.new_items_only,
        item_categories=(
            item_category_codes(items, data.item_ids)
            if items is not None and col.CATEGORY in items.columns
            else None
        ),
        member_segment_of=segments,
        max_members=config.max_eval_members,
        seed=config.seed,
    )


def _long_tail(recommended: np.ndarray, popularity_order: np.ndarray) -> list[float]:
    """Share of recommended slots per item-popularity decile (most popular decile first)."""
    decile = np.empty_like(popularity_order)
    decile[popularity_order] = (
        np.arange(len(popularity_order)) * _LONG_TAIL_BINS // max(len(popularity_order), 1)
    )
    shown = recommended[:, :10].ravel()
    shown = shown[shown >= 0]
    counts = np.bincount(decile[shown], minlength=_LONG_TAIL_BINS)
    return (counts / max(counts.sum(), 1)).tolist()


def _catalog_long_tail(matrix: sp.csr_matrix, popularity_order: np.ndarray) -> list[float]:
    interactions = np.asarray((matrix > 0).sum(axis=0)).ravel()[popularity_order]
    bins = np.array_split(interactions, _LONG_TAIL_BINS)
    total = max(interactions.sum(), 1)
    return [float(part.sum() / total) for part in bins]


def _tune_all(
    data: TrainingData, task: EvaluationTask, config: TrainConfig, progress: Progress
) -> dict[str, TuningResult]:
    results: dict[str, TuningResult] = {}
    for name in config.models:
        progress(f"tuning {name} on validation")
        try:
            results[name] = tune_model(
                model_class(name), data, task, config.primary_metric, config.budget, config.seed
            )
        except ModelFitError as exc:
            progress(f"skipping {name}: {exc}")
    if not results:
        raise ConfigError("no model could be fit on the validation split; see the messages above")
    return results


def _build_indexes(
    models: dict[str, Recommender], task: EvaluationTask, config: TrainConfig
) -> tuple[dict[str, ItemIndex], dict[str, dict[str, Any]]]:
    """A FAISS index per factor model, and the approximate index's recall@10 against exact."""
    indexes, report = {}, {}
    for name, model in models.items():
        vectors = model.item_vectors()
        if vectors is None:
            continue
        indexes[name] = ItemIndex.build(vectors, config.index, metric="ip")
        queries = model.member_vectors(task.members[:1000], task.histories[:1000])
        recall = (
            _recall_against_exact(indexes[name], vectors, queries, k=10)
            if indexes[name].kind == config.index.kind
            else measure_recall(vectors, queries, config.index, k=10)
        )
        report[name] = {
            "kind": indexes[name].kind,
            "items": len(vectors),
            f"{config.index.kind}_recall@10": recall,
        }
    return indexes, report


def _recall_against_exact(
    index: ItemIndex, vectors: np.ndarray, queries: np.ndarray, k: int
) -> float:
    """:func:`measure_recall` of an approximate index that is already built.

    ``measure_recall`` builds its own copy of the approximate index; for the index the bundle
    ships that doubled the indexing time (an HNSW graph over 100k items takes seconds), and it
    measured a second graph rather than the one served.
    """
    exact = ItemIndex.build(vectors, IndexConfig(exact_below=len(vectors) + 1), index.metric)
    exact_ids, _ = exact.search(queries, k)
    approximate_ids, _ = index.search(queries, k)
    relevant = exact_ids >= 0
    found = (exact_ids[:, :, None] == approximate_ids[:, None, :]).any(axis=2) & relevant
    return float(found.sum() / max(relevant.sum(), 1))


def _tune_on_validation(
    split: Split,
    spec: SplitSpec | None,
    config: TrainConfig,
    items: pl.DataFrame | None,
    members: pl.DataFrame | None,
    progress: Progress,
) -> tuple[dict[str, TuningResult], dict[str, int]]:
    """Steps 2 and 3: the tuning results and the validation split's description.

    A function of its own so that the carved frames, their matrix and their task are freed on
    return, before the whole training split's are built: at 20M events they hold about 2 GB
    that the final fits, the evaluation and the bundle would otherwise carry along.
    """
    validation = carve_validation(split.train, split.test, spec)
    progress("building the validation split")
    data, segments = _training_data(validation.train, items, members, config)
    task = _task(data, validation.test, items, segments, config)
    return _tune_all(data, task, config, progress), validation.describe()


def run_training(
    split: Split,
    spec: SplitSpec | None,
    config: TrainConfig,
    items: pl.DataFrame | None = None,
    members: pl.DataFrame | None = None,
    progress: Progress = lambda _: None,
) -> TrainOutcome:
    """Tune on validation, refit on train, evaluate on test; see the module docstring."""
    tuned, validation_counts = _tune_on_validation(split, spec, config, items, members, progress)
    chosen = max(tuned, key=lambda name: tuned[name].value)

    progress("fitting the tuned models on the whole training split")
    data, segments = _training_data(split.train, items, members, config)
    test_task = _task(data, split.test, items, segments, config)
    popularity_order = np.argsort(-np.asarray((data.matrix > 0).sum(axis=0)).ravel(), kind="stable")
    models: dict[str, Recommender] = {}
    test_metrics, by_segment, long_tail, timings = {}, {}, {}, {}
    for name, result in tuned.items():
        progress(f"fitting and evaluating {name}")
        started = time.perf_counter()
        models[name] = model_class(name)(**result.params).fit(data)
        fitted = time.perf_counter()
        recommended = recommended_lists(models[name], test_task, max(DEFAULT_KS))
        test_metrics[name] = evaluate_recommended(recommended, test_task)
        if test_task.member_segment_names is not None:
            by_segment[name] = evaluate_by_segment(recommended, test_task)
        long_tail[name] = _long_tail(recommended, popularity_order)
        timings[name] = {
            "tune_s": result.seconds,
            "trials": result.trials,
            "fit_s": fitted - started,
            "evaluate_s": time.perf_counter() - fitted,
        }
    if PopularityRecommender.name not in models:
        models[PopularityRecommender.name] = PopularityRecommender(by_segment=True).fit(data)
    indexes, index_report = _build_indexes(models, test_task, config)
    baskets = baskets_from_interactions(data.interactions)
    rules = association_rules(baskets, config.rules)
    metrics = {
        "chosen": chosen,
        "primary_metric": config.primary_metric,
        "protocol": {
            "split": _describe_spec(spec),
            "validation": f"carved from train: {validation_counts}",
            **split.describe(),
            "evaluated_members": test_task.n_members,
            "relevant_events": list(config.relevant_events),
            "new_items_only": config.new_items_only,
            "exclude": "purchased in train",
        },
        "models": test_metrics,
        "validation": {name: result.validation for name, result in tuned.items()},
        "params": {name: result.params for name, result in tuned.items()},
        "segments": by_segment,
        "segment_sizes": _segment_sizes(segments),
        "long_tail": {
            "catalog": _catalog_long_tail(data.matrix, popularity_order),
            "models": long_tail,
        },
        "index": index_report,
        "rules": {
            "baskets": baskets.n_baskets,
            "min_count": count_threshold(baskets, config.rules),
            "rules": rules.height,
            "test": complement_quality(rules, baskets, baskets_from_interactions(split.test)),
        },
        "timings": timings,
        "config": config.model_dump(mode="json"),
    }
    return TrainOutcome(metrics, models, data, test_task, indexes, rules)


def _describe_spec(spec: SplitSpec | None) -> str:
    return "explicit test file" if spec is None else repr(spec)


def _segment_sizes(segments: pl.DataFrame) -> dict[str, int]:
    counts = segments.group_by(SEGMENT).len()
    return {str(name): int(count) for name, count in counts.iter_rows()}
