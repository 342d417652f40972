"""The member profile frame: one row per member with everything ``GET /v1/members/{id}/profile``
shows, built at training time and written into the model artifact (``member_profiles.parquet``).

It joins, as of one reference time (the data's end):

* the RFM scores, lifecycle segment and value tier of
  :func:`features.members.compute_member_profiles` (taken as they are, never recomputed), with
  the members file's declared ``tier``;
* the churn risk and expected value of the member scores (``training.member_models``'
  ``MemberScores.frame``), null where scoring did not run; ``scores_as_of`` says when they
  were scored;
* the tags and purchase cycle of :mod:`features.member_tags` and the attribute segments of
  :mod:`features.member_attributes`;
* tier progress under :class:`features.tier_rules.TierRules`: ``tier_spend`` (spend in the
  rules' trailing window), ``earned_tier`` (the tier that spend reaches; the declared ``tier``
  is the members file's and may differ), ``next_tier`` and ``spend_to_next_tier`` (null at the
  top).

Everything is a polars aggregation over the purchase lines (built once) and joins on
``member_id``, so that a million members cost seconds, not a loop per member.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import numpy as np
import polars as pl

from features import columns as col
from features.columns import CHURN_BAND, CHURN_RISK, EXPECTED_PURCHASES, EXPECTED_SPEND
from features.frames import require_columns
from features.member_attributes import AGE_BAND, JOIN_COHORT, attribute_segments
from features.member_tags import (
    BEHAVIOUR_TAGS,
    LINE_VALUE,
    PREFERENCE_TAG_DTYPE,
    PREFERENCE_TAGS,
    PURCHASE_CYCLE_DAYS,
    TagRules,
    behaviour_tags,
    preference_tags,
    purchase_cycles,
    purchase_lines,
)
from features.members import (
    F_SCORE,
    FIRST_SEEN,
    FREQUENCY,
    LAST_PURCHASE,
    M_SCORE,
    MONETARY,
    R_SCORE,
    RECENCY_DAYS,
    RFM_SCORE,
    SEGMENT,
    VALUE_TIER,
    compute_member_profiles,
)
from features.tier_rules import TierRules
from features.times import as_naive_utc

__all__ = [
    "CHURN_BAND",
    "CHURN_RISK",
    "EARNED_TIER",
    "EXPECTED_PURCHASES",
    "EXPECTED_SPEND",
    "NEXT_TIER",
    "PROFILE_FRAME_COLUMNS",
    "SCORES_AS_OF",
    "SPEND_TO_NEXT_TIER",
    "TIER_SPEND",
    "build_member_profiles",
]

#: Columns taken from the member scores.
SCORES_AS_OF: Final = "scores_as_of"
#: Tier progress columns.
TIER_SPEND: Final = "tier_spend"
EARNED_TIER: Final = "earned_tier"
NEXT_TIER: Final = "next_tier"
SPEND_TO_NEXT_TIER: Final = "spend_to_next_tier"

_SCORE_TYPES: Final = {
    CHURN_RISK: pl.Float64, CHURN_BAND: pl.Utf8,
    EXPECTED_PURCHASES: pl.Float64, EXPECTED_SPEND: pl.Float64,
}  # fmt: skip
#: The profile frame's columns, in order.
PROFILE_FRAME_COLUMNS: Final = (
    col.MEMBER_ID, SEGMENT, col.TIER, VALUE_TIER, FREQUENCY, MONETARY, LAST_PURCHASE, FIRST_SEEN,
    RECENCY_DAYS, R_SCORE, F_SCORE, M_SCORE, RFM_SCORE, *_SCORE_TYPES, SCORES_AS_OF,
    PREFERENCE_TAGS, BEHAVIOUR_TAGS, PURCHASE_CYCLE_DAYS, TIER_SPEND, EARNED_TIER, NEXT_TIER,
    SPEND_TO_NEXT_TIER, col.REGION, AGE_BAND, JOIN_COHORT,
)  # fmt: skip

#: Tier spend is rounded to the cent before it is compared with the thresholds, so that float
#: noise in a sum (24.999999...) never keeps a member below a tier they reached.
_CENTS: Final = 2
_DEFAULT_TIER_RULES = TierRules()  # frozen, so shared defaults are safe
_DEFAULT_TAG_RULES = TagRules()


def build_member_profiles(
    interactions: pl.DataFrame,
    reference_time: datetime,
    *,
    members: pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
    scores: pl.DataFrame | None = None,
    scores_as_of: datetime | None = None,
    tier_rules: TierRules = _DEFAULT_TIER_RULES,
    tag_rules: TagRules = _DEFAULT_TAG_RULES,
) -> pl.DataFrame:
    """One row per member (:data:`PROFILE_FRAME_COLUMNS`), sorted by ``member_id``.

    ``interactions``: validated, with events after ``reference_time`` ignored; ``members``
    and ``items``: the members file and the catalog, when there are; ``scores``: the member
    scores frame (``member_id``, ``churn_risk``, ``churn_band``, ``expected_purchases``,
    ``expected_spend``), None when scoring did not run (those columns are then null), scored
    as of ``scores_as_of``. Members are those of :func:`compute_member_profiles` (everyone
    with an event or in the members file); a scored member outside them is left out.
    """
    reference = as_naive_utc(reference_time)
    profiles = compute_member_profiles(interactions, reference_time=reference, members=members)
    if col.TIER not in profiles.columns:
        profiles = profiles.with_columns(pl.lit(None, dtype=pl.Utf8).alias(col.TIER))
    lines = purchase_lines(interactions, reference, items, tag_rules)
    window_start = reference - timedelta(days=tier_rules.window_days)
    tier_spend = (
        lines.lazy()
        .filter(pl.col(col.TIMESTAMP) > window_start)
        .group_by(col.MEMBER_ID)
        .agg(pl.col(LINE_VALUE).sum().alias(TIER_SPEND))
    )
    parts = pl.collect_all([
        preference_tags(lines, tag_rules),
        behaviour_tags(lines, tag_rules),
        purchase_cycles(lines),
        tier_spend,
        attribute_segments(members, reference),
    ])  # fmt: skip
    for part in parts:
        profiles = profiles.join(part, on=col.MEMBER_ID, how="left")
    profiles = profiles.with_columns(
        pl.col(PREFERENCE_TAGS).fill_null(pl.lit([], dtype=PREFERENCE_TAG_DTYPE)),
        pl.col(BEHAVIOUR_TAGS).fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
        pl.col(TIER_SPEND).fill_null(0.0).round(_CENTS),
    )
    profiles = _with_scores(profiles, scores, scores_as_of)
    return _with_tier_progress(profiles, tier_rules).select(PROFILE_FRAME_COLUMNS)


def _with_scores(
    profiles: pl.DataFrame, scores: pl.DataFrame | None, scores_as_of: datetime | None
) -> pl.DataFrame:
    """The churn and value columns of ``scores`` (null columns without scores)."""
    when = None if scores is None or scores_as_of is None else as_naive_utc(scores_as_of)
    scored_at = pl.lit(when, dtype=pl.Datetime("us")).alias(SCORES_AS_OF)
    if scores is None:
        nulls = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in _SCORE_TYPES.items()]
        return profiles.with_columns(*nulls, scored_at)
    require_columns(scores, (col.MEMBER_ID, *_SCORE_TYPES), "member scores")
    scored = scores.select(
        pl.col(col.MEMBER_ID).cast(pl.Utf8),
        *(pl.col(name).cast(dtype) for name, dtype in _SCORE_TYPES.items()),
    ).unique(col.MEMBER_ID, keep="first")
    return profiles.join(scored, on=col.MEMBER_ID, how="left").with_columns(scored_at)


def _with_tier_progress(profiles: pl.DataFrame, rules: TierRules) -> pl.DataFrame:
    """The tier each member's spend reaches, the next one, and how much more it takes."""
    thresholds = np.asarray(rules.thresholds, dtype=np.float64)
    ladder = pl.Series(rules.names, dtype=pl.Utf8)
    spend = profiles.get_column(TIER_SPEND).to_numpy()
    # A negative spend (net returns) is still the lowest tier.
    earned = np.maximum(np.searchsorted(thresholds, spend, side="right") - 1, 0)
    has_next = pl.Series(earned + 1 < len(thresholds))
    following = np.minimum(earned + 1, len(thresholds) - 1)
    to_next = np.round(thresholds[following] - spend, _CENTS)
    return profiles.with_columns(
        ladder.gather(earned).alias(EARNED_TIER),
        pl.when(has_next).then(ladder.gather(following)).alias(NEXT_TIER),
        pl.when(has_next).then(pl.Series(to_next)).alias(SPEND_TO_NEXT_TIER),
    )
