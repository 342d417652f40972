"""Member profiles: RFM scores, lifecycle segments and value tiers, as of a reference time.

Marketing teams act on segments ("win back the at-risk", "thank the platinum"), and models use
the same numbers as member features, so the definitions live here once:

* recency is measured from the member's last *activity*: the last purchase if there is one,
  else the last event of any kind, else the date the member joined;
* frequency counts distinct purchase orders (:func:`features.baskets.order_key`: an
  ``order_id``, or one order per member and day where the order id is missing); monetary sums
  ``quantity * price`` over purchases;
* scores are 1-5 quintiles of the member base, 5 being best (most recent, most frequent,
  highest spend);
* value tiers cut monetary value at quantiles of the members who bought anything; members who
  bought nothing are always the lowest tier.

Two columns run bronze to platinum and mean different things: ``value_tier`` is computed here,
from spend in the data, while ``tier`` is the members file's declared tier, carried as it is
(a program's own rules give it, so its shares differ). The reference time defaults to the
data's last event, and that is when every count of members per segment is taken: the demo's
and ``recsys segments``' table, the training report's members per segment, and the segments a
model artifact carries for ``recsys export --segment`` (as of its ``data_end``).
"""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from typing import Final

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, model_validator

from features.baskets import line_value, order_key
from features.columns import (
    EVENT,
    JOINED_AT,
    MEMBER_ID,
    ORDER_ID,
    PRICE,
    PURCHASE,
    QUANTITY,
    TIER,
    TIMESTAMP,
)
from features.errors import ConfigError, DataError
from features.frames import require_columns
from features.times import as_naive_utc, days_before

__all__ = [
    "ACTIVE",
    "AT_RISK",
    "BRONZE",
    "CHURNED",
    "FIRST_SEEN",
    "FREQUENCY",
    "F_SCORE",
    "GOLD",
    "LAST_PURCHASE",
    "LAST_SEEN",
    "MONETARY",
    "M_SCORE",
    "NEW",
    "PLATINUM",
    "RECENCY_DAYS",
    "RFM_SCORE",
    "R_SCORE",
    "SEGMENT",
    "SEGMENTS",
    "SILVER",
    "SLEEPING",
    "VALUE_TIER",
    "VALUE_TIERS",
    "SegmentConfig",
    "compute_member_profiles",
    "segment_summary",
]

#: Lifecycle segments, from most to least engaged.
NEW: Final = "new"
ACTIVE: Final = "active"
AT_RISK: Final = "at-risk"
SLEEPING: Final = "sleeping"
CHURNED: Final = "churned"
SEGMENTS: Final[tuple[str, ...]] = (NEW, ACTIVE, AT_RISK, SLEEPING, CHURNED)

#: Value tiers, from lowest to highest monetary value.
BRONZE: Final = "bronze"
SILVER: Final = "silver"
GOLD: Final = "gold"
PLATINUM: Final = "platinum"
VALUE_TIERS: Final[tuple[str, ...]] = (BRONZE, SILVER, GOLD, PLATINUM)

#: Profile columns (besides ``member_id`` and the declared ``tier``).
FIRST_SEEN: Final = "first_seen"
LAST_SEEN: Final = "last_seen"
LAST_PURCHASE: Final = "last_purchase"
RECENCY_DAYS: Final = "recency_days"
FREQUENCY: Final = "frequency"
MONETARY: Final = "monetary"
R_SCORE: Final = "r_score"
F_SCORE: Final = "f_score"
M_SCORE: Final = "m_score"
RFM_SCORE: Final = "rfm_score"
SEGMENT: Final = "segment"
VALUE_TIER: Final = "value_tier"

_SCORE_LEVELS: Final = 5
_PROFILE_COLUMNS: Final[tuple[str, ...]] = (
    MEMBER_ID,
    FIRST_SEEN,
    LAST_SEEN,
    LAST_PURCHASE,
    RECENCY_DAYS,
    FREQUENCY,
    MONETARY,
    R_SCORE,
    F_SCORE,
    M_SCORE,
    RFM_SCORE,
    SEGMENT,
    VALUE_TIER,
)
_INTERACTION_COLUMNS: Final = (MEMBER_ID, EVENT, TIMESTAMP, QUANTITY, PRICE, ORDER_ID)


class SegmentConfig(BaseModel):
    """Thresholds of the lifecycle segments (in days) and of the value tiers (quantiles).

    A member first seen at most ``new_days`` ago is new. Otherwise, with d the days since the
    last activity: active if d <= ``active_days``, at-risk if d <= ``at_risk_days``, sleeping if
    d <= ``sleeping_days``, churned beyond. Monetary value above the i-th of ``tier_quantiles``
    (quantiles of the buying members) lifts a member one tier.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    new_days: float = 30.0
    active_days: float = 90.0
    at_risk_days: float = 180.0
    sleeping_days: float = 365.0
    tier_quantiles: tuple[float, ...] = (0.5, 0.8, 0.95)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> SegmentConfig:
        days = (self.active_days, self.at_risk_days, self.sleeping_days)
        if not (self.new_days > 0 and days[0] > 0 and _strictly_increasing(days)):
            raise ConfigError(
                "segment thresholds must be positive with active_days < at_risk_days < "
                f"sleeping_days, got new_days={self.new_days}, active_days={days[0]}, "
                f"at_risk_days={days[1]}, sleeping_days={days[2]}"
            )
        return self

    @model_validator(mode="after")
    def _tier_quantiles_valid(self) -> SegmentConfig:
        quantiles = self.tier_quantiles
        expected = len(VALUE_TIERS) - 1
        in_range = all(0.0 < quantile < 1.0 for quantile in quantiles)
        if len(quantiles) != expected or not in_range or not _strictly_increasing(quantiles):
            raise ConfigError(
                f"tier_quantiles must be {expected} increasing numbers strictly between 0 and 1 "
                f"(cut points between {', '.join(VALUE_TIERS)}), got {quantiles}"
            )
        return self


def _strictly_increasing(values: tuple[float, ...]) -> bool:
    return all(lower < upper for lower, upper in pairwise(values))


_DEFAULT_CONFIG = SegmentConfig()  # frozen, so one shared default is safe


def compute_member_profiles(
    interactions: pl.DataFrame,
    reference_time: datetime | None = None,
    members: pl.DataFrame | None = None,
    config: SegmentConfig = _DEFAULT_CONFIG,
) -> pl.DataFrame:
    """One profile row per member, sorted by ``member_id``, as of ``reference_time``.

    The reference time defaults to the latest interaction (or, with no interactions, the
    latest ``joined_at``). Events after it are ignored: a profile as of a date must not see
    the future. Members of the members table without interactions get a row too (frequency and
    monetary 0; their activity is their ``joined_at``, and with none they count as churned).
    The members table's ``joined_at`` makes a member's first-seen date earlier when it is, and
    its ``tier`` is carried as the declared tier.
    """
    require_columns(interactions, _INTERACTION_COLUMNS, "interactions")
    roster = _member_roster(members)
    reference = _reference_time(interactions, roster, reference_time)
    activity = _activity(interactions, reference)
    profiles = _with_lifetime(
        roster.join(activity, on=MEMBER_ID, how="full", coalesce=True), reference
    )
    profiles = profiles.with_columns(
        *_rfm_scores(),
        _segment(reference, config).alias(SEGMENT),
        _value_tiers(profiles.get_column(MONETARY), config.tier_quantiles).alias(VALUE_TIER),
    ).with_columns(pl.concat_str(R_SCORE, F_SCORE, M_SCORE).alias(RFM_SCORE))
    declared = [TIER] if TIER in profiles.columns else []
    return profiles.select(*_PROFILE_COLUMNS, *declared).sort(MEMBER_ID)


def _member_roster(members: pl.DataFrame | None) -> pl.DataFrame:
    """member_id, joined_at (null when unknown) and the declared tier when the table has one."""
    if members is None:
        return pl.DataFrame(schema={MEMBER_ID: pl.Utf8, JOINED_AT: pl.Datetime("us")})
    require_columns(members, (MEMBER_ID,), "members")
    joined_at = (
        pl.col(JOINED_AT).cast(pl.Datetime("us"))
        if JOINED_AT in members.columns
        else pl.lit(None, dtype=pl.Datetime("us"))
    )
    declared = [pl.col(TIER).cast(pl.Utf8)] if TIER in members.columns else []
    return members.unique(MEMBER_ID, keep="first", maintain_order=True).select(
        pl.col(MEMBER_ID).cast(pl.Utf8), joined_at.alias(JOINED_AT), *declared
    )


def _reference_time(
    interactions: pl.DataFrame, roster: pl.DataFrame, reference_time: datetime | None
) -> datetime:
    if reference_time is not None:
        return as_naive_utc(reference_time)
    latest = interactions.get_column(TIMESTAMP).max()
    if latest is None:
        latest = roster.get_column(JOINED_AT).max()
    if latest is None:
        raise DataError(
            "cannot infer a reference time: there are no interactions and no joined_at dates; "
            "pass reference_time explicitly"
        )
    return latest  # type: ignore[return-value]


def _activity(interactions: pl.DataFrame, reference: datetime) -> pl.DataFrame:
    """Per member, events up to ``reference``: first/last event, last purchase, distinct purchase
    orders, and spend (purchase columns are null for members who never bought).

    The purchase figures come from the purchase rows alone, and the reference-time filter is
    lazy: an eager filter copied every column of the interactions, and one group-by over all
    events built the order struct and the spend of every row, though purchases are a small
    share of events. Purchases are aggregated eagerly, as before, so that spend adds up in the
    same order (a lazy group-by sums in another order, which moves members sitting exactly on
    a value-tier cut point).
    """
    events = interactions.lazy().filter(pl.col(TIMESTAMP) <= reference)
    seen = events.group_by(MEMBER_ID).agg(
        pl.col(TIMESTAMP).min().alias(FIRST_SEEN), pl.col(TIMESTAMP).max().alias(LAST_SEEN)
    )
    purchases = events.filter(pl.col(EVENT) == PURCHASE).select(
        MEMBER_ID, TIMESTAMP, ORDER_ID, QUANTITY, PRICE
    )
    bought = (
        purchases.collect()
        .group_by(MEMBER_ID)
        .agg(
            pl.col(TIMESTAMP).max().alias(LAST_PURCHASE),
            order_key(interactions.columns).n_unique().alias(FREQUENCY),
            line_value().sum().alias(MONETARY),
        )
    )
    return seen.collect().join(bought, on=MEMBER_ID, how="left")


def _with_lifetime(profiles: pl.DataFrame, reference: datetime) -> pl.DataFrame:
    """Complete what the events alone cannot say.

    An earlier ``joined_at`` moves first_seen back (a member is known since joining); recency
    counts from the last activity; members without purchases have frequency and spend 0.
    """
    last_activity = pl.coalesce(LAST_PURCHASE, LAST_SEEN, JOINED_AT)
    return profiles.with_columns(
        pl.min_horizontal(FIRST_SEEN, JOINED_AT).alias(FIRST_SEEN),
        days_before(reference, last_activity).alias(RECENCY_DAYS),
        pl.col(FREQUENCY).fill_null(0),
        pl.col(MONETARY).fill_null(0.0),
    )


def _rfm_scores() -> list[pl.Expr]:
    """R, F and M quintile scores; a member with no activity at all is the least recent."""
    recency = pl.col(RECENCY_DAYS).fill_null(float("inf"))
    return [
        _quintile_score(recency, higher_is_better=False).alias(R_SCORE),
        _quintile_score(pl.col(FREQUENCY), higher_is_better=True).alias(F_SCORE),
        _quintile_score(pl.col(MONETARY), higher_is_better=True).alias(M_SCORE),
    ]


def _quintile_score(values: pl.Expr, *, higher_is_better: bool) -> pl.Expr:
    """1..5 by position in the member base; ties share the lower score, so a tie never lifts."""
    rank = values.rank("min", descending=not higher_is_better).cast(pl.Int64)
    return ((rank - 1) * _SCORE_LEVELS // pl.len() + 1).cast(pl.Int8)


def _segment(reference: datetime, config: SegmentConfig) -> pl.Expr:
    recency = pl.col(RECENCY_DAYS)
    return (
        pl.when(days_before(reference, FIRST_SEEN) <= config.new_days)
        .then(pl.lit(NEW))
        .when(recency <= config.active_days)
        .then(pl.lit(ACTIVE))
        .when(recency <= config.at_risk_days)
        .then(pl.lit(AT_RISK))
        .when(recency <= config.sleeping_days)
        .then(pl.lit(SLEEPING))
        .otherwise(pl.lit(CHURNED))
    )


def _value_tiers(monetary: pl.Series, quantiles: tuple[float, ...]) -> pl.Series:
    """Tier index = number of cut points strictly below the member's monetary value."""
    spenders = monetary.filter(monetary > 0).to_numpy()
    cut_points = np.quantile(spenders, quantiles) if spenders.size else np.empty(0)
    tier_index = np.searchsorted(cut_points, monetary.to_numpy(), side="left")
    return pl.Series(np.asarray(VALUE_TIERS)[tier_index], dtype=pl.Utf8)


def segment_summary(profiles: pl.DataFrame) -> pl.DataFrame:
    """Members, share of members and mean monetary per segment, value tier and declared tier.

    Long format (columns ``group``, ``name``, ``members``, ``share``, ``mean_monetary``) so that
    one table prints and logs all groupings; segments and value tiers are listed in their
    canonical order, including empty ones, so that reports stay comparable across runs.
    """
    require_columns(profiles, (SEGMENT, VALUE_TIER, MONETARY), "member profiles")
    parts = [
        _summarise(profiles, SEGMENT, pl.Series(SEGMENTS)),
        _summarise(profiles, VALUE_TIER, pl.Series(VALUE_TIERS)),
    ]
    if TIER in profiles.columns:
        parts.append(_summarise(profiles, TIER, profiles.get_column(TIER).unique().sort()))
    return pl.concat(parts)


def _summarise(profiles: pl.DataFrame, column: str, names: pl.Series) -> pl.DataFrame:
    counts = profiles.group_by(column).agg(
        pl.len().alias("members"), pl.col(MONETARY).mean().alias("mean_monetary")
    )
    members = pl.col("members").fill_null(0)
    return (
        pl.DataFrame({column: names.cast(pl.Utf8)})
        .join(counts, on=column, how="left", nulls_equal=True, maintain_order="left")
        .select(
            pl.lit(column).alias("group"),
            pl.col(column).alias("name"),
            members.alias("members"),
            (members / max(profiles.height, 1)).alias("share"),
            pl.col("mean_monetary"),
        )
    )
