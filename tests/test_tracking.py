"""MLflow tracking, registry and champion logic (training/tracking.py) on a real SQLite store.

One store serves the whole module (creating its tables takes seconds); each test registers
under its own model name so that versions and aliases do not leak between tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from features.errors import ConfigError
from tests.test_report import MODELS, training_metrics
from training.tracking import (
    CHAMPION_ALIAS,
    default_tracking_uri,
    download_bundle,
    log_training_run,
    metric_key,
    promote,
)

FINGERPRINT = "fp-1234"


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store whose experiments keep their artifacts beside it, inside the tmp dir."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A stand-in bundle: a manifest and one array, which is all registering looks at."""
    directory = tmp_path / "bundle"
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
    tracking_uri: str, client: MlflowClient, bundle: Path
) -> None:
    metrics = training_metrics()
    result = log_training_run(
        metrics, bundle, tracking_uri=tracking_uri, registered_model="runs", experiment="runs"
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
    assert {"metrics.json", "report.html", "figures", "bundle"} <= artifacts
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


def test_registered_versions_carry_tags_and_the_champion_moves_only_on_improvement(
    tracking_uri: str, client: MlflowClient, bundle: Path
) -> None:
    def register(ndcg: float, primary_metric: str = "ndcg@10") -> tuple[str, bool, str]:
        metrics = {**training_metrics(chosen_ndcg=ndcg), "primary_metric": primary_metric}
        result = log_training_run(
            metrics, bundle, tracking_uri=tracking_uri, registered_model="champion"
        )
        return result.model_version, result.became_champion, result.champion_version

    assert register(0.30) == ("1", True, "1")  # no champion yet
    assert register(0.20) == ("2", False, "1")  # regression
    assert register(0.30) == ("3", False, "1")  # a tie is not an improvement
    assert register(0.40) == ("4", True, "4")
    assert register(0.99, primary_metric="recall@10") == ("5", False, "4")  # other metric
    assert _champion(client, "champion") == "4"
    tags = client.get_model_version("champion", "4").tags
    assert tags["chosen_model"] == "ease"
    assert tags["primary_metric"] == "ndcg@10"
    assert float(tags["primary_metric_value"]) == 0.40
    assert tags["data_fingerprint"] == FINGERPRINT


def test_promote_moves_the_alias_by_hand_and_refuses_unknown_versions(
    tracking_uri: str, client: MlflowClient, bundle: Path
) -> None:
    for ndcg in (0.5, 0.1):
        log_training_run(
            training_metrics(chosen_ndcg=ndcg),
            bundle,
            tracking_uri=tracking_uri,
            registered_model="promoted",
        )
    assert _champion(client, "promoted") == "1"

    promote(2, registered_model="promoted", tracking_uri=tracking_uri)
    assert _champion(client, "promoted") == "2"
    with pytest.raises(ConfigError, match=r"no version 7; versions there: 1, 2"):
        promote("7", registered_model="promoted", tracking_uri=tracking_uri)
    with pytest.raises(ConfigError, match=r"versions there: none"):
        promote(1, registered_model="never-registered", tracking_uri=tracking_uri)


def test_download_bundle_by_alias_and_by_version(
    tracking_uri: str, bundle: Path, tmp_path: Path
) -> None:
    result = log_training_run(
        training_metrics(), bundle, tracking_uri=tracking_uri, registered_model="served"
    )

    for uri in ("models:/served@champion", f"models:/served/{result.model_version}"):
        local = download_bundle(uri, tmp_path / uri.replace("/", "_"), tracking_uri=tracking_uri)
        assert json.loads((local / "manifest.json").read_text())["data_fingerprint"] == FINGERPRINT
        np.testing.assert_array_equal(np.load(local / "ids" / "items.npy"), np.arange(5))


@pytest.mark.parametrize(
    ("model_uri", "message"),
    [
        ("models:/served-nowhere@champion", "cannot download"),
        ("runs:/abc/bundle", "not a registry URI"),
    ],
)
def test_download_bundle_refuses_unknown_models_and_other_uris(
    tracking_uri: str, tmp_path: Path, model_uri: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        download_bundle(model_uri, tmp_path / "dst", tracking_uri=tracking_uri)


def test_log_training_run_refuses_a_directory_that_is_not_a_bundle(
    tracking_uri: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="not a model bundle"):
        log_training_run(training_metrics(), tmp_path, tracking_uri=tracking_uri)
