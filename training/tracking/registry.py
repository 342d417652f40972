"""Reading the registry and moving its aliases: what serving and ``recsys promote`` do with
registered versions (resolve a ``models:/`` URI, download its model artifact, point an alias)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from features.errors import ConfigError
from training.tracking.store import (
    ARTIFACT_MANIFEST,
    CHAMPION_ALIAS,
    connect,
    default_tracking_uri,
)
from training.tracking.tags import TAG_REASON

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` (stages are deprecated in MLflow).
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?")


def promote(
    version: int | str,
    *,
    registered_model: str = "member-recsys",
    alias: str = CHAMPION_ALIAS,
    tracking_uri: str | None = None,
) -> str | None:
    """Point ``alias`` at ``version`` by hand (a rollback, or a version the gate refused);
    returns the promotion reason recorded when the version was registered, so that whoever
    overrides the decision sees what they override (None for versions registered before
    reasons were recorded)."""
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    client = connect(uri)
    try:
        registered = client.get_model_version(registered_model, str(version))
    except MlflowException:
        known = sorted(_version_numbers(client, registered_model), key=int)
        raise ConfigError(
            f"registered model {registered_model!r} at {uri} has no version {version}; "
            f"versions there: {', '.join(known) or 'none'}"
        ) from None
    client.set_registered_model_alias(registered_model, alias, str(version))
    return registered.tags.get(TAG_REASON)


def resolve_model_uri(model_uri: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """(name, version) that ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` names
    now: a server following an alias polls this to see whether it moved, without downloading.
    """
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    try:
        return _registered_version(connect(uri), model_uri)
    except MlflowException as error:
        raise ConfigError(f"cannot resolve {model_uri} at {uri}: {error.message}") from None


def download_artifact(model_uri: str, dst: Path, tracking_uri: str | None = None) -> Path:
    """Download the model artifact a registered version holds (``models:/<name>/<version>`` or
    ``models:/<name>@<alias>``) into ``dst``; returns the local artifact directory.

    The version is resolved with our own client and its source downloaded by URI, rather than
    handing the ``models:/`` URI to MLflow: up to at least 3.17 MLflow resolves those against the
    process-wide registry URI and ignores the one passed in (open fix: mlflow/mlflow PR #18313),
    which would read, or even create, ``./mlflow.db`` instead of the store asked for.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    client = connect(uri)
    try:
        name, version = _registered_version(client, model_uri)
        source = client.get_model_version_download_uri(name, version)
        local = download_artifacts(source, dst_path=str(dst), tracking_uri=uri)
    except MlflowException as error:
        raise ConfigError(f"cannot download {model_uri} from {uri}: {error.message}") from None
    if not (Path(local) / ARTIFACT_MANIFEST).is_file():
        raise ConfigError(
            f"{model_uri} holds no member-recsys model artifact (no {ARTIFACT_MANIFEST})"
        )
    return Path(local)


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
