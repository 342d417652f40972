"""``recsys train``: tune every model on validation, evaluate on test, refit, write the artifact.

The protocol, in order, so that the test set is only ever used for the final report:

1. the caller's split gives ``train`` and ``test``;
2. a validation split is carved from ``train`` alone, shaped like the test: the split spec's
   shape, or, for a given test file, the shape read off the two frames
   (:mod:`features.split_shapes`: a global time cut, a per-member time cut or a random split);
3. each model is tuned on that validation split (:mod:`training.tune`) and the chosen model is
   the best one on validation by the primary metric;
4. every model is fit on the whole of ``train`` with its tuned parameters and evaluated on
   ``test``, overall and per member segment, beside the popularity baseline (always
   evaluated, requested or not);
5. every model is refit on all the interactions (train and test) with its tuned parameters:
   the model artifact serves what the data knows up to its last event, while the test figures
   in ``metrics.json`` stay those of the train-only fits (``refit: false`` keeps those fits);
6. the model artifact (all models, FAISS indexes, popularity, histories, catalog, rules) is
   written with ``metrics.json`` and ``report.html`` (:mod:`training.publish`).

One model's failure (in tuning, the test fit or the refit) never ends the run: it is recorded
in ``metrics["failed"]`` with its reason and the run goes on with the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features import columns as col
from features.baskets import baskets_from_interactions
from features.errors import ConfigError
from features.matrices import EventWeights
from features.members import SEGMENT, compute_member_profiles
from features.split_shapes import (
    SplitShape,
    carve_validation,
    infer_split_shape,
    shape_numbers,
    shape_of_spec,
)
from features.splits import Split, SplitSpec, parse_split_spec
from training.artifact import data_fingerprint
from training.config import RuleConfig, Target, TuningBudget, default_lineup
from training.dataset import TrainingData, build_training_data
from training.evaluate import EvaluationTask, item_category_codes
from training.index import IndexConfig, ItemIndex
from training.lineup import Failures, Progress, build_indexes, evaluate_on_test, refit
from training.member_files import MemberFilesConfig
from training.metrics import DEFAULT_KS
from training.models import FitModel, Recommender, fit_model, model_class
from training.models.base import failure_reason, popularity_tie_breaker
from training.models.popular import PopularityRecommender, fallback_popularity
from training.rules import association_rules
from training.run_record import (
    catalog_long_tail,
    describe_spec,
    refit_record,
    rules_report,
    segment_sizes,
    timings,
)
from training.tune import TuningResult, tune_model

__all__ = [
    "TrainConfig",
    "TrainOutcome",
    "all_interactions",
    "choose_model",
    "evaluation_task",
    "run_training",
    "segments_of_members",
    "tune_all",
    "validation_split",
]


class TrainConfig(BaseModel):
    """Everything ``recsys train`` decides besides the data; logged with the run.

    ``target`` is what the lists are for. ``"new-items"``: discovery, items new to the member;
    what they bought in train is never recommended and never a hit (unless ``new_items_only``
    is turned off). ``"next-basket"``: the member's next basket, repeats included; nothing
    bought is excluded, every test purchase is relevant, the figures are split into repeat and
    explore parts, a test of whole baskets per member is validated on whole baskets
    (:mod:`features.split_shapes`), and the default lineup adds the next-basket models
    (:data:`~training.config.NEXT_BASKET_MODELS`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: Target = "new-items"
    #: The models to tune, in order; None: the target's default lineup.
    models: tuple[str, ...] = ()
    primary_metric: str = "ndcg@10"
    budget: TuningBudget = TuningBudget()
    relevant_events: tuple[str, ...] = (col.PURCHASE,)
    new_items_only: bool = True
    event_weights: EventWeights = EventWeights()
    half_life_days: float | None = Field(default=None, gt=0)
    max_eval_members: int | None = Field(default=50_000, ge=1)
    seed: int = 42
    index: IndexConfig = IndexConfig()
    #: Frequently-bought-together rules mined from the purchases into the artifact.
    rules: RuleConfig = RuleConfig()
    #: Refit every model on train + test for the artifact (False: serve the train-only fits).
    refit: bool = True
    #: A split spec (``--split`` syntax) for the validation split instead of the test's shape.
    validation: str | None = None
    #: Member scores (horizon, models) and tier rules of the artifact's member files.
    members: MemberFilesConfig = MemberFilesConfig()

    @model_validator(mode="before")
    @classmethod
    def _target_lineup(cls, values: Any) -> Any:
        """No models named: the target's default lineup."""
        if isinstance(values, dict) and not values.get("models"):
            values = {**values, "models": default_lineup(values.get("target", "new-items"))}
        return values

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: tuple[str, ...]) -> tuple[str, ...]:
        for name in models:
            model_class(name)
        return models

    @property
    def counts_repeats(self) -> bool:
        """Whether re-buying an item from train is a hit (next-basket, or new_items_only off)."""
        return self.target == "next-basket" or not self.new_items_only

    @field_validator("primary_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        base, _, k = metric.partition("@")
        known = ("precision", "recall", "f1", "ndcg", "map", "hit_rate", "phr")
        if base not in known or (k and int(k) not in DEFAULT_KS) or (not k and base != "map"):
            raise ConfigError(
                f"unknown primary metric {metric!r}; use one of {', '.join(known)} at "
                f"k in {DEFAULT_KS}, e.g. ndcg@10, or map"
            )
        return metric

    @field_validator("validation")
    @classmethod
    def _parsable_validation(cls, spec: str | None) -> str | None:
        if spec is not None:
            parse_split_spec(spec)  # raises ConfigError naming the accepted forms
        return spec


@dataclass
class TrainOutcome:
    """What a training run produced, in memory, for the artifact writer and the trackers.

    ``models`` and ``data`` are what the artifact serves: the refit on all interactions (or the
    train-only fits with ``refit=False``); ``metrics`` holds the train-only fits' test figures.
    """

    metrics: dict[str, Any]
    models: dict[str, Recommender]
    data: TrainingData
    indexes: dict[str, ItemIndex] = field(default_factory=dict)
    #: Association rules of the served data's purchases (``training.rules.RULE_COLUMNS``).
    rules: pl.DataFrame | None = None
    #: How the artifact's member files are made (scores' horizon, tier rules).
    member_files: MemberFilesConfig = field(default_factory=MemberFilesConfig)


def segments_of_members(interactions: pl.DataFrame, members: pl.DataFrame | None) -> pl.DataFrame:
    """Each member's RFM segment on ``interactions``: what per-segment popularity and the
    per-segment metrics group by, computed on the data the fits see and never on the test."""
    profiles = compute_member_profiles(interactions, members=members)
    return profiles.select(col.MEMBER_ID, SEGMENT)


def _training_data(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None,
    members: pl.DataFrame | None,
    config: TrainConfig,
) -> tuple[TrainingData, pl.DataFrame]:
    segments = segments_of_members(interactions, members)
    data = build_training_data(
        interactions,
        items=items,
        member_segment_of=segments,
        weights=config.event_weights,
        half_life_days=config.half_life_days,
    )
    return data, segments


def evaluation_task(
    data: TrainingData,
    test: pl.DataFrame,
    items: pl.DataFrame | None,
    segments: pl.DataFrame,
    config: TrainConfig,
    popularity: np.ndarray,
) -> EvaluationTask:
    """The evaluation of ``test`` against fits on ``data``, the same for validation and test and
    for both engines: the target's rules, the member sample and popularity's tie-breaking."""
    return EvaluationTask.from_split(
        data,
        test,
        relevant_events=config.relevant_events,
        new_items_only=not config.counts_repeats,
        exclude_purchased=config.target == "new-items",
        item_categories=(
            item_category_codes(items, data.item_ids)
            if items is not None and col.CATEGORY in items.columns
            else None
        ),
        member_segment_of=segments,
        max_members=config.max_eval_members,
        seed=config.seed,
        tie_breaker=popularity_tie_breaker(popularity),
    )


def tune_all(
    data: TrainingData,
    task: EvaluationTask,
    config: TrainConfig,
    failures: Failures,
    progress: Progress,
    fit: FitModel = fit_model,
) -> dict[str, TuningResult]:
    """Step 3 for every model, each trial fit by ``fit`` (in process, or the Spark engine's)."""
    results: dict[str, TuningResult] = {}
    for name in config.models:
        progress(f"tuning {name} on validation")
        try:
            results[name] = tune_model(
                model_class(name), data, task, config.primary_metric, config.budget,
                config.seed, fit=fit,
            )  # fmt: skip
        except Exception as error:  # one model's failure is recorded, never the run's end
            failures.add(name, "tuning", failure_reason(error))
            continue
        for reason in results[name].failures:
            failures.add(name, "tuning trial", reason)
    if not results:
        raise ConfigError(
            "no model could be fit on the validation split: "
            + "; ".join(f"{f['model']}: {f['reason']}" for f in failures.records)
        )
    return results


def validation_split(
    split: Split, spec: SplitSpec | None, config: TrainConfig
) -> tuple[Split, dict[str, Any]]:
    """Step 2: the validation split of train alone, and the record of how it was shaped."""
    if config.validation is not None:
        given = parse_split_spec(config.validation)
        return given.split(split.train), {"kind": "given", "spec": config.validation}
    shape: SplitShape = (
        shape_of_spec(spec, split)
        if spec is not None
        else infer_split_shape(split.train, split.test, baskets=config.target == "next-basket")
    )
    return carve_validation(split.train, shape, seed=config.seed), shape.describe()


def _tune_on_validation(
    split: Split,
    spec: SplitSpec | None,
    config: TrainConfig,
    items: pl.DataFrame | None,
    members: pl.DataFrame | None,
    failures: Failures,
    progress: Progress,
) -> tuple[dict[str, TuningResult], dict[str, Any], dict[str, int]]:
    """Steps 2 and 3: the tuning results, the validation shape and the split's description.

    A function of its own so that the carved frames, their matrix and their task are freed on
    return, before the whole training split's are built: at 20M events they hold about 2 GB
    that the final fits, the evaluation and the artifact would otherwise carry along.
    """
    validation, shape = validation_split(split, spec, config)
    progress(f"validation shaped as {shape['kind']} ({shape_numbers(shape)})")
    data, segments = _training_data(validation.train, items, members, config)
    popularity = fallback_popularity(data, None).global_scores
    task = evaluation_task(data, validation.test, items, segments, config, popularity)
    return tune_all(data, task, config, failures, progress), shape, validation.describe()


def all_interactions(split: Split) -> pl.DataFrame:
    """Train and test as one frame (a test file may carry other optional columns)."""
    return pl.concat([split.train, split.test], how="diagonal_relaxed")


def choose_model(
    tuned: dict[str, TuningResult], served: dict[str, Recommender], tested: dict[str, Any]
) -> tuple[str, str]:
    """The best model on validation among those the artifact serves and the test measured, and
    why it is that one (the best of all, or the best left after failures)."""
    ranked = sorted(tuned, key=lambda name: tuned[name].value, reverse=True)
    usable = [name for name in ranked if name in served and name in tested]
    if not usable:
        raise ConfigError(
            "no tuned model was both measured on test and fit for the model artifact; "
            "see the failures"
        )
    if usable[0] == ranked[0]:
        return usable[0], "best on validation"
    return usable[
        0
    ], f"best on validation after the failure of {', '.join(ranked[: ranked.index(usable[0])])}"


def run_training(
    split: Split,
    spec: SplitSpec | None,
    config: TrainConfig,
    items: pl.DataFrame | None = None,
    members: pl.DataFrame | None = None,
    progress: Progress = lambda _: None,
) -> TrainOutcome:
    """Tune on validation, fit on train and evaluate on test, refit on all; see the module
    docstring."""
    failures = Failures()
    tuned, shape, validation_counts = _tune_on_validation(
        split, spec, config, items, members, failures, progress
    )
    params = {name: result.params for name, result in tuned.items()}
    baseline = PopularityRecommender.name
    tested_params = {**params, baseline: params.get(baseline, {})}

    progress("fitting the tuned models on the whole training split")
    data, segments = _training_data(split.train, items, members, config)
    popularity = fallback_popularity(data, params.get(baseline)).global_scores
    test_task = evaluation_task(data, split.test, items, segments, config, popularity)
    popularity_order = np.argsort(-np.asarray((data.matrix > 0).sum(axis=0)).ravel(), kind="stable")
    report, models = evaluate_on_test(
        tested_params, data, test_task, popularity_order, failures, progress
    )
    train_baskets = baskets_from_interactions(data.interactions)
    evaluated_members = test_task.n_members
    catalog_tail = catalog_long_tail(data.matrix, popularity_order)
    refit_seconds: dict[str, float] = {}
    if config.refit:
        del models, data, test_task  # the train-only fits are measured; free them before refit
        data, segments = _training_data(all_interactions(split), items, members, config)
        models, refit_seconds = refit(tested_params, data, failures, progress)
    else:
        models = {name: model for name, model in models.items() if name in tested_params}
    if baseline not in models:  # the fallback of every answer, even when it failed above
        models[baseline] = PopularityRecommender(by_segment=True).fit(data)
    chosen, chosen_because = choose_model(tuned, models, report.metrics)
    indexes, index_report = build_indexes(models, data, config.index)
    served_rules = association_rules(baskets_from_interactions(data.interactions), config.rules)
    metrics = {
        "target": config.target,
        "chosen": chosen,
        "chosen_because": chosen_because,
        "primary_metric": config.primary_metric,
        "protocol": {
            "split": describe_spec(spec),
            "validation": {"carved_from": "train", **validation_counts},
            "validation_shape": shape,
            **split.describe(),
            "test_fingerprint": data_fingerprint(split.test),
            "evaluated_members": evaluated_members,
            "relevant_events": list(config.relevant_events),
            "new_items_only": not config.counts_repeats,
            "exclude": "purchased in train" if config.target == "new-items" else "nothing",
        },
        "refit": refit_record(config.refit, data, refit_seconds),
        "models": report.metrics,
        "validation": {name: result.validation for name, result in tuned.items()},
        "params": params,
        "failed": failures.records,
        "segments": report.by_segment,
        "segment_sizes": segment_sizes(segments),
        "long_tail": {"catalog": catalog_tail, "models": report.long_tail},
        "index": index_report,
        "rules": rules_report(config.rules, train_baskets, split.test, served_rules),
        "timings": timings(tuned, report.timings, refit_seconds),
        "config": config.model_dump(mode="json"),
    }
    return TrainOutcome(metrics, models, data, indexes, served_rules, config.members)
