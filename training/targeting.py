"""Win-back targeting: the members of a model artifact whose scores pass a campaign's thresholds.

``recsys export --min-churn-risk 0.6 --min-expected-value 50`` reads the scores that training wrote
into the artifact (``member_profiles.parquet``: churn risk and expected spend per member, as of
its ``data_end``) and keeps the members at or above both. A threshold is refused, with the reason,
rather than applied to scores that cannot carry it: churn scores flagged uninformative (every
member holds the base rate, so a threshold picks all or none for no reason), an artifact trained
before member scores existed, or expected spend on data without prices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from features import columns as col
from features.columns import CHURN_RISK, EXPECTED_SPEND
from features.errors import ConfigError
from training.artifact import MEMBERS_METRICS_FILE, ModelArtifact
from training.member_kpis import PROFILES_FILE

__all__ = ["ScoreThresholds", "members_by_scores"]


@dataclass(frozen=True)
class ScoreThresholds:
    """Lower bounds a member's scores must reach (None: no bound on that score)."""

    min_churn_risk: float | None = None
    min_expected_value: float | None = None

    @property
    def any(self) -> bool:
        return self.min_churn_risk is not None or self.min_expected_value is not None


def members_by_scores(artifact: ModelArtifact, thresholds: ScoreThresholds) -> list[str]:
    """Ids of the artifact's members whose churn risk and expected spend reach the thresholds,
    highest churn risk first (then highest expected spend), so that a capped campaign keeps the
    members most at risk."""
    profiles = _scored_profiles(artifact)
    kept = pl.lit(True)
    if thresholds.min_churn_risk is not None:
        _require_informative_churn(artifact, profiles)
        kept = kept & (pl.col(CHURN_RISK) >= thresholds.min_churn_risk)
    if thresholds.min_expected_value is not None:
        if profiles.get_column(EXPECTED_SPEND).null_count() == profiles.height:
            raise ConfigError(
                "--min-expected-value: the model artifact has no expected spend (its data had "
                "no prices); train on interactions with a price column"
            )
        kept = kept & (pl.col(EXPECTED_SPEND) >= thresholds.min_expected_value)
    return (
        profiles.filter(kept)
        .sort(
            [CHURN_RISK, EXPECTED_SPEND, col.MEMBER_ID],
            descending=[True, True, False],
            nulls_last=True,
        )
        .get_column(col.MEMBER_ID)
        .to_list()
    )


def _scored_profiles(artifact: ModelArtifact) -> pl.DataFrame:
    path = artifact.extra_files.get(PROFILES_FILE)
    wanted = (col.MEMBER_ID, CHURN_RISK, EXPECTED_SPEND)
    if path is None:
        raise ConfigError(
            f"--min-churn-risk / --min-expected-value: the model artifact has no {PROFILES_FILE}; "
            "retrain it with recsys train, which scores the members into it"
        )
    profiles = pl.read_parquet(path)
    if any(name not in profiles.columns for name in wanted):
        raise ConfigError(
            "--min-churn-risk / --min-expected-value: the model artifact was trained before "
            "member scores existed; retrain it with recsys train"
        )
    return profiles.select(wanted)


def _require_informative_churn(artifact: ModelArtifact, profiles: pl.DataFrame) -> None:
    path = artifact.extra_files.get(MEMBERS_METRICS_FILE)
    churn = json.loads(path.read_text()).get("churn", {}) if path is not None else {}
    if path is None or profiles.get_column(CHURN_RISK).null_count() == profiles.height:
        raise ConfigError(
            "--min-churn-risk: the model artifact holds no churn scores (scoring failed at "
            "training; see metrics.json 'failed'); fix the cause and retrain"
        )
    if not churn.get("informative", False):
        raise ConfigError(
            "--min-churn-risk: the churn scores of this model artifact are uninformative "
            f"({churn.get('reason', 'no model beat the constant and recency on validation')}), "
            "so a threshold would pick members for no reason; target by segment instead "
            "(--segment at-risk)"
        )
