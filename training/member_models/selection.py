"""Which churn and value model ships, decided on validation only, and when churn means nothing.

Churn: a model *beats the bars* when, on validation, its Brier score is below the constant's
(it knows more than the base rate), its ROC AUC is above recency alone's (it ranks better than
the simplest rule), and the lower end of its AUC's 95% interval is above 0.5 (the ranking is
not luck). Of the models that beat the bars, the lowest Brier score ships. When none does,
churn is *uninformative*: every buyer gets the base rate and the band "uninformative", and the
reason says which bar was missed, in words.

Value: the model with the lowest mean, over purchases and spend, of its MAE relative to the
naive rate's (so that purchases and currency weigh alike) ships; the naive rate is always a
candidate, so something always ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ChurnChoice", "ValueChoice", "choose_churn", "choose_value", "value_score"]

_CONSTANT = "constant"
_RECENCY = "recency"
_NAIVE = "naive_rate"


@dataclass(frozen=True)
class ChurnChoice:
    """``ranked``: the models that beat the bars, best first (the next ships if the first
    fails to refit); empty when churn is uninformative."""

    informative: bool
    chosen: str
    reason: str
    ranked: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValueChoice:
    """``ranked``: every evaluated value model, best first."""

    chosen: str
    reason: str
    ranked: tuple[str, ...]


def choose_churn(validation: dict[str, dict[str, Any]]) -> ChurnChoice:
    """The shipped churn model given each model's validation figures (failed ones absent)."""
    constant = validation.get(_CONSTANT, {}).get("brier_constant")
    recency = validation.get(_RECENCY, {}).get("roc_auc")
    if constant is None:
        return ChurnChoice(False, _CONSTANT, "the validation window has no outcome to judge by")
    recency_bar = recency if recency is not None else 0.5
    beaten: list[tuple[float, str]] = []
    missed: list[str] = []
    for name, figures in validation.items():
        if name in (_CONSTANT, _RECENCY):
            continue
        shortfalls = _shortfalls(figures, constant, recency_bar)
        if shortfalls:
            missed.append(f"{name} ({'; '.join(shortfalls)})")
        else:
            beaten.append((figures["brier"], name))
    if beaten:
        beaten.sort()
        brier, name = beaten[0]
        return ChurnChoice(
            True,
            name,
            f"{name} has the lowest validation Brier score ({brier:.4f}) of the models that "
            f"beat the constant's Brier ({constant:.4f}) and recency alone's ROC AUC "
            f"({recency_bar:.3f})",
            tuple(name for _, name in beaten),
        )
    return ChurnChoice(
        False,
        _CONSTANT,
        "no model beats both the constant (Brier) and recency alone (ROC AUC) on validation, "
        "so the churn risk ranks members no better than chance or than recency: "
        + (", ".join(missed) if missed else "no model could be fit"),
    )


def _shortfalls(figures: dict[str, Any], constant: float, recency: float) -> list[str]:
    brier, auc, interval = figures.get("brier"), figures.get("roc_auc"), figures.get("roc_auc_ci")
    if brier is None or auc is None:
        return ["no figures"]
    shortfalls = []
    if not brier < constant:
        shortfalls.append(f"Brier {brier:.4f} not below {constant:.4f}")
    if not auc > recency:
        shortfalls.append(f"ROC AUC {auc:.3f} not above {recency:.3f}")
    if interval is None or not interval[0] > 0.5:
        low = "none" if interval is None else f"{interval[0]:.3f}"
        shortfalls.append(f"ROC AUC interval's lower end {low} not above 0.5")
    return shortfalls


def value_score(figures: dict[str, Any], naive: dict[str, Any] | None) -> float:
    """Mean over purchases (and spend, when known) of the MAE relative to the naive rate's."""
    ratios = []
    for key in ("purchases_mae", "spend_mae"):
        value = figures.get(key)
        reference = (naive or {}).get(key)
        if value is None:
            continue
        ratios.append(value / reference if reference else value)
    return sum(ratios) / len(ratios) if ratios else float("inf")


def choose_value(validation: dict[str, dict[str, Any]]) -> ValueChoice:
    """The shipped value model and why, given each model's validation figures."""
    naive = validation.get(_NAIVE)
    scores = {name: value_score(figures, naive) for name, figures in validation.items()}
    if not scores:
        return ValueChoice(
            _NAIVE, "no value model could be evaluated on validation; the naive rate ships", ()
        )
    ranked = tuple(sorted(scores, key=lambda name: (scores[name], name != _NAIVE)))
    chosen = ranked[0]
    figures = validation[chosen]
    spend = figures.get("spend_mae")
    reason = (
        f"{chosen} has the lowest validation MAE relative to the naive rate "
        f"({scores[chosen]:.3f}; purchases MAE {figures['purchases_mae']:.3f}"
        + (f", spend MAE {spend:.2f}" if spend is not None else "")
        + ")"
    )
    return ValueChoice(chosen, reason, ranked)
