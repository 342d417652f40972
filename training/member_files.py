"""The member files of a model artifact: scores, profiles, key figures and the member report.

Training writes them once, from the interactions the artifact serves, so that serving, export and
the dashboard read one set of numbers and never recompute them:

* ``members_metrics.json``: how the churn and value models did on validation and on the last
  complete window, which were chosen, and whether churn is informative
  (:mod:`training.member_models`);
* ``member_profiles.parquet``: one row per member with RFM scores, segment, tiers, churn risk,
  expected value, tags and tier progress (:mod:`training.member_profiles`);
* ``tier_rules.json``: the tier ladder the profiles were computed with, which the profile route
  shows beside each member's progress (:mod:`features.tier_rules`);
* ``kpis.json``: the program's key figures and the distributions the dashboard draws
  (:mod:`training.member_kpis`);
* ``members_report.html``: the member report, drawn from that same ``kpis.json``
  (:mod:`training.member_report`).

Scoring can fail where the rest cannot (a history shorter than two horizons): the failure is
recorded in the run's ``failed`` list and the profiles are written unscored, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from features.tier_rules import TIER_RULES_FILE, TierRules, write_tier_rules
from training.artifact import MEMBERS_METRICS_FILE
from training.config import DEFAULT_HORIZON_DAYS
from training.member_kpis import KPIS_FILE, PROFILES_FILE, member_kpis
from training.member_models import MemberModelConfig, MemberScores, score_members
from training.member_profiles import build_member_profiles
from training.member_report import MEMBER_REPORT_FILE, write_member_report
from training.models.base import failure_reason

__all__ = ["MEMBER_SCORES", "MemberFilesConfig", "write_member_files"]

#: The name a scoring failure is recorded under in the run's ``failed`` list.
MEMBER_SCORES = "member scores"


class MemberFilesConfig(BaseModel):
    """What the member files depend on besides the data: the scores' horizon and models, and
    the tier ladder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    horizon_days: int = Field(default=DEFAULT_HORIZON_DAYS, ge=1)
    scoring: MemberModelConfig = MemberModelConfig()
    tier_rules: TierRules = TierRules()


_DEFAULT_CONFIG = MemberFilesConfig()  # frozen, so one shared default is safe


def write_member_files(
    interactions: pl.DataFrame,
    reference_time: datetime,
    directory: Path,
    *,
    members: pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
    config: MemberFilesConfig = _DEFAULT_CONFIG,
    record_failure: Callable[[str, str, str], None] | None = None,
) -> dict[str, Path]:
    """Score the members and write the member files into ``directory``; their paths by name
    (what ``write_artifact`` takes as extra files). A scoring failure goes to
    ``record_failure(model, stage, reason)`` and leaves the scores out."""
    scores = _scores(interactions, members, items, config, record_failure)
    profiles = build_member_profiles(
        interactions, reference_time, members=members, items=items,
        scores=scores.frame if scores is not None else None,
        scores_as_of=datetime.fromisoformat(scores.metrics["as_of"]) if scores else None,
        tier_rules=config.tier_rules,
    )  # fmt: skip
    kpis = member_kpis(
        interactions, profiles, reference_time, members=members,
        horizon_days=config.horizon_days if scores is not None else None,
    )  # fmt: skip
    paths = {name: directory / name for name in (KPIS_FILE, PROFILES_FILE, MEMBER_REPORT_FILE)}
    paths[KPIS_FILE].write_text(json.dumps(kpis, indent=2))
    profiles.write_parquet(paths[PROFILES_FILE])
    # Drawn from the JSON as written, so that the report's numbers are the dashboard's.
    write_member_report(json.loads(paths[KPIS_FILE].read_text()), paths[MEMBER_REPORT_FILE])
    paths[TIER_RULES_FILE] = write_tier_rules(config.tier_rules, directory)
    if scores is not None:
        paths[MEMBERS_METRICS_FILE] = directory / MEMBERS_METRICS_FILE
        paths[MEMBERS_METRICS_FILE].write_text(json.dumps(scores.metrics, indent=2, default=str))
    return paths


def _scores(
    interactions: pl.DataFrame,
    members: pl.DataFrame | None,
    items: pl.DataFrame | None,
    config: MemberFilesConfig,
    record_failure: Callable[[str, str, str], None] | None,
) -> MemberScores | None:
    try:
        return score_members(
            interactions, horizon_days=config.horizon_days, members=members, items=items,
            config=config.scoring,
        )  # fmt: skip
    except Exception as error:  # recorded and reported; the artifact is written unscored
        if record_failure is None:
            raise
        record_failure(MEMBER_SCORES, "scoring", failure_reason(error))
        return None
