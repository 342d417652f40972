"""95% intervals of a treatment-against-holdout difference: the statistics of the uplift report.

Each interval is the textbook one for its quantity, taken from SciPy where SciPy has it:

* a proportion: Wilson's score interval (``binomtest(...).proportion_ci``), which stays inside
  [0, 1] and keeps its coverage for the small rates campaigns see;
* a difference of proportions: Newcombe's hybrid score interval (his method 10), built from the
  two Wilson intervals; the Wald interval undercovers at rates of a few percent;
* a ratio of proportions: Katz's log interval (``scipy.stats.contingency.relative_risk``);
* a difference of means: Welch's t interval (``ttest_ind(equal_var=False)``), since the two
  groups' revenue spreads differ whenever the campaign works;
* a ratio of means: the delta method on the log of the ratio.

Relative intervals are reported as ratio minus one (+0.2 = 20% more than the holdout). An
interval that the data cannot give (no member in a group, no conversion in the holdout for a
ratio, fewer than two members for Welch) is ``None`` rather than an infinite or NaN bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.stats import binomtest, norm, ttest_ind
from scipy.stats.contingency import relative_risk

__all__ = [
    "CONFIDENCE",
    "Estimate",
    "difference_of_means",
    "difference_of_proportions",
    "proportion",
    "ratio_of_means",
    "ratio_of_proportions",
]

CONFIDENCE: Final = 0.95


@dataclass(frozen=True)
class Estimate:
    """A figure with its interval; each is ``None`` when the data cannot give it."""

    value: float | None
    low: float | None = None
    high: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


_UNKNOWN: Final = Estimate(None)


def proportion(successes: int, trials: int) -> Estimate:
    """``successes / trials`` with its Wilson interval."""
    if trials == 0:
        return _UNKNOWN
    return Estimate(*_wilson(successes, trials))


def difference_of_proportions(
    treated: int, treated_trials: int, held: int, held_trials: int
) -> Estimate:
    """Treated rate minus holdout rate, with Newcombe's hybrid score interval."""
    if treated_trials == 0 or held_trials == 0:
        return _UNKNOWN
    rate, low, high = _wilson(treated, treated_trials)
    held_rate, held_low, held_high = _wilson(held, held_trials)
    difference = rate - held_rate
    below = math.hypot(rate - low, held_high - held_rate)
    above = math.hypot(high - rate, held_rate - held_low)
    return Estimate(difference, difference - below, difference + above)


def _wilson(successes: int, trials: int) -> tuple[float, float, float]:
    interval = binomtest(successes, trials).proportion_ci(CONFIDENCE, method="wilson")
    return successes / trials, float(interval.low), float(interval.high)


def ratio_of_proportions(
    treated: int, treated_trials: int, held: int, held_trials: int
) -> Estimate:
    """Treated rate over holdout rate, minus one, with Katz's log interval (needs a conversion
    in each group: a zero makes the log ratio unbounded)."""
    if treated_trials == 0 or held_trials == 0 or held == 0:
        return _UNKNOWN
    ratio = relative_risk(treated, treated_trials, held, held_trials)
    if treated == 0:
        return Estimate(ratio.relative_risk - 1.0)
    interval = ratio.confidence_interval(CONFIDENCE)
    return Estimate(ratio.relative_risk - 1.0, interval.low - 1.0, interval.high - 1.0)


def difference_of_means(treated: np.ndarray, held: np.ndarray) -> Estimate:
    """Treated mean minus holdout mean, with Welch's interval (two members per group at least,
    and some spread in one of them)."""
    if len(treated) == 0 or len(held) == 0:
        return _UNKNOWN
    difference = float(treated.mean() - held.mean())
    if len(treated) < 2 or len(held) < 2 or (treated.var() == 0 and held.var() == 0):
        return Estimate(difference)
    interval = ttest_ind(treated, held, equal_var=False).confidence_interval(CONFIDENCE)
    return Estimate(difference, float(interval.low), float(interval.high))


def ratio_of_means(treated: np.ndarray, held: np.ndarray) -> Estimate:
    """Treated mean over holdout mean, minus one, with the delta-method interval of the log
    ratio: var(log ratio) ≈ s₁²/(n₁m₁²) + s₀²/(n₀m₀²)."""
    if len(treated) < 2 or len(held) < 2 or held.mean() <= 0:
        return _UNKNOWN
    treated_mean, held_mean = float(treated.mean()), float(held.mean())
    if treated_mean <= 0:
        return Estimate(treated_mean / held_mean - 1.0)
    variance = treated.var(ddof=1) / (len(treated) * treated_mean**2) + held.var(ddof=1) / (
        len(held) * held_mean**2
    )
    log_ratio = math.log(treated_mean / held_mean)
    spread = float(norm.ppf(0.5 + CONFIDENCE / 2)) * math.sqrt(variance)
    return Estimate(
        math.exp(log_ratio) - 1.0,
        math.exp(log_ratio - spread) - 1.0,
        math.exp(log_ratio + spread) - 1.0,
    )
