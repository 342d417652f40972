"""MLflow tracking, registry and champion logic (training/tracking/) on a real SQLite store.

One store serves the whole module (creating its tables takes seconds); each test registers
under its own model name so that versions and aliases do not leak between tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from features.errors import ConfigError
from tests.cli import run_recsys
from tests.test_report import MODELS, training_metrics
from training.member_report import MEMBER_REPORT_FILE
from training.tracking import (
    CHAMPION_ALIAS,
    PROTOCOL_FIELDS,
    PromotionDecision,
    TrackingResult,
    default_tracking_uri,
    download_artifact,
    log_training_run,
    metric_key,
    promote,
    protocol_fingerprint,
)
from training.tracking.runs import STEP_METRIC

FINGERPRINT = "fp-1234"
POPULAR_NDCG = 0.2


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store whose experiments keep their artifacts beside it, inside the tmp dir."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    """A stand-in model artifact: a manifest and one array, which is all registering looks at."""
    directory = tmp_path / "artifact"
    (directory / "ids").mkdir(parents=True)
    (directory / "manifest.json").write_text(json.dumps({"data_fingerprint": FINGERPRINT}))
    np.save(directory / "ids" / "items.npy", np.arange(5))
    return directory


def _champion(client: MlflowClient, name: str) -> str:
    return str(client.get_registered_model(name).aliases[CHAMPION_ALIAS])


def test_metric_key_replaces_the_at_sign() -> None:
    assert metric_key("precision@10") == "precision_at_10"
    assert metric_key("map") == "map"


def test_default_tracking_uri_is_sqlite_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"
    assert (tmp_path / "data").is_dir()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert default_tracking_uri() == "http://tracking.example:5000"


def test_log_training_run_logs_a_parent_and_one_child_per_model(
    tracking_uri: str, client: MlflowClient, artifact: Path
) -> None:
    metrics = training_metrics()
    (artifact / MEMBER_REPORT_FILE).write_text("<!DOCTYPE html><title>members</title>")
    result = log_training_run(
        metrics, artifact, tracking_uri=tracking_uri, registered_model="runs", experiment="runs"
    )

    parent = client.get_run(result.run_id)
    chosen = metrics["models"]["ease"]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["ndcg_at_10"] == pytest.approx(chosen["ndcg@10"])
    assert parent.data.metrics["precision_at_5"] == pytest.approx(chosen["precision@5"])
    assert parent.data.params["chosen"] == "ease"
    assert parent.data.params["primary_metric"] == "ndcg@10"
    assert parent.data.params["protocol.split"] == "temporal:2011-09-01"
    artifacts = {entry.path for entry in client.list_artifacts(result.run_id)}
    assert {"metrics.json", "report.html", MEMBER_REPORT_FILE, "figures", "artifact"} <= artifacts
    assert len(client.list_artifacts(result.run_id, "figures")) == 4

    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{result.run_id}'"
    )
    by_name = {run.info.run_name: run for run in children}
    assert set(by_name) == set(MODELS)
    popular = by_name["popular"].data
    assert popular.metrics["ndcg_at_10"] == pytest.approx(metrics["models"]["popular"]["ndcg@10"])
    validation = metrics["validation"]["popular"]["ndcg@10"]
    assert popular.metrics["val_ndcg_at_10"] == pytest.approx(validation)
    assert popular.metrics["fit_s"] == pytest.approx(0.2)
    assert popular.params["l2"] == "500.0"


def metrics_on(
    test_data: str,
    ndcg: float,
    *,
    popular: float = POPULAR_NDCG,
    failed: tuple[dict[str, str], ...] = (),
    **protocol: object,
) -> dict[str, Any]:
    """``training_metrics`` of a run tested on the data named ``test_data`` (its fingerprint is
    the name's sha256), the chosen model (ease) at test ndcg@10 ``ndcg``, popularity at
    ``popular``, the given failures and protocol fields."""
    metrics = training_metrics(chosen_ndcg=ndcg)
    metrics["protocol"] |= {"test_fingerprint": _sha256(test_data), **protocol}
    metrics["models"]["popular"]["ndcg@10"] = popular
    metrics["failed"] = list(failed)
    return metrics


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _register(
    tracking_uri: str, artifact: Path, name: str, metrics: dict[str, Any], **kwargs: Any
) -> TrackingResult:
    return log_training_run(
        metrics, artifact, tracking_uri=tracking_uri, registered_model=name, **kwargs
    )


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return {alias: str(v) for alias, v in client.get_registered_model(name).aliases.items()}


def test_on_the_same_test_data_the_champion_moves_only_on_a_strictly_better_figure(
    tracking_uri: str, client: MlflowClient, artifact: Path
) -> None:
    def register(ndcg: float) -> TrackingResult:
        return _register(tracking_uri, artifact, "same-data", metrics_on("week-1", ndcg))

    first = register(0.30)
    assert (first.model_version, first.became_champion, first.champion_version) == ("1", True, "1")
    assert first.decision is PromotionDecision.GATE_PASSED
    assert first.reason == (
        "no champion yet; gate passed: ease 0.3000 beats popularity 0.2000 by 50.0% (margin 5%)"
    )
    worse = register(0.25)  # would pass the gate, but the champion did better on this test
    assert (worse.became_champion, worse.champion_version) == (False, "1")
    assert worse.decision is PromotionDecision.KEPT_CHAMPION
    assert worse.reason == "same test data and protocol: 0.2500 does not beat champion v1's 0.3000"
    tie = register(0.30)
    assert (tie.decision, tie.champion_version) == (PromotionDecision.KEPT_CHAMPION, "1")
    better = register(0.40)
    assert (better.model_version, better.became_champion, better.champion_version) == (
        "4",
        True,
        "4",
    )
    assert better.decision is PromotionDecision.BEAT_CHAMPION
    assert better.reason == "same test data and protocol: 0.4000 > champion v1's 0.3000"
    assert _champion(client, "same-data") == "4"


def test_a_version_tested_on_other_data_is_not_compared_and_passes_the_gate(
    tracking_uri: str, client: MlflowClient, artifact: Path
) -> None:
    _register(tracking_uri, artifact, "other-data", metrics_on("week-1", 0.40))
    result = _register(tracking_uri, artifact, "other-data", metrics_on("week-2", 0.30))

    assert (result.became_champion, result.champion_version) == (True, "2")
    assert result.decision is PromotionDecision.GATE_PASSED
    assert result.reason == (
        "not comparable with champion v1 (tested on other data); "
        "gate passed: ease 0.3000 beats popularity 0.2000 by 50.0% (margin 5%)"
    )
    run_tags = client.get_run(result.run_id).data.tags
    version_tags = client.get_model_version("other-data", "2").tags
    for tags in (run_tags, version_tags):
        assert tags["promotion_decision"] == "gate_passed"
        assert tags["promotion_reason"] == result.reason
    assert version_tags["test_fingerprint"] == _sha256("week-2")
    assert len(version_tags["protocol_fingerprint"]) == 64
    assert float(version_tags["baseline_value"]) == POPULAR_NDCG
    assert float(version_tags["promotion_margin"]) == 0.05
    assert version_tags["failed_models"] == "0"
    assert version_tags["data_fingerprint"] == FINGERPRINT
    assert client.get_run(result.run_id).data.params["promotion_margin"] == "0.05"


def test_a_version_tested_on_other_data_with_a_failed_model_stays_out(
    tracking_uri: str, client: MlflowClient, artifact: Path
) -> None:
    _register(tracking_uri, artifact, "failed-model", metrics_on("week-1", 0.30))
    failures = (
        {"model": "lightfm", "stage": "test fit", "reason": "NaN   in\nfactors"},
        {"model": "lightfm", "stage": "refit", "reason": "x" * 500},
        {"model": "als", "stage": "tuning trial", "reason": "factors=0 is not allowed"},
    )
    result = _register(
        tracking_uri, artifact, "failed-model", metrics_on("week-2", 0.90, failed=failures)
    )

    assert (result.became_champion, result.champion_version) == (False, "1")
    assert result.decision is PromotionDecision.GATE_FAILED
    assert result.reason == (
        "not comparable with champion v1 (tested on other data); "
        "gate failed: lightfm failed to fit for the test: NaN in factors; "
        f"lightfm failed to refit on all the data: {'x' * 199}…"
    )
    assert client.get_model_version("failed-model", "2").tags["failed_models"] == "1"
    assert _champion(client, "failed-model") == "1"


def test_a_failed_tuning_trial_alone_does_not_fail_the_gate(
    tracking_uri: str, client: MlflowClient, artifact: Path
) -> None:
    trial = {"model": "als", "stage": "tuning trial", "reason": "factors=0 is not allowed"}
    result = _register(tracking_uri, artifact, "trial", metrics_on("week-1", 0.3, failed=(trial,)))

    assert result.decision is PromotionDecision.GATE_PASSED
    assert client.get_model_version("trial", "1").tags["failed_models"] == "0"


def test_a_version_tested_on_other_data_below_the_margin_stays_out_unless_the_margin_allows(
    tracking_uri: str, client: MlflowClient, artifact: Path
) -> None:
    _register(tracking_uri, artifact, "margin", metrics_on("week-1", 0.30))
    close = metrics_on("week-2", 0.206)  # 3% above popularity's 0.2000
    result = _register(tracking_uri, artifact, "margin", close)

    assert (result.became_champion, result.champion_version) == (False, "1")
    assert result.reason == (
        "not comparable with champion v1 (tested on other data); "
        "gate failed: ease 0.2060 is only 3.0% above popularity 0.2000 (margin 5%)"
    )
    below = _register(tracking_uri, artifact, "margin", metrics_on("week-3", 0.18))
    assert below.reason.endswith(
        "gate failed: ease 0.1800 is 10.0% below popularity 0.2000 (margin 5%)"
    )

    lenient = _register(tracking_uri, artifact, "margin", close, promotion_margin=0.025)
    assert (lenient.became_champion, lenient.champion_version) == (True, "4")
    assert lenient.reason.endswith("by 3.0% (margin 2.5%)")


def test_a_first_version_becomes_champion_only_through_the_gate(
    tracking_uri: str, client: MlflowClient, artifact: Path
) -> None:
    refused = _register(tracking_uri, artifact, "first", metrics_on("week-1", 0.20))

    assert (refused.became_champion, refused.champion_version) == (False, None)
    assert refused.reason == (
        "no champion yet; gate failed: ease 0.2000 is level with popularity 0.2000 (margin 5%)"
    )
    assert _aliases(client, "first") == {}
    accepted = _register(tracking_uri, artifact, "first", metrics_on("week-1", 0.30))
    assert (accepted.became_champion, accepted.champion_version) == (True, "2")
    assert accepted.reason.startswith("no champion yet; gate passed")


def test_popularity_chosen_on_validation_does_not_pass_the_gate(
    tracking_uri: str, artifact: Path
) -> None:
    metrics = metrics_on("week-1", 0.30) | {"chosen": "popular"}
    result = _register(tracking_uri, artifact, "popular-chosen", metrics)

    assert result.decision is PromotionDecision.GATE_FAILED
    assert result.reason.endswith("gate failed: the chosen model is the popularity baseline itself")


def test_older_metrics_are_comparable_with_nothing_and_fail_the_gate_without_a_baseline(
    tracking_uri: str, client: MlflowClient, artifact: Path
) -> None:
    old = training_metrics(models=("item_knn", "ease"))  # no fingerprint, baseline or failures
    first = _register(tracking_uri, artifact, "older", old)
    assert first.reason == (
        "no champion yet; gate failed: the metrics have no popularity baseline figure of ndcg@10"
    )
    promote(1, registered_model="older", tracking_uri=tracking_uri)

    newer = _register(tracking_uri, artifact, "older", metrics_on("week-1", 0.10))
    assert newer.reason.startswith(
        "not comparable with champion v1 (its tags carry no test fingerprint or figure); gate"
    )
    assert "protocol_fingerprint" not in client.get_model_version("older", "1").tags
    older_again = _register(tracking_uri, artifact, "older", training_metrics(chosen_ndcg=0.9))
    assert older_again.reason.startswith(
        "not comparable with champion v1 (this run's metrics carry no test fingerprint); gate"
    )


@pytest.mark.parametrize(
    ("protocol", "metric", "why"),
    [
        (
            {"relevant_events": ["purchase", "click"]},
            "ndcg@10",
            "same test data under another protocol",
        ),
        ({"split": "last-days:30"}, "ndcg@10", "same test data under another protocol"),
        ({}, "recall@10", "ranked by ndcg@10, this run by recall@10"),
    ],
)
def test_the_same_test_data_under_another_protocol_or_metric_is_not_comparable(
    tracking_uri: str, artifact: Path, protocol: dict[str, object], metric: str, why: str
) -> None:
    name = f"protocol-{metric}-{sorted(protocol)}"
    _register(tracking_uri, artifact, name, metrics_on("week-1", 0.30))
    metrics = metrics_on("week-1", 0.90, **protocol) | {"primary_metric": metric}
    result = _register(tracking_uri, artifact, name, metrics)

    assert result.reason.startswith(f"not comparable with champion v1 ({why}); gate")


def test_protocol_fingerprint_follows_the_exam_not_the_training() -> None:
    base = metrics_on("week-1", 0.3)
    fingerprint = protocol_fingerprint(base)
    assert fingerprint is not None and len(fingerprint) == 64

    def changed(**protocol: object) -> str | None:
        metrics = metrics_on("week-1", 0.3)
        metrics["protocol"] |= protocol
        return protocol_fingerprint(metrics)

    assert changed(train_rows=1, validation="last-days:7") == fingerprint
    for field, value in zip(
        PROTOCOL_FIELDS, ("ratio:0.2", ["click"], True, "nothing", 799), strict=True
    ):
        assert changed(**{field: value}) != fingerprint, field
    assert protocol_fingerprint(metrics_on("week-2", 0.3)) != fingerprint
    assert protocol_fingerprint(training_metrics()) is None


def test_protocol_fingerprint_counts_the_sampling_seed_only_when_members_were_sampled() -> None:
    def fingerprint(evaluated: int, seed: int) -> str | None:
        metrics = metrics_on("week-1", 0.3, evaluated_members=evaluated)
        metrics["config"] = {"max_eval_members": 800, "seed": seed}
        return protocol_fingerprint(metrics)

    assert fingerprint(500, seed=1) == fingerprint(500, seed=2)  # every member scored
    assert fingerprint(800, seed=1) != fingerprint(800, seed=2)  # a seeded sample of 800


@pytest.mark.parametrize("margin", [-0.01, float("nan")])
def test_log_training_run_refuses_a_bad_margin_before_logging(
    tracking_uri: str, client: MlflowClient, artifact: Path, margin: float
) -> None:
    with pytest.raises(ConfigError, match=r"non-negative fraction .* such as 0\.05"):
        _register(
            tracking_uri, artifact, "bad-margin", metrics_on("w", 0.3), promotion_margin=margin
        )
    assert client.search_registered_models("name = 'bad-margin'") == []


def test_promote_moves_the_alias_by_hand_and_refuses_unknown_versions(
    tracking_uri: str, client: MlflowClient, artifact: Path
) -> None:
    for ndcg in (0.5, 0.1):
        log_training_run(
            training_metrics(chosen_ndcg=ndcg),
            artifact,
            tracking_uri=tracking_uri,
            registered_model="promoted",
        )
    assert _champion(client, "promoted") == "1"

    reason = promote(2, registered_model="promoted", tracking_uri=tracking_uri)
    assert _champion(client, "promoted") == "2"
    assert reason == client.get_model_version("promoted", "2").tags["promotion_reason"]
    assert reason is not None and "gate failed" in reason
    with pytest.raises(ConfigError, match=r"no version 7; versions there: 1, 2"):
        promote("7", registered_model="promoted", tracking_uri=tracking_uri)
    with pytest.raises(ConfigError, match=r"versions there: none"):
        promote(1, registered_model="never-registered", tracking_uri=tracking_uri)


def test_download_artifact_by_alias_and_by_version(
    tracking_uri: str, artifact: Path, tmp_path: Path
) -> None:
    result = log_training_run(
        training_metrics(), artifact, tracking_uri=tracking_uri, registered_model="served"
    )

    for uri in ("models:/served@champion", f"models:/served/{result.model_version}"):
        local = download_artifact(uri, tmp_path / uri.replace("/", "_"), tracking_uri=tracking_uri)
        assert json.loads((local / "manifest.json").read_text())["data_fingerprint"] == FINGERPRINT
        np.testing.assert_array_equal(np.load(local / "ids" / "items.npy"), np.arange(5))


@pytest.mark.parametrize(
    ("model_uri", "message"),
    [
        ("models:/served-nowhere@champion", "cannot download"),
        ("runs:/abc/artifact", "not a registry URI"),
    ],
)
def test_download_artifact_refuses_unknown_models_and_other_uris(
    tracking_uri: str, tmp_path: Path, model_uri: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        download_artifact(model_uri, tmp_path / "dst", tracking_uri=tracking_uri)


def test_log_training_run_refuses_a_directory_that_is_not_an_artifact(
    tracking_uri: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="not a model artifact"):
        log_training_run(training_metrics(), tmp_path, tracking_uri=tracking_uri)


def test_recsys_train_logs_into_a_parent_run_that_lasts_as_long_as_the_training(
    tracking_uri: str, client: MlflowClient, tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """The parent run starts before training's first step and logs each step as it begins
    (it once started after training, lasting 2.9 s of a 60 s training)."""
    store = tiny_trained[0]
    result = run_recsys(
        "train", "-i", store / "interactions.parquet", "--models", "popular,item_knn",
        "--trials", 1, "--out", tmp_path / "artifact", "--list-depth", 0,
        "--split", "last-days:60", "--tracking-uri", tracking_uri,
        "--registered-model", "timed",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_id = re.search(r"MLflow run (\w+):", result.stdout)[1]  # type: ignore[index]
    parent = client.get_run(run_id)
    steps = client.get_metric_history(run_id, STEP_METRIC)
    step_lines = re.findall(r"^training: (?!done).* \((\d+\.\d) s\)$", result.stderr, re.M)
    assert len(steps) == len(step_lines) > 3
    first_step = min(point.timestamp for point in steps)
    assert parent.info.start_time <= first_step
    assert parent.info.end_time >= max(point.timestamp for point in steps)
    trained_s = float(re.search(r"^training: done in (\d+\.\d) s$", result.stderr, re.M)[1])  # type: ignore[index]
    assert (parent.info.end_time - parent.info.start_time) / 1000 >= trained_s - 0.05
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == f"train ({parent.data.params['chosen']})"
    # Params read as a person wrote them: the split as its spec, dicts as JSON.
    params = parent.data.params
    assert params["protocol.split"] == "last-days:60"
    assert json.loads(params["protocol.validation"])["carved_from"] == "train"
    assert not [value for value in params.values() if "Spec(" in value or "{'" in value]
