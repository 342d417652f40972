"""Score every member as of a date: churn risk and band, expected purchases and spend.

:func:`score_members` runs the whole protocol of :mod:`training.member_models.windows`: every
churn and value model is tried on validation (window 3 -> window 2), the best of each is chosen
there (:mod:`training.member_models.selection`), every model is reported on the test (window
2 -> window 1), and the chosen ones are refit on the latest window and applied at ``as_of``.

Who gets which score:

* *buyers* (a purchase before ``as_of``) are scored by the chosen models;
* *non-buyers* (events but no purchase, or only a row in the members table) cannot be told
  apart by these models (BG/NBD starts at the first purchase, and so do the purchase features),
  so they get the rule of the training window: churn risk = the share of that window's
  non-buyers who made no purchase in its outcome window, expected purchases and spend = their
  means. Constant within the group, and said so in ``metrics["non_buyers"]``.

Bands: ``low`` below 0.3, ``medium`` from 0.3 to below 0.6, ``high`` from 0.6
(:data:`LOW_BELOW`, :data:`HIGH_FROM`); when churn is uninformative on validation, every buyer
gets the base rate, and every member the band ``uninformative``: a ranking that means nothing
is not published.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import polars as pl

from features.columns import (
    CHURN_BAND,
    CHURN_RISK,
    EVENT,
    EXPECTED_PURCHASES,
    EXPECTED_SPEND,
    MEMBER_ID,
    PRICE,
    PURCHASE,
    TIER,
    TIMESTAMP,
)
from features.errors import ConfigError, DataError
from features.frames import require_columns
from features.member_features import INTERACTION_COLUMNS, OUTCOME_PURCHASES, OUTCOME_SPEND
from features.members import FREQUENCY, MONETARY, RECENCY_DAYS, SEGMENT
from features.times import as_naive_utc
from training.member_models.churn import ChurnModel, churn_variants
from training.member_models.config import MemberModelConfig
from training.member_models.evaluation import (
    Kept,
    evaluate_churn,
    evaluate_value,
    fit_and_predict,
    validate_churn,
    validate_value,
)
from training.member_models.failures import failure
from training.member_models.profiles import member_profiles
from training.member_models.sampling import split_members
from training.member_models.selection import choose_churn, choose_value
from training.member_models.snapshots import CHURNED, Snapshot, take_snapshot
from training.member_models.value import ValueModel, value_variants
from training.member_models.windows import WindowPlan, plan_windows

__all__ = [
    "BAND_HIGH",
    "BAND_LOW",
    "BAND_MEDIUM",
    "BAND_UNINFORMATIVE",
    "CHURN_BAND",
    "CHURN_RISK",
    "EXPECTED_PURCHASES",
    "EXPECTED_SPEND",
    "HIGH_FROM",
    "LOW_BELOW",
    "SCORE_COLUMNS",
    "MemberScores",
    "score_members",
]

SCORE_COLUMNS: Final[tuple[str, ...]] = (
    MEMBER_ID,
    CHURN_RISK,
    CHURN_BAND,
    EXPECTED_PURCHASES,
    EXPECTED_SPEND,
    SEGMENT,
    TIER,
    RECENCY_DAYS,
    FREQUENCY,
    MONETARY,
)

#: Band thresholds on churn risk: low < 0.3 <= medium < 0.6 <= high.
LOW_BELOW: Final = 0.3
HIGH_FROM: Final = 0.6
BAND_LOW: Final = "low"
BAND_MEDIUM: Final = "medium"
BAND_HIGH: Final = "high"
BAND_UNINFORMATIVE: Final = "uninformative"

_DEFAULT_CONFIG: Final = MemberModelConfig()


@dataclass(frozen=True)
class MemberScores:
    """``frame``: one row per member (:data:`SCORE_COLUMNS`, sorted by member_id);
    ``metrics``: how every model did and what was chosen (JSON-able, members_metrics.json)."""

    frame: pl.DataFrame
    metrics: dict[str, Any]


def score_members(
    interactions: pl.DataFrame | pl.LazyFrame,
    *,
    as_of: datetime | None = None,
    horizon_days: int = 90,
    members: pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
    config: MemberModelConfig = _DEFAULT_CONFIG,
) -> MemberScores:
    """Churn risk and expected value of every member known before ``as_of`` (default: the
    day after the last event), with the figures behind them.

    ``interactions`` may be lazy (a parquet scan): it is read once per date, never held whole.
    Raises :class:`DataError` when the history is too short for two windows of
    ``horizon_days``.
    """
    if horizon_days < 1:
        raise ConfigError(f"horizon_days must be at least 1, got {horizon_days}")
    lazy = interactions.lazy()
    require_columns(pl.DataFrame(schema=lazy.collect_schema()), INTERACTION_COLUMNS, "interactions")
    data_start, moment, first_purchases, has_prices = _summary(lazy, as_of)
    plan = plan_windows(
        first_purchases,
        data_start,
        moment,
        horizon_days,
        pooled=config.max_pooled_windows,
        min_history_days=config.min_history_days,
        min_window_buyers=config.min_window_buyers,
    )
    snapshots = _Snapshots(lazy, plan, data_start, has_prices, members, items, config)
    run = _Run(config, horizon_days, has_prices)
    run.validate(plan, snapshots)
    run.test(plan, snapshots)
    frame = run.ship(plan, snapshots, member_profiles(lazy, moment, members, config.segments))
    metrics = {
        "as_of": moment.isoformat(),
        "horizon_days": horizon_days,
        "windows": plan.describe(),
        **run.metrics(),
        "members": {
            "scored": frame.height,
            "buyers": snapshots.get(0).buyers.height,
            "non_buyers": snapshots.get(0).non_buyers.height,
        },
    }
    return MemberScores(frame=frame, metrics=metrics)


def _summary(
    lazy: pl.LazyFrame, as_of: datetime | None
) -> tuple[datetime, datetime, np.ndarray, bool]:
    """The first event, the scoring date, each buyer's first purchase before it, and whether
    any purchase before it has a price."""
    bounds = lazy.select(pl.col(TIMESTAMP).min().alias("start"), pl.col(TIMESTAMP).max()).collect()
    start, last = bounds.row(0)
    if start is None:
        raise DataError("interactions: no events, so there is no member to score")
    moment = (
        as_naive_utc(as_of)
        if as_of is not None
        else datetime.combine(last.date() + timedelta(days=1), datetime.min.time())
    )
    purchases = lazy.filter((pl.col(EVENT) == PURCHASE) & (pl.col(TIMESTAMP) < moment))
    first = purchases.group_by(MEMBER_ID).agg(pl.col(TIMESTAMP).min()).collect()
    priced = purchases.select(pl.col(PRICE).is_not_null().any()).collect().item()
    if start >= moment:
        raise DataError(f"interactions: no event before as_of ({moment:%Y-%m-%d %H:%M})")
    return start, moment, first.get_column(TIMESTAMP).to_numpy(), bool(priced)


class _Snapshots:
    """Each date's snapshot, built on first use and released when no step needs it again
    (index k is window k's feature date; 0 is as_of, without outcomes)."""

    def __init__(
        self,
        lazy: pl.LazyFrame,
        plan: WindowPlan,
        data_start: datetime,
        has_prices: bool,
        members: pl.DataFrame | None,
        items: pl.DataFrame | None,
        config: MemberModelConfig,
    ) -> None:
        self._build: Callable[[int], Snapshot] = lambda index: take_snapshot(
            lazy,
            plan.as_of if index == 0 else plan.window(index).features_at,
            horizon_days=plan.horizon_days,
            data_start=data_start,
            with_outcomes=index > 0,
            has_prices=has_prices,
            members=members,
            items=items,
            max_fit_members=config.max_fit_members,
            seed=config.seed + index,
        )
        self._cache: dict[int, Snapshot] = {}
        self.failures: list[dict[str, Any]] = []

    def get(self, index: int) -> Snapshot:
        if index not in self._cache:
            snapshot = self._build(index)
            step = f"window {index}" if index else "as_of"
            self.failures.extend({**entry, "step": step} for entry in snapshot.failures)
            self._cache[index] = snapshot
        return self._cache[index]

    def buyers(self, indices: tuple[int, ...]) -> pl.DataFrame:
        return pl.concat([self.get(index).buyers for index in indices], how="vertical")

    def non_buyers(self, indices: tuple[int, ...]) -> pl.DataFrame:
        return pl.concat([self.get(index).non_buyers for index in indices], how="vertical")

    def keep_only(self, indices: set[int]) -> None:
        for index in set(self._cache) - indices:
            del self._cache[index]


class _Run:
    """The state of one scoring run: what validation kept, the test figures, the choices."""

    def __init__(self, config: MemberModelConfig, horizon_days: int, has_prices: bool) -> None:
        self.config = config
        self.horizon_days = horizon_days
        self.has_prices = has_prices
        self.failures: list[dict[str, Any]] = []
        self.churn: Kept[ChurnModel] = Kept()
        self.value: Kept[ValueModel] = Kept()
        self.churn_test: dict[str, dict[str, Any]] = {}
        self.value_test: dict[str, dict[str, Any]] = {}
        self.shipped: dict[str, Any] = {}
        self.snapshot_failures: list[dict[str, Any]] = []

    def validate(self, plan: WindowPlan, snapshots: _Snapshots) -> None:
        if plan.member_split:
            buyers = snapshots.get(plan.validation_fit[0]).buyers
            held = split_members(buyers.height, self.config.validation_share, self.config.seed)
            train, held_out = buyers.filter(~held), buyers.filter(held)
        else:
            train = snapshots.buyers(plan.validation_fit)
            held_out = snapshots.get(plan.validation_eval).buyers  # type: ignore[arg-type]
        self.churn = validate_churn(
            churn_variants(self.config), train, held_out, self.config, self.failures
        )
        variants = value_variants(self.config, self.horizon_days, has_prices=self.has_prices)
        self.value = validate_value(variants, train, held_out, self.failures)

    def test(self, plan: WindowPlan, snapshots: _Snapshots) -> None:
        snapshots.keep_only({*plan.test_fit, 1, *plan.ship_fit})
        train, held_out = snapshots.buyers(plan.test_fit), snapshots.get(1).buyers
        self.churn_test = evaluate_churn(self.churn, train, held_out, self.config, self.failures)
        self.value_test = evaluate_value(self.value, train, held_out, self.failures)

    def ship(self, plan: WindowPlan, snapshots: _Snapshots, profiles: pl.DataFrame) -> pl.DataFrame:
        snapshots.keep_only({*plan.ship_fit})
        train, now = snapshots.buyers(plan.ship_fit), snapshots.get(0)
        choice = choose_churn(self.churn.figures)
        base_rate = float(train.get_column(CHURNED).mean())  # type: ignore[arg-type]
        risk, churn_name, informative = self._ship_churn(choice.ranked, train, now, base_rate)
        purchases, spend, value_name = self._ship_value(train, now)
        rule = _non_buyer_rule(snapshots.non_buyers(plan.ship_fit), base_rate, self.has_prices)
        self.snapshot_failures = snapshots.failures
        self.shipped = {
            "churn": churn_name,
            "informative": informative,
            "reason": choice.reason
            if churn_name == choice.chosen
            else (f"{choice.chosen} failed to refit for shipping; {churn_name} ships instead"),
            "base_rate": base_rate,
            "value": value_name,
            "non_buyers": {**rule, "members_scored": now.non_buyers.height},
        }
        scores = pl.concat(
            [
                now.buyers.select(MEMBER_ID).with_columns(
                    pl.Series(CHURN_RISK, np.clip(risk, 0.0, 1.0), dtype=pl.Float64),
                    pl.Series(EXPECTED_PURCHASES, purchases, dtype=pl.Float64),
                    (
                        pl.Series(EXPECTED_SPEND, spend, dtype=pl.Float64)
                        if spend is not None
                        else pl.lit(None, dtype=pl.Float64).alias(EXPECTED_SPEND)
                    ),
                ),
                now.non_buyers.select(MEMBER_ID).with_columns(
                    pl.lit(rule["churn_risk"], dtype=pl.Float64).alias(CHURN_RISK),
                    pl.lit(rule["expected_purchases"], dtype=pl.Float64).alias(EXPECTED_PURCHASES),
                    pl.lit(rule["expected_spend"], dtype=pl.Float64).alias(EXPECTED_SPEND),
                ),
            ]
        )
        scores = scores.with_columns(_band(informative).alias(CHURN_BAND))
        return profiles.join(scores, on=MEMBER_ID, how="left").select(SCORE_COLUMNS)

    def _ship_churn(
        self, ranked: tuple[str, ...], train: pl.DataFrame, now: Snapshot, base_rate: float
    ) -> tuple[np.ndarray, str, bool]:
        """The first of the ranked models that refits, else the base rate (uninformative)."""
        for name in ranked:
            try:
                return fit_and_predict(self.churn.factories[name], train, now.buyers)[1], name, True
            except Exception as error:  # recorded; the next model in the ranking ships
                self.failures.append(failure(f"{name} (churn)", error, "shipping"))
        return np.full(now.buyers.height, base_rate), "constant", False

    def _ship_value(
        self, train: pl.DataFrame, now: Snapshot
    ) -> tuple[np.ndarray, np.ndarray | None, str]:
        for name in choose_value(self.value.figures).ranked:
            try:
                purchases, spend = fit_and_predict(self.value.factories[name], train, now.buyers)[1]
                return purchases, spend, name
            except Exception as error:  # recorded; the next model in the ranking ships
                self.failures.append(failure(f"{name} (value)", error, "shipping"))
        raise DataError("no value model could be refit on the latest window (see the failures)")

    def metrics(self) -> dict[str, Any]:
        choice = choose_churn(self.churn.figures)
        value_choice = choose_value(self.value.figures)
        return {
            "churn": {
                "informative": self.shipped["informative"],
                "chosen": self.shipped["churn"],
                "reason": self.shipped["reason"],
                "base_rate": self.shipped["base_rate"],
                "bands": {"low_below": LOW_BELOW, "high_from": HIGH_FROM},
                "variants": self.churn.described,
                "validation": self.churn.figures,
                "test": self.churn_test,
                "chosen_on_validation": choice.chosen,
            },
            "value": {
                "chosen": self.shipped["value"],
                "reason": value_choice.reason,
                "variants": self.value.described,
                "validation": self.value.figures,
                "test": self.value_test,
            },
            "non_buyers": self.shipped["non_buyers"],
            "failed": [*self.snapshot_failures, *self.failures],
        }


def _non_buyer_rule(
    non_buyers: pl.DataFrame, buyer_base_rate: float, has_prices: bool
) -> dict[str, Any]:
    """The training window's non-buyers: how many stayed without a purchase, and their means."""
    if non_buyers.height == 0:
        return {
            "churn_risk": buyer_base_rate,
            "expected_purchases": 0.0,
            "expected_spend": 0.0 if has_prices else None,
            "training_members": 0,
            "rule": "the training window had no non-buyers: the buyers' base rate, no value",
        }
    return {
        "churn_risk": float(non_buyers.get_column(CHURNED).mean()),  # type: ignore[arg-type]
        "expected_purchases": float(non_buyers.get_column(OUTCOME_PURCHASES).mean()),  # type: ignore[arg-type]
        "expected_spend": (
            float(non_buyers.get_column(OUTCOME_SPEND).mean())  # type: ignore[arg-type]
            if has_prices
            else None
        ),
        "training_members": non_buyers.height,
        "rule": "members without a purchase get the training window's non-buyers' churn rate "
        "and mean purchases and spend (one value for the whole group)",
    }


def _band(informative: bool) -> pl.Expr:
    if not informative:
        return pl.lit(BAND_UNINFORMATIVE)
    risk = pl.col(CHURN_RISK)
    return (
        pl.when(risk < LOW_BELOW)
        .then(pl.lit(BAND_LOW))
        .when(risk < HIGH_FROM)
        .then(pl.lit(BAND_MEDIUM))
        .otherwise(pl.lit(BAND_HIGH))
    )
