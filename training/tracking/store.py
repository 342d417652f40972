"""The tracking store: where runs and versions are kept, how they are reached, what they are
called there.

MLflow is imported inside the functions: importing it takes seconds, and most ``recsys``
commands never track anything. Everything goes through an explicit ``MlflowClient`` for the
given tracking URI, so MLflow's process-wide active run and tracking/registry URIs are never
set; only its log level and artifact progress-bar default are (see ``_quiet_mlflow``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: The alias serving follows (``models:/<name>@champion``).
CHAMPION_ALIAS = "champion"
#: Where a run keeps its model artifact directory, which a registered version's source names.
MLFLOW_ARTIFACT_PATH = "artifact"
FIGURES_ARTIFACT = "figures"
#: ``training.artifact.MANIFEST``, spelled out because importing ``training.artifact`` loads
#: every model library; a directory without it is not a model artifact.
ARTIFACT_MANIFEST = "manifest.json"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite store in the data directory, so that runs of
    one project land in one place whatever the working directory (absolute path)."""
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        return configured
    data_dir = Path(os.environ.get("RECSYS_DATA_DIR", "data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'mlflow.db'}"


def connect(tracking_uri: str) -> MlflowClient:
    """A quiet client for tracking and registry, both at ``tracking_uri``."""
    _quiet_mlflow()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created on first use."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_root(tracking_uri))


def _quiet_mlflow() -> None:
    """Quieten MLflow's chatter (database migration INFO lines, artifact progress bars on
    stderr) that would drown the CLI's output; an explicit progress-bar setting is kept."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # configures its loggers on import, so the level is set after

    logging.getLogger(mlflow.__name__).setLevel(logging.WARNING)


def _artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a new experiment next to a SQLite database (``mlartifacts/``); MLflow's
    own default for a SQLite store is ``./mlruns`` under whatever the working directory is.
    Other stores (a tracking server) choose for themselves."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri == prefix + ":memory:":
        return None
    database = Path(tracking_uri.removeprefix(prefix)).resolve()
    return (database.parent / "mlartifacts").as_uri()
