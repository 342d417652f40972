"""Model artifacts from the MLflow registry: serving follows an alias, downloads each version once,
the poller notices when the alias moves, and an alias that does not resolve is not served."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from serving.artifact_sources import RegistrySource, SourceUnavailableError
from serving.model_store import ModelStore
from serving.settings import VariantConfig
from tests.serving_helpers import copy_artifact
from training.tracking import log_training_run, promote

NAME = "serving-test-model"
URI = f"models:/{NAME}@champion"


def test_serving_follows_the_champion_alias(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics = json.loads((tiny_trained[1] / "metrics.json").read_text())
    second = copy_artifact(tiny_trained[1], tmp_path / "second", created_at="2030-01-01T00:00:00")
    first_run = log_training_run(metrics, tiny_trained[1], tracking_uri=tracking_uri,
                                 registered_model=NAME)  # fmt: skip
    second_run = log_training_run(metrics, second, tracking_uri=tracking_uri, registered_model=NAME)
    assert (first_run.model_version, second_run.champion_version) == ("1", "1")

    cache = tmp_path / "cache"
    store = ModelStore(
        {"default": VariantConfig(source=URI)},
        {"default": RegistrySource(URI, tracking_uri, cache)},
    )
    [loaded] = asyncio.run(store.reload())
    assert (loaded.version, store.ready) == ("1", True)
    assert (cache / NAME / "1" / "manifest.json").is_file()
    assert asyncio.run(store.reload(only_if_changed=True)) == []  # what the poller does

    promote(2, registered_model=NAME, tracking_uri=tracking_uri)
    [moved] = asyncio.run(store.reload(only_if_changed=True))
    assert (moved.previous_version, moved.version, moved.swapped) == ("1", "2", True)
    assert store.snapshot("default").artifact.manifest["created_at"].startswith("2030")

    missing = f"models:/{NAME}@nobody"
    orphan = ModelStore(
        {"default": VariantConfig(source=missing)},
        {"default": RegistrySource(missing, tracking_uri, cache)},
    )
    with pytest.raises(SourceUnavailableError, match="variant default"):
        asyncio.run(orphan.reload())
    assert not orphan.ready
