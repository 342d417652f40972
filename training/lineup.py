"""The lineup's fits after tuning: each model fit on train and measured on test (step 4 of
:mod:`training.train`), refit on all interactions (step 5), and the served models' FAISS
indexes.

A model that fails here is recorded in :class:`Failures` and left out; the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.dataset import TrainingData
from training.evaluate import (
    EvaluationTask,
    evaluate_by_segment,
    evaluate_recommended,
    recommended_lists,
)
from training.index import IndexConfig, ItemIndex, measure_recall
from training.metrics import DEFAULT_KS
from training.models import FitModel, Recommender, fit_model
from training.models.base import failure_reason
from training.run_record import long_tail

__all__ = ["Failures", "Progress", "TestFigures", "build_indexes", "evaluate_on_test", "refit"]

#: Where a run reports what it is doing (the CLI's progress line).
Progress = Callable[[str], None]

#: Members whose vectors query the approximate index to measure its recall.
_RECALL_QUERIES = 1000


@dataclass
class Failures:
    """Every failure of the run, by model and stage, in the order they happened."""

    records: list[dict[str, str]] = field(default_factory=list)

    def add(self, model: str, stage: str, reason: str) -> None:
        self.records.append({"model": model, "stage": stage, "reason": reason})


@dataclass
class TestFigures:
    """Step 4's figures: each model's train-only fit measured on the test split."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    by_segment: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    long_tail: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)


def evaluate_on_test(
    params: dict[str, dict[str, Any]],
    data: TrainingData,
    task: EvaluationTask,
    popularity_order: np.ndarray,
    failures: Failures,
    progress: Progress,
    fit: FitModel = fit_model,
) -> tuple[TestFigures, dict[str, Recommender]]:
    """Fit each model on train with its params and measure it on test; failures recorded.
    ``popularity_order``: training items, most interacted first (for the long-tail shares)."""
    report, models = TestFigures(), {}
    for name, model_params in params.items():
        progress(f"fitting and evaluating {name}")
        started = time.perf_counter()
        try:
            models[name] = fit(name, model_params, data)
            fitted = time.perf_counter()
            recommended = recommended_lists(models[name], task, max(DEFAULT_KS))
            report.metrics[name] = evaluate_recommended(recommended, task)
        except Exception as error:
            failures.add(name, "test fit", failure_reason(error))
            models.pop(name, None)
            continue
        if task.member_segment_names is not None:
            report.by_segment[name] = evaluate_by_segment(recommended, task)
        report.long_tail[name] = long_tail(recommended, popularity_order)
        report.timings[name] = {
            "fit_s": fitted - started,
            "evaluate_s": time.perf_counter() - fitted,
        }
    return report, models


def refit(
    params: dict[str, dict[str, Any]],
    data: TrainingData,
    failures: Failures,
    progress: Progress,
    fit: FitModel = fit_model,
) -> tuple[dict[str, Recommender], dict[str, float]]:
    """Step 5: every model fit again on all interactions with its tuned params."""
    models, seconds = {}, {}
    for name, model_params in params.items():
        progress(f"refitting {name} on all interactions")
        started = time.perf_counter()
        try:
            models[name] = fit(name, model_params, data)
        except Exception as error:
            failures.add(name, "refit", failure_reason(error))
            continue
        seconds[name] = time.perf_counter() - started
    return models, seconds


def build_indexes(
    models: dict[str, Recommender], data: TrainingData, config: IndexConfig
) -> tuple[dict[str, ItemIndex], dict[str, dict[str, Any]]]:
    """A FAISS index per factor model, and the approximate index's recall@10 against exact,
    queried by the vectors of the first members of ``data``."""
    indexes, report = {}, {}
    members = np.arange(min(_RECALL_QUERIES, data.n_members))
    for name, model in models.items():
        vectors = model.item_vectors()
        if vectors is None:
            continue
        indexes[name] = ItemIndex.build(vectors, config, metric="ip")
        queries = model.member_vectors(members, data.matrix[members])
        recall = (
            _recall_against_exact(indexes[name], vectors, queries, k=10)
            if indexes[name].kind == config.kind
            else measure_recall(vectors, queries, config, k=10)
        )
        report[name] = {
            "kind": indexes[name].kind,
            "items": len(vectors),
            f"{config.kind}_recall@10": recall,
        }
    return indexes, report


def _recall_against_exact(
    index: ItemIndex, vectors: np.ndarray, queries: np.ndarray, k: int
) -> float:
    """:func:`measure_recall` of an approximate index that is already built.

    ``measure_recall`` builds its own copy of the approximate index; for the index the model
    artifact ships that doubled the indexing time (an HNSW graph over 100k items takes
    seconds), and it measured a second graph rather than the one served.
    """
    exact = ItemIndex.build(vectors, IndexConfig(exact_below=len(vectors) + 1), index.metric)
    exact_ids, _ = exact.search(queries, k)
    approximate_ids, _ = index.search(queries, k)
    relevant = exact_ids >= 0
    found = (exact_ids[:, :, None] == approximate_ids[:, None, :]).any(axis=2) & relevant
    return float(found.sum() / max(relevant.sum(), 1))
