"""MLflow tracking and registry for training runs: log, register, pick the champion, download.

One training run becomes one MLflow parent run (protocol as params, the chosen model's test
metrics, metrics.json, report.html and the plots as artifacts) with one nested child run per
model (its tuned params, its test metrics, its validation metrics as ``val_*``, its timings).

**How the bundle is registered.** The bundle directory is logged as the parent run's artifact
directory ``bundle/`` and a model version is created whose *source* is that directory
(``MlflowClient.create_model_version``). Downloading ``models:/<name>/<version>`` or
``models:/<name>@<alias>`` therefore yields exactly the bundle's files, which serving loads
with ``training.bundle.load_bundle`` like any other bundle. A pyfunc wrapper
(``mlflow.pyfunc.log_model`` with the bundle as an artifact) was not used: it would pickle a
Python class into the registry, nest the bundle one level down (``artifacts/bundle``), and
importing ``mlflow.pyfunc`` alone emits warnings and takes seconds — for a model that nothing
ever loads through pyfunc, since the bundle format is already the serving contract.

**Champion.** Each version carries its chosen model, primary metric name and test value, and
the data fingerprint as tags. The ``champion`` alias moves to a new version only when there is
no champion yet or the new value is strictly better (all primary metrics are higher-is-better)
*for the same primary metric*; values of different metrics are not compared, and a champion
without a readable value keeps its place. ``promote`` moves any alias by hand.

MLflow is imported inside the functions: importing it takes seconds, and most ``recsys``
commands never track anything. Everything goes through an explicit ``MlflowClient`` for the
given tracking URI, so MLflow's process-wide active run and tracking/registry URIs are never
set; only its log level and artifact progress-bar default are (see ``_quiet_mlflow``).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.errors import ConfigError
from training.report import save_figures, write_report

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "CHAMPION_ALIAS",
    "TrackingResult",
    "default_tracking_uri",
    "download_bundle",
    "log_training_run",
    "metric_key",
    "promote",
    "resolve_model_uri",
]

CHAMPION_ALIAS = "champion"
BUNDLE_ARTIFACT = "bundle"
FIGURES_ARTIFACT = "figures"
#: ``training.bundle.MANIFEST``, spelled out because importing ``training.bundle`` loads every
#: model library; a downloaded directory without it is not a bundle.
BUNDLE_MANIFEST = "manifest.json"

#: ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` (stages are deprecated in MLflow).
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?")

TAG_CHOSEN = "chosen_model"
TAG_PRIMARY_METRIC = "primary_metric"
TAG_PRIMARY_VALUE = "primary_metric_value"
TAG_FINGERPRINT = "data_fingerprint"


@dataclass(frozen=True)
class TrackingResult:
    """What ``log_training_run`` did: the run, the new model version and who is champion."""

    run_id: str
    model_version: str
    became_champion: bool
    champion_version: str


# -- connection --------------------------------------------------------------------------------


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite store in the data directory, so that runs of
    one project land in one place whatever the working directory (absolute path)."""
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        return configured
    data_dir = Path(os.environ.get("RECSYS_DATA_DIR", "data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'mlflow.db'}"


def _quiet_mlflow() -> None:
    """Quieten MLflow's chatter (database migration INFO lines, artifact progress bars on
    stderr) that would drown the CLI's output; an explicit progress-bar setting is kept."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # configures its loggers on import, so the level is set after

    logging.getLogger(mlflow.__name__).setLevel(logging.WARNING)


def _client(tracking_uri: str) -> MlflowClient:
    """A quiet client for tracking and registry, both at ``tracking_uri``."""
    _quiet_mlflow()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a new experiment next to a SQLite database (``mlartifacts/``); MLflow's
    own default for a SQLite store is ``./mlruns`` under whatever the working directory is.
    Other stores (a tracking server) choose for themselves."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri == prefix + ":memory:":
        return None
    database = Path(tracking_uri.removeprefix(prefix)).resolve()
    return (database.parent / "mlartifacts").as_uri()


def _experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created on first use."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_root(tracking_uri))


# -- runs --------------------------------------------------------------------------------------


def metric_key(name: str) -> str:
    """MLflow name of a metric: ``precision@10`` -> ``precision_at_10`` ('@' is not allowed)."""
    return name.replace("@", "_at_")


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


# -- registry ----------------------------------------------------------------------------------


def _primary_value(metrics: Mapping[str, Any]) -> float:
    """The chosen model's test figure of the primary metric: what champions are ranked by."""
    chosen, primary = metrics["chosen"], metrics["primary_metric"]
    try:
        return float(metrics["models"][chosen][primary])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"metrics have no test {primary!r} for the chosen model {chosen!r}; "
            "nothing to rank the registered version by"
        ) from None


def _require_bundle(bundle_dir: Path) -> None:
    """Refuse to register a directory that is not a bundle, before any run is created."""
    if not (bundle_dir / BUNDLE_MANIFEST).is_file():
        raise ConfigError(f"{bundle_dir} is not a model bundle (no {BUNDLE_MANIFEST}); not logged")


def _fingerprint(metrics: Mapping[str, Any], bundle_dir: Path) -> str | None:
    """The training data's fingerprint: from the protocol, else from the bundle's manifest."""
    protocol = metrics.get("protocol") or {}
    if TAG_FINGERPRINT in protocol:
        return protocol[TAG_FINGERPRINT]
    return json.loads((bundle_dir / BUNDLE_MANIFEST).read_text()).get(TAG_FINGERPRINT)


def _version_tags(metrics: Mapping[str, Any], bundle_dir: Path) -> dict[str, str]:
    """Tags the champion decision and a human browsing the registry read."""
    tags = {
        TAG_CHOSEN: str(metrics["chosen"]),
        TAG_PRIMARY_METRIC: str(metrics["primary_metric"]),
        TAG_PRIMARY_VALUE: repr(_primary_value(metrics)),
    }
    fingerprint = _fingerprint(metrics, bundle_dir)
    return tags if fingerprint is None else {**tags, TAG_FINGERPRINT: str(fingerprint)}


def _register_bundle(
    client: MlflowClient, run_id: str, bundle_dir: Path, name: str, tags: Mapping[str, str]
) -> str:
    """Log the bundle into the run and make it a new version of ``name``; returns the version."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    client.log_artifacts(run_id, str(bundle_dir), BUNDLE_ARTIFACT)
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    source = posixpath.join(client.get_run(run_id).info.artifact_uri, BUNDLE_ARTIFACT)
    created = client.create_model_version(name, source, run_id=run_id, tags=dict(tags))
    return str(created.version)  # an int from some stores, a str from others


def _beats(candidate: Mapping[str, str], champion: Mapping[str, str]) -> bool:
    """Whether a version's tags show a strictly better figure than the champion's, on the same
    primary metric; unreadable or differently measured champions are not displaced."""
    if candidate.get(TAG_PRIMARY_METRIC) != champion.get(TAG_PRIMARY_METRIC):
        return False
    try:
        return float(candidate[TAG_PRIMARY_VALUE]) > float(champion[TAG_PRIMARY_VALUE])
    except (KeyError, ValueError):
        return False


def _crown_if_better(
    client: MlflowClient, name: str, version: str, tags: Mapping[str, str]
) -> tuple[bool, str]:
    """Move the champion alias to ``version`` when it wins; returns (moved, champion)."""
    champion = client.get_registered_model(name).aliases.get(CHAMPION_ALIAS)
    if champion is not None:
        champion = str(champion)
        if not _beats(tags, client.get_model_version(name, champion).tags):
            return False, champion
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return True, version


def log_training_run(
    metrics: Mapping[str, Any],
    bundle_dir: Path,
    *,
    experiment: str = "member-recsys",
    tracking_uri: str | None = None,
    registered_model: str = "member-recsys",
    figures_dir: Path | None = None,
) -> TrackingResult:
    """Log a training run with its per-model child runs, register ``bundle_dir`` as a new
    version of ``registered_model`` and make it champion if it beats the current one."""
    _require_bundle(bundle_dir)
    tags = _version_tags(metrics, bundle_dir)  # fails early on metrics without a primary value
    uri = tracking_uri or default_tracking_uri()
    client = _client(uri)
    experiment_id = _experiment_id(client, experiment, uri)
    with _run(client, experiment_id, f"train ({metrics['chosen']})") as run_id:
        chosen_metrics = _numbers(metrics["models"][metrics["chosen"]])
        _log(client, run_id, chosen_metrics, _parent_params(metrics))
        for model, params in _models_with_params(metrics).items():
            with _run(client, experiment_id, model, parent_id=run_id) as child_id:
                _log(client, child_id, _child_metrics(metrics, model), params)
        _log_report_artifacts(client, run_id, metrics, figures_dir)
        version = _register_bundle(client, run_id, bundle_dir, registered_model, tags)
    became_champion, champion = _crown_if_better(client, registered_model, version, tags)
    return TrackingResult(run_id, version, became_champion, champion)


def _models_with_params(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every evaluated model with its tuned params (none for a model that was not tuned)."""
    params = metrics.get("params") or {}
    return {model: params.get(model) or {} for model in metrics["models"]}


# -- aliases and downloads ---------------------------------------------------------------------


def promote(
    version: int | str,
    *,
    registered_model: str = "member-recsys",
    alias: str = CHAMPION_ALIAS,
    tracking_uri: str | None = None,
) -> None:
    """Point ``alias`` at ``version`` by hand (a rollback, or a champion on another metric)."""
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    client = _client(uri)
    try:
        client.get_model_version(registered_model, str(version))
    except MlflowException:
        known = sorted(_version_numbers(client, registered_model), key=int)
        raise ConfigError(
            f"registered model {registered_model!r} at {uri} has no version {version}; "
            f"versions there: {', '.join(known) or 'none'}"
        ) from None
    client.set_registered_model_alias(registered_model, alias, str(version))


def _version_numbers(client: MlflowClient, name: str) -> list[str]:
    """Every version of registered model ``name`` (none if the model does not exist)."""
    quote = '"' if "'" in name else "'"  # MLflow's filter syntax has no escapes
    return [str(mv.version) for mv in client.search_model_versions(f"name = {quote}{name}{quote}")]


def _registered_version(client: MlflowClient, model_uri: str) -> tuple[str, str]:
    """(name, version) that ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` names."""
    match = _MODEL_URI.fullmatch(model_uri)
    if match is None:
        raise ConfigError(
            f"{model_uri!r} is not a registry URI; use models:/<name>@<alias> "
            "or models:/<name>/<version>"
        )
    name, alias, version = match.group("name", "alias", "version")
    if alias is not None:
        version = client.get_model_version_by_alias(name, alias).version
    return name, str(version)


def resolve_model_uri(model_uri: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """(name, version) that ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` names
    now: a server following an alias polls this to see whether it moved, without downloading.
    """
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    try:
        return _registered_version(_client(uri), model_uri)
    except MlflowException as error:
        raise ConfigError(f"cannot resolve {model_uri} at {uri}: {error.message}") from None


def download_bundle(model_uri: str, dst: Path, tracking_uri: str | None = None) -> Path:
    """Download the bundle a registered version holds (``models:/<name>/<version>`` or
    ``models:/<name>@<alias>``) into ``dst``; returns the local bundle directory.

    The version is resolved with our own client and its source downloaded by URI, rather than
    handing the ``models:/`` URI to MLflow: up to at least 3.17 MLflow resolves those against the
    process-wide registry URI and ignores the one passed in (open fix: mlflow/mlflow PR #18313),
    which would read, or even create, ``./mlflow.db`` instead of the store asked for.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    client = _client(uri)
    try:
        name, version = _registered_version(client, model_uri)
        source = client.get_model_version_download_uri(name, version)
        local = download_artifacts(source, dst_path=str(dst), tracking_uri=uri)
    except MlflowException as error:
        raise ConfigError(f"cannot download {model_uri} from {uri}: {error.message}") from None
    if not (Path(local) / BUNDLE_MANIFEST).is_file():
        raise ConfigError(f"{model_uri} holds no member-recsys bundle (no {BUNDLE_MANIFEST})")
    return Path(local)
