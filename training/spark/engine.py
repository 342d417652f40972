"""``recsys train --engine spark``: :mod:`training.train`'s protocol with the models fit in Spark.

The steps and the figures are those of :func:`training.train.run_training`, by its own pieces:
the same validation split carved from train (:mod:`features.split_shapes`), the same tuning
(:func:`training.tune.tune_model`, each trial a fit in Spark), the same evaluation tasks,
lineup, refit on all interactions, FAISS indexes and ``metrics.json`` (plus ``engine``: Spark,
its master and version). Only the fits differ: each of the three (validation's train, the test
split's train, all interactions) is a :func:`~training.spark.fit.spark_fit`, whose matrix,
ALS, popularity and rule itemsets come from Spark. The lineup is at most
:data:`~training.config.SPARK_MODELS`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from features import columns as col
from features.baskets import Baskets, baskets_from_interactions
from features.split_shapes import shape_numbers
from features.splits import Split, SplitSpec
from training.artifact import data_fingerprint
from training.config import spark_lineup
from training.dataset import TrainingData
from training.lineup import Failures, Progress, TestFigures, build_indexes, evaluate_on_test, refit
from training.models import Recommender
from training.models.popular import PopularityRecommender, fallback_popularity
from training.rules import MinedRules
from training.run_record import (
    catalog_long_tail,
    describe_spec,
    mined_rules_report,
    refit_record,
    segment_sizes,
    timings,
)
from training.spark.fit import SparkFit, spark_fit
from training.spark.rows import FitRows
from training.spark.session import engine_record
from training.spark.validate import SparkTable
from training.train import (
    TrainConfig,
    TrainOutcome,
    all_interactions,
    choose_model,
    evaluation_task,
    segments_of_members,
    tune_all,
    validation_split,
)
from training.tune import TuningResult

__all__ = ["train_in_spark"]

_BASELINE = PopularityRecommender.name


@dataclass(frozen=True)
class _Tested:
    """Step 4's outcome: the test figures and what ``metrics.json`` says about the train fit."""

    report: TestFigures
    evaluated_members: int
    catalog_tail: list[float]
    train_baskets: Baskets
    train_rules: MinedRules


@dataclass(frozen=True)
class _Served:
    """What the model artifact serves: the models, their fit's data and segments, the rules."""

    models: dict[str, Recommender]
    data: TrainingData
    segments: pl.DataFrame
    rules: pl.DataFrame
    refit_seconds: dict[str, float]


class _Fits:
    """Opens the fits of one run over a Spark load's table (frames cut from the driver's copy,
    with row numbers)."""

    def __init__(
        self,
        interactions: SparkTable,
        config: TrainConfig,
        items: pl.DataFrame | None,
        members: pl.DataFrame | None,
    ) -> None:
        self._interactions = interactions
        self._config = config
        self._items = items
        self._members = members

    def open(
        self, first: pl.DataFrame, then: pl.DataFrame | None = None
    ) -> tuple[AbstractContextManager[SparkFit], pl.DataFrame]:
        """The fit of ``first`` then ``then`` (open it with ``with``) and its member segments."""
        frame = _without_rows(first if then is None else all_interactions(Split(first, then)))
        segments = segments_of_members(frame, self._members)
        fit = spark_fit(
            self._interactions.table.sparkSession,
            self._interactions.table,
            FitRows.of(self._interactions.row_numbers, first, then),
            frame,
            items=self._items,
            segments=segments,
            weights=self._config.event_weights,
            half_life_days=self._config.half_life_days,
        )
        return fit, segments


def _without_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame as the Polars loader gives it: the file row number was the engine's only."""
    return frame.drop(col.ROW_NUMBER, strict=False)


def train_in_spark(
    interactions: SparkTable,
    split: Split,
    spec: SplitSpec | None,
    config: TrainConfig,
    items: pl.DataFrame | None = None,
    members: pl.DataFrame | None = None,
    progress: Progress = lambda _: None,
) -> TrainOutcome:
    """:func:`training.train.run_training` with the fits in Spark (see the module docstring).

    ``interactions``: a Spark load's table (:attr:`SparkInteractions.spark`); ``split``: frames
    cut from the load's Polars frame, row numbers kept, so that the fits find their rows in
    Spark's table.
    """
    spark_lineup(config.models)
    fits = _Fits(interactions, config, items, members)
    failures = Failures()
    validation, shape = validation_split(split, spec, config)
    progress(f"validation shaped as {shape['kind']} ({shape_numbers(shape)})")
    tuned = _tune_on_validation(fits, validation, items, config, failures, progress)
    params = {name: result.params for name, result in tuned.items()}
    tested_params = {**params, _BASELINE: params.get(_BASELINE, {})}
    progress("fitting the tuned models on the whole training split")
    tested, served = _test(fits, split, items, config, params, tested_params, failures, progress)
    if served is None:  # refit: the train fits are measured and released
        first, then = split.train, split.test
        with_test, segments = fits.open(first, then)
        with with_test as fit:
            models, seconds = refit(tested_params, fit.data, failures, progress, fit.fit_model)
            served = _served(fit, models, segments, seconds, config)
    chosen, chosen_because = choose_model(tuned, served.models, tested.report.metrics)
    indexes, index_report = build_indexes(served.models, served.data, config.index)
    test = _without_rows(split.test)
    metrics = {
        "target": config.target,
        "chosen": chosen,
        "chosen_because": chosen_because,
        "primary_metric": config.primary_metric,
        "engine": {
            **engine_record(interactions.table.sparkSession),
            "tuning_trials": {name: result.trials for name, result in tuned.items()},
        },
        "protocol": {
            "split": describe_spec(spec),
            "validation": {"carved_from": "train", **validation.describe()},
            "validation_shape": shape,
            **split.describe(),
            "test_fingerprint": data_fingerprint(test),
            "evaluated_members": tested.evaluated_members,
            "relevant_events": list(config.relevant_events),
            "new_items_only": not config.counts_repeats,
            "exclude": "purchased in train" if config.target == "new-items" else "nothing",
        },
        "refit": refit_record(config.refit, served.data, served.refit_seconds),
        "models": tested.report.metrics,
        "validation": {name: result.validation for name, result in tuned.items()},
        "params": params,
        "failed": failures.records,
        "segments": tested.report.by_segment,
        "segment_sizes": segment_sizes(served.segments),
        "long_tail": {"catalog": tested.catalog_tail, "models": tested.report.long_tail},
        "index": index_report,
        "rules": mined_rules_report(tested.train_rules, tested.train_baskets, test, served.rules),
        "timings": timings(tuned, tested.report.timings, served.refit_seconds),
        "config": config.model_dump(mode="json"),
    }
    return TrainOutcome(metrics, served.models, served.data, indexes, served.rules, config.members)


def _tune_on_validation(
    fits: _Fits,
    validation: Split,
    items: pl.DataFrame | None,
    config: TrainConfig,
    failures: Failures,
    progress: Progress,
) -> dict[str, TuningResult]:
    """Step 3: each model tuned on the validation split, every trial a fit in Spark."""
    opened, segments = fits.open(validation.train)
    with opened as fit:
        popularity = fallback_popularity(fit.data, None).global_scores
        task = evaluation_task(
            fit.data, _without_rows(validation.test), items, segments, config, popularity
        )
        return tune_all(fit.data, task, config, failures, progress, fit=fit.fit_model)


def _test(
    fits: _Fits,
    split: Split,
    items: pl.DataFrame | None,
    config: TrainConfig,
    params: dict[str, dict[str, Any]],
    tested_params: dict[str, dict[str, Any]],
    failures: Failures,
    progress: Progress,
) -> tuple[_Tested, _Served | None]:
    """Step 4: the tuned models fit on train and measured on test (and, without a refit, what
    the artifact serves: these fits)."""
    opened, segments = fits.open(split.train)
    with opened as fit:
        data = fit.data
        popularity = fallback_popularity(data, params.get(_BASELINE)).global_scores
        task = evaluation_task(data, _without_rows(split.test), items, segments, config, popularity)
        order = np.argsort(-np.asarray((data.matrix > 0).sum(axis=0)).ravel(), kind="stable")
        report, models = evaluate_on_test(
            tested_params, data, task, order, failures, progress, fit.fit_model
        )
        tested = _Tested(
            report=report,
            evaluated_members=task.n_members,
            catalog_tail=catalog_long_tail(data.matrix, order),
            train_baskets=baskets_from_interactions(data.interactions),
            train_rules=fit.mine_rules(config.rules),
        )
        if config.refit:
            return tested, None
        kept = {name: model for name, model in models.items() if name in tested_params}
        return tested, _served(fit, kept, segments, {}, config, tested.train_rules.table)


def _served(
    fit: SparkFit,
    models: dict[str, Recommender],
    segments: pl.DataFrame,
    refit_seconds: dict[str, float],
    config: TrainConfig,
    rules: pl.DataFrame | None = None,
) -> _Served:
    """The served models of ``fit``, with popularity by segment when it failed above (the
    fallback of every answer) and the rules of the fit's purchases (``rules``: mined already)."""
    if _BASELINE not in models:
        models[_BASELINE] = fit.fit_model(_BASELINE, {"by_segment": True}, fit.data)
    if rules is None:
        rules = fit.mine_rules(config.rules).table
    return _Served(models, fit.data, segments, rules, refit_seconds)
