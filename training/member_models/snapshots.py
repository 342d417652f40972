"""The members as of one date, ready for the models: features, BTYD predictions, outcomes.

A snapshot is built once per date and serves every model and every role it has (the
evaluation of one fit, the training set of the next). Buyers and non-buyers are kept apart: the
models score buyers, and non-buyers get the rule of :mod:`training.member_models.score`.

BG/NBD and Gamma-Gamma need no outcomes, so they are fit on each date's own history (what was
known on that date) and their predictions for the next H days ride along as columns: they are
the BTYD baselines' scores (never the learners' inputs: see
:func:`training.member_models.churn.churn_variants`). A fit that fails leaves those columns
null and is recorded; the BTYD baselines then fail for that date and the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
import polars as pl

from features.columns import MEMBER_ID
from features.member_features import (
    BTYD_M,
    BTYD_T,
    BTYD_TX,
    BTYD_X,
    IS_BUYER,
    OUTCOME_PURCHASES,
    OUTCOME_SPEND,
    future_outcomes,
    member_features,
)
from training.member_models.btyd import fit_beta_geo, fit_gamma_gamma
from training.member_models.failures import failure
from training.member_models.sampling import fit_rows

__all__ = [
    "CALIBRATION_DAYS",
    "CHURNED",
    "EXPECTED_ORDER_VALUE",
    "EXPECTED_PURCHASES",
    "P_NO_PURCHASE",
    "Snapshot",
    "take_snapshot",
]

#: BG/NBD's P(no purchase in H) and E[purchases in H]; Gamma-Gamma's E[order value].
P_NO_PURCHASE: Final = "bgnbd_p_no_purchase"
EXPECTED_PURCHASES: Final = "bgnbd_expected_purchases"
EXPECTED_ORDER_VALUE: Final = "gg_order_value"
#: True when the member made no purchase in the outcome window.
CHURNED: Final = "churned"
#: Days from the data's first event to the snapshot's date: the naive rate's denominator.
CALIBRATION_DAYS: Final = "calibration_days"


@dataclass(frozen=True)
class Snapshot:
    """Members as of ``at``. ``buyers``: features, BTYD columns and, when the outcome is known,
    ``purchases``, ``spend`` and ``churned``; ``non_buyers``: member ids (and outcomes).
    ``failures``: the BTYD fits that failed, as {model, reason}."""

    at: datetime
    buyers: pl.DataFrame
    non_buyers: pl.DataFrame
    failures: list[dict[str, Any]] = field(default_factory=list)


def take_snapshot(
    interactions: pl.DataFrame | pl.LazyFrame,
    at: datetime,
    *,
    horizon_days: int,
    data_start: datetime,
    with_outcomes: bool,
    has_prices: bool,
    members: pl.DataFrame | None,
    items: pl.DataFrame | None,
    max_fit_members: int,
    seed: int,
) -> Snapshot:
    """Features as of ``at``, the BTYD predictions for ``[at, at + H)`` and, with
    ``with_outcomes``, what each member did in that window."""
    frame = member_features(interactions, at, members=members, items=items)
    if with_outcomes:
        outcomes = future_outcomes(interactions, at, horizon_days)
        frame = frame.join(outcomes, on=MEMBER_ID, how="left").with_columns(
            pl.col(OUTCOME_PURCHASES).fill_null(0),
            pl.col(OUTCOME_SPEND).fill_null(0.0),
        )
        frame = frame.with_columns((pl.col(OUTCOME_PURCHASES) == 0).alias(CHURNED))
    buyers = frame.filter(pl.col(IS_BUYER))
    outcome_columns = [OUTCOME_PURCHASES, OUTCOME_SPEND, CHURNED] if with_outcomes else []
    non_buyers = frame.filter(~pl.col(IS_BUYER)).select(MEMBER_ID, *outcome_columns)
    failures: list[dict[str, Any]] = []
    buyers = buyers.with_columns(
        *_btyd_columns(buyers, horizon_days, has_prices, max_fit_members, seed, failures),
        pl.lit((at - data_start).total_seconds() / 86_400).alias(CALIBRATION_DAYS),
    )
    return Snapshot(
        at=at,
        buyers=buyers,
        non_buyers=non_buyers,
        failures=failures,
    )


def _check_finite(model: str, fit: object, predictions: tuple[np.ndarray, ...]) -> None:
    """Refuse predictions that are not finite for some members: half a model would score
    those members by imputation, and the learners would read the gap as a signal."""
    bad = np.zeros(predictions[0].shape, dtype=bool)
    for values in predictions:
        bad |= ~np.isfinite(values)
    if bad.any():
        raise ArithmeticError(
            f"{model}: {int(bad.sum())} of {bad.size} predictions are not finite at the fitted "
            f"parameters {fit}"
        )


def _btyd_columns(
    buyers: pl.DataFrame,
    horizon_days: int,
    has_prices: bool,
    max_fit_members: int,
    seed: int,
    failures: list[dict[str, Any]],
) -> list[pl.Series]:
    """The four BTYD columns (null where a fit failed; the failure is appended)."""
    x = buyers.get_column(BTYD_X).to_numpy().astype(np.float64)
    t_x = buyers.get_column(BTYD_TX).to_numpy()
    t_obs = buyers.get_column(BTYD_T).to_numpy()
    m = buyers.get_column(BTYD_M).fill_null(np.nan).to_numpy()
    sample = fit_rows(buyers.height, max_fit_members, seed)
    empty = np.full(buyers.height, np.nan)
    no_purchase = expected = order_value = empty
    try:
        fit = fit_beta_geo(x[sample], t_x[sample], t_obs[sample])
        predicted = (
            fit.p_no_purchase(x, t_x, t_obs, horizon_days),
            fit.expected_purchases(x, t_x, t_obs, horizon_days),
        )
        _check_finite("bgnbd", fit, predicted)
        no_purchase, expected = predicted
    except Exception as error:  # a failed fit is recorded; the BTYD baselines fail for the date
        failures.append(failure("bgnbd", error))
    if has_prices:
        try:
            spend_fit = fit_gamma_gamma(x[sample], m[sample])
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                values = spend_fit.expected_order_value(x, m)
            _check_finite("gamma_gamma", spend_fit, (values,))
            order_value = values
        except Exception as error:
            failures.append(failure("gamma_gamma", error))
    columns = {
        P_NO_PURCHASE: no_purchase,
        EXPECTED_PURCHASES: expected,
        EXPECTED_ORDER_VALUE: order_value,
    }
    return [pl.Series(name, values, dtype=pl.Float64) for name, values in columns.items()]
