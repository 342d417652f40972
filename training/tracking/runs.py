"""Logging a training run to MLflow and registering its model artifact as a new version.

One training run becomes one MLflow parent run (protocol as params, the chosen model's test
metrics, metrics.json, report.html, the artifact's members_report.html and the plots as
artifacts) with one nested child run per model (its tuned params, its test metrics, its
validation metrics as ``val_*``, its timings).
The parent run starts when training starts (:func:`training_run`, which ``recsys train``
opens before its first step) and logs each step as it begins, so that it lasts as long as the
training and a running one shows where it is; the outcome is logged into it at the end.

**How the model artifact is registered.** The artifact directory is logged as the parent run's
artifact directory ``artifact/`` and a model version is created whose *source* is that
directory (``MlflowClient.create_model_version``). Downloading ``models:/<name>/<version>`` or
``models:/<name>@<alias>`` therefore yields exactly the artifact's files, which serving loads
with ``training.artifact.load_artifact`` like any other model artifact. A pyfunc wrapper
(``mlflow.pyfunc.log_model`` with the artifact directory inside) was not used: it would pickle
a Python class into the registry, nest the artifact one level down (``artifacts/artifact``),
and importing ``mlflow.pyfunc`` alone emits warnings and takes seconds — for a model that
nothing ever loads through pyfunc, since the artifact format is already the serving contract.
"""

from __future__ import annotations

import json
import math
import posixpath
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.errors import ConfigError
from training.config import DEFAULT_PROMOTION_MARGIN
from training.member_report import MEMBER_REPORT_FILE
from training.report import save_figures, write_report
from training.tracking.promotion import PromotionDecision, current_champion, decide, record
from training.tracking.store import (
    ARTIFACT_MANIFEST,
    CHAMPION_ALIAS,
    FIGURES_ARTIFACT,
    MLFLOW_ARTIFACT_PATH,
    connect,
    default_tracking_uri,
    ensure_experiment,
)
from training.tracking.tags import TAG_MARGIN, version_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class TrackingResult:
    """What ``log_training_run`` did: the run, the new model version, who is champion (None:
    no version is) and why."""

    run_id: str
    model_version: str
    became_champion: bool
    champion_version: str | None
    decision: PromotionDecision
    reason: str


#: The parent run's metric with one point per training step (value: steps done so far), logged
#: as each step begins: the run's timeline while training runs, read back by the tests.
STEP_METRIC = "training_step"


@dataclass
class OpenRun:
    """A parent run started when training starts (:func:`training_run`), so that the run
    lasts as long as the training and shows its steps while it runs."""

    client: MlflowClient
    experiment_id: str
    run_id: str
    steps: int = 0

    def step(self, message: str) -> None:
        """Record that the step ``message`` begins: the ``step`` tag (what the MLflow UI shows
        of a running run) and a point of :data:`STEP_METRIC`."""
        from mlflow.entities import Metric, RunTag

        self.steps += 1
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(STEP_METRIC, float(self.steps), now, self.steps)],
            tags=[RunTag("step", message)],
        )


@contextmanager
def training_run(
    *,
    experiment: str = "member-recsys",
    tracking_uri: str | None = None,
    params: Mapping[str, object] | None = None,
) -> Iterator[OpenRun]:
    """A parent run, RUNNING while the block trains, FINISHED after it (FAILED if it raises);
    ``log_training_run(..., run=...)`` then logs the outcome into it. ``params``: those known
    before training (each must equal its value at the end, as MLflow refuses a change)."""
    uri = tracking_uri or default_tracking_uri()
    client = connect(uri)
    experiment_id = ensure_experiment(client, experiment, uri)
    with _run(client, experiment_id, "train (running)") as run_id:
        _log(client, run_id, {}, params)
        yield OpenRun(client, experiment_id, run_id)


def log_training_run(
    metrics: Mapping[str, Any],
    artifact_dir: Path,
    *,
    experiment: str = "member-recsys",
    tracking_uri: str | None = None,
    registered_model: str = "member-recsys",
    figures_dir: Path | None = None,
    promotion_margin: float = DEFAULT_PROMOTION_MARGIN,
    run: OpenRun | None = None,
) -> TrackingResult:
    """Log a training run with its per-model child runs, register ``artifact_dir`` as a new
    version of ``registered_model`` and make it champion when it beats the champion on the
    same test, or passes the gate where there is no champion it can be compared with.

    ``run``: the parent run :func:`training_run` opened when training began (``experiment``
    and ``tracking_uri`` are then its own); without one, a parent run is made now."""
    _require_artifact(artifact_dir)
    _require_margin(promotion_margin)
    tags = version_tags(metrics, artifact_dir, promotion_margin)  # fails early without a figure
    if run is None:
        with training_run(experiment=experiment, tracking_uri=tracking_uri) as opened:
            return _log_outcome(
                opened, metrics, artifact_dir, registered_model, figures_dir, promotion_margin,
                tags,
            )  # fmt: skip
    return _log_outcome(
        run, metrics, artifact_dir, registered_model, figures_dir, promotion_margin, tags
    )


def _log_outcome(
    run: OpenRun,
    metrics: Mapping[str, Any],
    artifact_dir: Path,
    registered_model: str,
    figures_dir: Path | None,
    promotion_margin: float,
    tags: Mapping[str, str],
) -> TrackingResult:
    """Everything of a finished training in its open parent run: params, metrics, children,
    report, the registered version and the champion decision."""
    client, run_id, experiment_id = run.client, run.run_id, run.experiment_id
    client.update_run(run_id, name=f"train ({metrics['chosen']})")
    chosen_metrics = _numbers(metrics["models"][metrics["chosen"]])
    params = {**_parent_params(metrics), TAG_MARGIN: promotion_margin}
    _log(client, run_id, chosen_metrics, params)
    for model, model_params in _models_with_params(metrics).items():
        with _run(client, experiment_id, model, parent_id=run_id) as child_id:
            _log(client, child_id, _child_metrics(metrics, model), model_params)
    _log_report_artifacts(client, run_id, metrics, figures_dir)
    member_report = artifact_dir / MEMBER_REPORT_FILE
    if member_report.is_file():  # beside report.html; an older artifact has none
        client.log_artifact(run_id, str(member_report))
    version = _register_artifact(client, run_id, artifact_dir, registered_model, tags)
    champion = current_champion(client, registered_model)
    promotion = decide(metrics, tags, champion, promotion_margin)
    record(client, run_id, registered_model, version, promotion)
    if promotion.decision.promotes:
        client.set_registered_model_alias(registered_model, CHAMPION_ALIAS, version)
        champion_version: str | None = version
    else:
        champion_version = None if champion is None else champion[0]
    return TrackingResult(
        run_id,
        version,
        promotion.decision.promotes,
        champion_version,
        promotion.decision,
        promotion.reason,
    )


def metric_key(name: str) -> str:
    """MLflow name of a metric: ``precision@10`` -> ``precision_at_10`` ('@' is not allowed)."""
    return name.replace("@", "_at_")


def _require_artifact(artifact_dir: Path) -> None:
    """Refuse to register a directory that is not a model artifact, before any run is
    created."""
    if not (artifact_dir / ARTIFACT_MANIFEST).is_file():
        raise ConfigError(
            f"{artifact_dir} is not a model artifact (no {ARTIFACT_MANIFEST}); not logged"
        )


def _require_margin(margin: float) -> None:
    """Refuse a margin that would let a model below popularity through, or that is not a
    number at all."""
    if not math.isfinite(margin) or margin < 0:
        raise ConfigError(
            f"promotion margin must be a non-negative fraction of the baseline's figure, "
            f"such as 0.05 for 5%; got {margin}"
        )


def _numbers(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """MLflow metrics of the numeric entries of ``values`` (counts and flags are not metrics
    of a model, strings cannot be logged as metrics)."""
    return {
        prefix + metric_key(name): float(value)
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _param_text(value: object) -> str:
    """A parameter value as MLflow stores it: text, lists and dicts as JSON."""
    return json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)


@contextmanager
def _run(
    client: MlflowClient, experiment_id: str, name: str, parent_id: str | None = None
) -> Iterator[str]:
    """A run that ends FINISHED, or FAILED when the body raises; yields its id."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    tags = {MLFLOW_PARENT_RUN_ID: parent_id} if parent_id else {}
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")


def _log(
    client: MlflowClient,
    run_id: str,
    metrics: Mapping[str, float],
    params: Mapping[str, object] | None = None,
) -> None:
    """Log metrics and params of a run in one batch (one round trip, one timestamp)."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        params=[Param(key, _param_text(value)) for key, value in (params or {}).items()],
    )


def _parent_params(metrics: Mapping[str, Any]) -> dict[str, object]:
    """What the whole run was: the chosen model, the primary metric and the protocol."""
    protocol = metrics.get("protocol") or {}
    return {
        "chosen": metrics["chosen"],
        "primary_metric": metrics["primary_metric"],
        **{f"protocol.{key}": value for key, value in protocol.items()},
    }


def _child_metrics(metrics: Mapping[str, Any], model: str) -> dict[str, float]:
    """One model's test metrics, its validation metrics as ``val_*`` and its timings."""

    def section(key: str) -> Mapping[str, Any]:
        return (metrics.get(key) or {}).get(model) or {}

    return {
        **_numbers(section("models")),
        **_numbers(section("validation"), prefix="val_"),
        **_numbers(section("timings")),
    }


def _models_with_params(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every evaluated model with its tuned params (none for a model that was not tuned)."""
    params = metrics.get("params") or {}
    return {model: params.get(model) or {} for model in metrics["models"]}


def _log_report_artifacts(
    client: MlflowClient, run_id: str, metrics: Mapping[str, Any], figures_dir: Path | None
) -> None:
    """metrics.json, report.html and the plots (``figures/``; drawn here unless given)."""
    with tempfile.TemporaryDirectory(prefix="recsys-mlflow-") as scratch:
        root = Path(scratch)
        (root / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
        write_report(metrics, root / "report.html")
        if figures_dir is None:
            figures_dir = root / FIGURES_ARTIFACT
            save_figures(metrics, figures_dir)
        client.log_artifact(run_id, str(root / "metrics.json"))
        client.log_artifact(run_id, str(root / "report.html"))
        client.log_artifacts(run_id, str(figures_dir), FIGURES_ARTIFACT)


def _register_artifact(
    client: MlflowClient, run_id: str, artifact_dir: Path, name: str, tags: Mapping[str, str]
) -> str:
    """Log the model artifact into the run and make it a new version of ``name``; returns the
    version."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    client.log_artifacts(run_id, str(artifact_dir), MLFLOW_ARTIFACT_PATH)
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    source = posixpath.join(client.get_run(run_id).info.artifact_uri, MLFLOW_ARTIFACT_PATH)
    created = client.create_model_version(name, source, run_id=run_id, tags=dict(tags))
    return str(created.version)  # an int from some stores, a str from others
