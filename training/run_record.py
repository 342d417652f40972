"""What ``metrics.json`` records about a training run besides the metric figures: long-tail
shares, the refit, timings, the rules served and how they did on test, segment sizes."""

from __future__ import annotations

from datetime import time
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.baskets import Baskets, baskets_from_interactions
from features.members import SEGMENT
from features.splits import (
    LastBasketsSpec,
    LastDaysSplitSpec,
    LastShareSplitSpec,
    LeaveLastOutSpec,
    SplitSpec,
    TemporalSplitSpec,
)
from training.config import RuleConfig
from training.dataset import TrainingData
from training.rules import MinedRules, mine_rules
from training.rules_quality import complement_quality
from training.tune import TuningResult

__all__ = [
    "catalog_long_tail",
    "describe_spec",
    "long_tail",
    "mined_rules_report",
    "refit_record",
    "rules_report",
    "segment_sizes",
    "timings",
]

_LONG_TAIL_BINS = 10


def long_tail(recommended: np.ndarray, popularity_order: np.ndarray) -> list[float]:
    """Share of recommended slots per item-popularity decile (most popular decile first)."""
    decile = np.empty_like(popularity_order)
    decile[popularity_order] = (
        np.arange(len(popularity_order)) * _LONG_TAIL_BINS // max(len(popularity_order), 1)
    )
    shown = recommended[:, :10].ravel()
    shown = shown[shown >= 0]
    counts = np.bincount(decile[shown], minlength=_LONG_TAIL_BINS)
    return (counts / max(counts.sum(), 1)).tolist()


def catalog_long_tail(matrix: sp.csr_matrix, popularity_order: np.ndarray) -> list[float]:
    """Share of the training interactions per item-popularity decile, the catalog's own curve
    that the models' shares are read against."""
    interactions = np.asarray((matrix > 0).sum(axis=0)).ravel()[popularity_order]
    bins = np.array_split(interactions, _LONG_TAIL_BINS)
    total = max(interactions.sum(), 1)
    return [float(part.sum() / total) for part in bins]


def rules_report(
    rules: RuleConfig, train_baskets: Baskets, test: pl.DataFrame, served_rules: pl.DataFrame
) -> dict[str, Any]:
    """The rules served, and rules of the training purchases measured on the test baskets,
    with what each threshold let through (``funnel``) and, when few rules passed, why."""
    return mined_rules_report(mine_rules(train_baskets, rules), train_baskets, test, served_rules)


def mined_rules_report(
    mined: MinedRules, train_baskets: Baskets, test: pl.DataFrame, served_rules: pl.DataFrame
) -> dict[str, Any]:
    """:func:`rules_report` of training rules mined elsewhere (the Spark engine's)."""
    return {
        "baskets": train_baskets.n_baskets,
        "min_count": mined.funnel.min_count,
        "rules": served_rules.height,
        "train_rules": mined.table.height,
        "funnel": mined.funnel.as_dict(),
        "why": mined.funnel.why(),
        "test": complement_quality(mined.table, train_baskets, baskets_from_interactions(test)),
    }


def refit_record(refit: bool, data: TrainingData, seconds: dict[str, float]) -> dict[str, Any]:
    """What the model artifact serves, so that nobody mistakes the test figures for its own."""
    stamps = data.interactions.get_column(col.TIMESTAMP)
    return {
        "on": "train + test" if refit else "train only (--no-refit)",
        "rows": data.interactions.height,
        "data_end": str(stamps.max()) if stamps.len() else None,
        "models": sorted(seconds) if refit else [],
        "note": "metrics under 'models' are the train-only fits measured on the test split",
    }


def timings(
    tuned: dict[str, TuningResult],
    tested: dict[str, dict[str, float]],
    refit_seconds: dict[str, float],
) -> dict[str, dict[str, float]]:
    """Each tested model's seconds: its test fit and evaluation, tuning and trials, refit."""
    result: dict[str, dict[str, float]] = {}
    for name, measured in tested.items():
        result[name] = dict(measured)
        if name in tuned:
            result[name].update(tune_s=tuned[name].seconds, trials=tuned[name].trials)
        if name in refit_seconds:
            result[name]["refit_s"] = refit_seconds[name]
    return result


def describe_spec(spec: SplitSpec | None) -> str:
    """The split as a person gives it to ``--split`` (``last-days:30``), not a Python repr:
    what metrics.json, report.html and MLflow show, and what ``parse_split_spec`` reads back."""
    if spec is None:
        return "explicit test file"
    if isinstance(spec, TemporalSplitSpec):
        cutoff = spec.cutoff
        a_date = cutoff.tzinfo is None and cutoff.time() == time()
        return f"temporal:{cutoff.date().isoformat() if a_date else cutoff.isoformat()}"
    if isinstance(spec, LastDaysSplitSpec):
        return f"last-days:{spec.days}"
    if isinstance(spec, LeaveLastOutSpec):
        return f"leave-last:{spec.k}"
    if isinstance(spec, LastBasketsSpec):
        return f"last-baskets:{spec.k}"
    if isinstance(spec, LastShareSplitSpec):
        return f"last-share:{spec.share}"
    return f"ratio:{spec.test_ratio}:{spec.by}:{spec.seed}"


def segment_sizes(segments: pl.DataFrame) -> dict[str, int]:
    counts = segments.group_by(SEGMENT).len()
    return {str(name): int(count) for name, count in counts.iter_rows()}
