"""How good a churn risk or a value estimate was, on members whose outcome is known.

Churn (label: no purchase in the outcome window; score: the predicted probability of it):

* ROC AUC and PR AUC (average precision, the step-wise area that scikit-learn computes), each
  with a 95% percentile bootstrap interval;
* the Brier score, and the Brier score of the constant that predicts the *training* window's
  churn rate for everyone: the bar any model must clear;
* a reliability curve over 10 equal-width bins of predicted probability (mean predicted, share
  observed, members; empty bins left out);
* the lift of the top decile: churn rate among the 10% highest scores over the overall rate.

Value: per-member MAE and RMSE of purchases and spend, and the relative error of the total
(predicted sum over actual sum, minus 1), which says whether a campaign budget is right even
when the members are wrong.

The bootstrap is vectorised without drawing rows. A resample of n rows is a multinomial draw
over the distinct (score, label) cells, and both AUCs depend only on the cells' counts, so each
resample costs the number of distinct scores, not n. Beyond :data:`MAX_BOOTSTRAP_LEVELS`
distinct scores, adjacent scores are merged into that many equal-count levels for the interval
only (the point estimates are always exact); the interval then describes a ranking a hair
coarser than the model's, a difference far inside its own width.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "MAX_BOOTSTRAP_LEVELS",
    "RELIABILITY_BINS",
    "churn_metrics",
    "pr_auc",
    "roc_auc",
    "value_metrics",
]

MAX_BOOTSTRAP_LEVELS: Final = 2048
RELIABILITY_BINS: Final = 10
_TOP_SHARE: Final = 0.1


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half);
    None when one class is absent."""
    positives, negatives = _cells(labels, scores)
    return _float(_roc_auc(positives[None], negatives[None])[0])


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision over the distinct thresholds; None without positives."""
    positives, negatives = _cells(labels, scores)
    return _float(_average_precision(positives[None], negatives[None])[0])


def churn_metrics(
    churned: np.ndarray,
    risk: np.ndarray,
    *,
    train_base_rate: float,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Every churn figure of one model on one evaluation window (JSON-able)."""
    labels = np.asarray(churned, dtype=bool)
    scores = np.asarray(risk, dtype=np.float64)
    positives, negatives = _cells(labels, scores)
    roc_ci, pr_ci = _bootstrap_intervals(labels, scores, resamples, seed)
    rate = float(labels.mean()) if labels.size else math.nan
    return {
        "members": int(labels.size),
        "churn_rate": _float(rate),
        "roc_auc": _float(_roc_auc(positives[None], negatives[None])[0]),
        "roc_auc_ci": roc_ci,
        "pr_auc": _float(_average_precision(positives[None], negatives[None])[0]),
        "pr_auc_ci": pr_ci,
        "brier": _float(np.mean((scores - labels) ** 2)),
        "brier_constant": _float(np.mean((train_base_rate - labels) ** 2)),
        "reliability": reliability(labels, scores),
        "top_decile_lift": top_decile_lift(labels, scores),
    }


def reliability(labels: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    """Mean predicted probability, observed churn rate and members per non-empty bin."""
    bins = np.minimum((np.clip(scores, 0.0, 1.0) * RELIABILITY_BINS).astype(np.int64), 9)
    members = np.bincount(bins, minlength=RELIABILITY_BINS)
    predicted = np.bincount(bins, weights=scores, minlength=RELIABILITY_BINS)
    observed = np.bincount(bins, weights=labels.astype(np.float64), minlength=RELIABILITY_BINS)
    return [
        {
            "bin": f"{index / RELIABILITY_BINS:.1f}-{(index + 1) / RELIABILITY_BINS:.1f}",
            "predicted": float(predicted[index] / members[index]),
            "observed": float(observed[index] / members[index]),
            "members": int(members[index]),
        }
        for index in np.flatnonzero(members)
    ]


def top_decile_lift(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Churn rate of the 10% highest scores (ties in input order) over the overall rate."""
    if labels.size == 0 or not labels.any():
        return None
    top = np.argsort(-scores, kind="stable")[: max(1, math.ceil(labels.size * _TOP_SHARE))]
    return float(labels[top].mean() / labels.mean())


def value_metrics(
    purchases: np.ndarray,
    predicted_purchases: np.ndarray,
    spend: np.ndarray | None,
    predicted_spend: np.ndarray | None,
) -> dict[str, float | None]:
    """MAE, RMSE and the total's relative error of purchases, and of spend when both the
    outcome and the prediction exist (null otherwise)."""
    figures = _errors("purchases", purchases, predicted_purchases)
    if spend is None or predicted_spend is None:
        figures.update({f"spend_{name}": None for name in _ERROR_NAMES})
    else:
        figures.update(_errors("spend", spend, predicted_spend))
    return figures


_ERROR_NAMES: Final = ("mae", "rmse", "total_relative_error")


def _errors(prefix: str, actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    actual = np.asarray(actual, dtype=np.float64)
    error = np.asarray(predicted, dtype=np.float64) - actual
    total = float(actual.sum())
    return {
        f"{prefix}_mae": _float(np.abs(error).mean()),
        f"{prefix}_rmse": _float(np.sqrt(np.mean(error**2))),
        f"{prefix}_total_relative_error": _float(error.sum() / total) if total else None,
    }


def _cells(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives per distinct score, in increasing score order."""
    levels = np.unique(scores, return_inverse=True)[1]
    return _count_cells(levels, np.asarray(labels, dtype=bool), int(levels.max(initial=-1)) + 1)


def _count_cells(levels: np.ndarray, labels: np.ndarray, n_levels: int) -> tuple[np.ndarray, ...]:
    positives = np.bincount(levels[labels], minlength=n_levels).astype(np.float64)
    negatives = np.bincount(levels[~labels], minlength=n_levels).astype(np.float64)
    return positives, negatives


def _roc_auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Row-wise AUC of count matrices (resamples x levels, increasing score)."""
    below = np.cumsum(negatives, axis=1) - negatives
    wins = (positives * (below + 0.5 * negatives)).sum(axis=1)
    pairs = positives.sum(axis=1) * negatives.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / pairs, np.nan)


def _average_precision(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Row-wise average precision: thresholds from the highest score down, each adding
    precision x (its share of the positives)."""
    positives, negatives = positives[:, ::-1], negatives[:, ::-1]
    true_positives = np.cumsum(positives, axis=1)
    flagged = true_positives + np.cumsum(negatives, axis=1)
    total = true_positives[:, -1:] if positives.shape[1] else np.zeros((positives.shape[0], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(flagged > 0, true_positives / flagged, 0.0)
        return np.where(total[:, 0] > 0, (precision * positives).sum(axis=1) / total[:, 0], np.nan)


def _bootstrap_intervals(
    labels: np.ndarray, scores: np.ndarray, resamples: int, seed: int
) -> tuple[list[float] | None, list[float] | None]:
    """95% percentile intervals of ROC and PR AUC from ``resamples`` multinomial resamples of
    the (score level, label) cells; None when a class is absent."""
    if labels.size == 0 or labels.all() or not labels.any():
        return None, None
    n_levels = min(MAX_BOOTSTRAP_LEVELS, labels.size)
    # Equal-count levels; tied scores share the smallest rank, so they never split.
    levels = ((rankdata(scores, method="min") - 1) * n_levels // labels.size).astype(np.int64)
    positives, negatives = _count_cells(levels, labels, n_levels)
    cells = np.concatenate([positives, negatives])
    draws = np.random.default_rng(seed).multinomial(labels.size, cells / cells.sum(), resamples)
    drawn_positives, drawn_negatives = draws[:, :n_levels], draws[:, n_levels:]
    roc = _roc_auc(drawn_positives.astype(np.float64), drawn_negatives.astype(np.float64))
    pr = _average_precision(drawn_positives.astype(np.float64), drawn_negatives.astype(np.float64))
    return _interval(roc), _interval(pr)


def _interval(values: np.ndarray) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return [float(low), float(high)]


def _float(value: float) -> float | None:
    """A JSON-able figure: NaN (undefined) becomes None."""
    value = float(value)
    return None if math.isnan(value) else value
