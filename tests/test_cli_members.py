"""``recsys members score`` writes the scoring contract, and ``recsys export`` targets members by
their scores: the real console script on the tiny store and its trained model artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from features.errors import ConfigError
from tests.cli import run_recsys
from training.artifact import MEMBERS_METRICS_FILE, load_artifact
from training.member_kpis import PROFILES_FILE
from training.models import MODEL_CLASSES
from training.targeting import ScoreThresholds, members_by_scores

#: The scoring contract of issue 13, in order.
SCORE_COLUMNS = (
    "member_id", "churn_risk", "churn_band", "expected_purchases", "expected_spend", "segment",
    "tier", "recency_days", "frequency", "monetary",
)  # fmt: skip


def test_members_score_writes_one_row_per_member_and_its_figures(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    store = tiny_trained[0]
    out = tmp_path / "scores.csv"
    result = run_recsys(
        "members", "score", "-i", store / "interactions.parquet",
        "--members", store / "members.parquet", "--horizon-days", "60", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = pl.read_csv(out)
    assert tuple(scores.columns) == SCORE_COLUMNS
    everyone = pl.read_parquet(store / "members.parquet").get_column("member_id")
    assert scores.get_column("member_id").sort().to_list() == everyone.sort().to_list()
    risk = scores.get_column("churn_risk")
    assert risk.null_count() == 0 and 0.0 <= risk.min() <= risk.max() <= 1.0  # type: ignore[operator]
    metrics = json.loads((tmp_path / MEMBERS_METRICS_FILE).read_text())
    assert metrics["horizon_days"] == 60
    assert set(metrics["churn"]["test"]) >= {"constant", "recency", "bgnbd", "lightgbm"}
    assert isinstance(metrics["churn"]["informative"], bool)
    assert "ROC AUC" in result.stdout and "purchases MAE" in result.stdout


def test_members_score_refuses_an_output_it_cannot_write(tmp_path: Path) -> None:
    result = run_recsys("members", "score", "-i", tmp_path / "x.csv", "--out", tmp_path / "s.txt")
    assert result.returncode == 2
    assert "--out" in result.stderr and ".parquet or .csv" in result.stderr


def test_export_keeps_the_members_at_risk_most_at_risk_first(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    artifact = tiny_trained[1]
    profiles = pl.read_parquet(artifact / PROFILES_FILE)
    wanted = profiles.filter((pl.col("churn_risk") >= 0.6) & (pl.col("expected_spend") >= 1.0))
    assert 0 < wanted.height < profiles.height, "the tiny store should have some members at risk"
    out = tmp_path / "winback.csv"
    result = run_recsys(
        "export", "--artifact", artifact, "--out", out, "-n", "3",
        "--min-churn-risk", "0.6", "--min-expected-value", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    exported = pl.read_csv(out).get_column("member_id").unique(maintain_order=True)
    assert sorted(exported.to_list()) == sorted(wanted.get_column("member_id").to_list())
    risks = dict(zip(profiles["member_id"], profiles["churn_risk"], strict=True))
    in_order = [risks[member] for member in exported]
    assert in_order == sorted(in_order, reverse=True)


def test_a_churn_threshold_is_refused_on_uninformative_scores(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    copy = shutil.copytree(tiny_trained[1], tmp_path / "artifact")
    metrics_path = copy / MEMBERS_METRICS_FILE
    metrics = json.loads(metrics_path.read_text())
    metrics["churn"].update(informative=False, reason="no model beat the constant")
    metrics_path.write_text(json.dumps(metrics))
    artifact = load_artifact(copy, verify=False, model_classes=MODEL_CLASSES)
    with pytest.raises(ConfigError, match=r"uninformative.*no model beat the constant"):
        members_by_scores(artifact, ScoreThresholds(min_churn_risk=0.5))
    by_value = members_by_scores(artifact, ScoreThresholds(min_expected_value=0.0))
    assert len(by_value) == pl.read_parquet(copy / PROFILES_FILE).height
