"""Listing a registered model's versions with their aliases and promotion tags: what the
dashboard's models page shows (which version is champion, and why each was or was not)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from features.errors import ConfigError
from training.tracking.store import CHAMPION_ALIAS, connect
from training.tracking.tags import (
    TAG_CHOSEN,
    TAG_DECISION,
    TAG_PRIMARY_METRIC,
    TAG_PRIMARY_VALUE,
    TAG_REASON,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

__all__ = ["RegisteredVersion", "registered_versions"]


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model, as its tags record it."""

    name: str
    version: str
    aliases: tuple[str, ...]
    created_at: datetime | None
    run_id: str | None
    chosen_model: str | None
    primary_metric: str | None
    primary_value: float | None
    decision: str | None
    reason: str | None

    @property
    def champion(self) -> bool:
        return CHAMPION_ALIAS in self.aliases


def registered_versions(name: str, tracking_uri: str) -> list[RegisteredVersion]:
    """Every version of registered model ``name`` at ``tracking_uri``, newest first (none when
    the model is not registered there); a store that cannot be read is a ``ConfigError``."""
    from mlflow.exceptions import MlflowException

    quote = '"' if "'" in name else "'"  # MLflow's filter syntax has no escapes
    client = connect(tracking_uri)
    try:
        found = client.search_model_versions(f"name = {quote}{name}{quote}")
        # Searches leave a version's aliases out (MLflow 3): the registered model has them.
        aliases = client.get_registered_model(name).aliases if found else {}
    except MlflowException as error:
        raise ConfigError(f"cannot read the registry at {tracking_uri}: {error.message}") from None
    by_version: dict[str, list[str]] = {}
    for alias, version in (aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    versions = [_version(each, by_version.get(str(each.version), [])) for each in found]
    return sorted(versions, key=lambda version: int(version.version), reverse=True)


def _version(found: ModelVersion, aliases: list[str]) -> RegisteredVersion:
    tags: dict[str, str] = dict(found.tags or {})
    value = tags.get(TAG_PRIMARY_VALUE)
    created_ms = found.creation_timestamp
    return RegisteredVersion(
        name=str(found.name),
        version=str(found.version),
        aliases=tuple(sorted({*aliases, *(found.aliases or ())})),
        created_at=datetime.fromtimestamp(created_ms / 1000, UTC) if created_ms else None,
        run_id=found.run_id,
        chosen_model=tags.get(TAG_CHOSEN),
        primary_metric=tags.get(TAG_PRIMARY_METRIC),
        primary_value=float(value) if value else None,
        decision=tags.get(TAG_DECISION),
        reason=tags.get(TAG_REASON),
    )
