"""The model artifact as serving loads it: precomputed lists are added without rewriting a
file a server may have mapped, and a manifest that leaves out a file the loader reads is
refused."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.serving_helpers import corrupt
from training.artifact import ArtifactError, add_member_lists, load_artifact
from training.models import MODEL_CLASSES


@pytest.fixture
def artifact(tiny_trained: tuple[Path, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_trained[1], tmp_path / "artifact"))


def test_adding_lists_leaves_the_mapped_files_of_a_loaded_artifact_untouched(
    artifact: Path,
) -> None:
    served = load_artifact(artifact, mmap=True, model_classes=MODEL_CLASSES)
    assert served.lists is not None
    mapped_items = served.lists.items
    before = mapped_items.copy()
    old_lists_inode = (artifact / "lists" / "items.npy").stat().st_ino
    old_popularity_inode = (artifact / "popularity.npy").stat().st_ino
    new_lists = replace(served.lists, items=before[:, ::-1].copy(), scores=served.lists.scores + 1)

    add_member_lists(artifact, new_lists)

    np.testing.assert_array_equal(mapped_items, before)  # what the server maps is unchanged
    assert (artifact / "lists" / "items.npy").stat().st_ino != old_lists_inode
    assert (artifact / "popularity.npy").stat().st_ino == old_popularity_inode  # linked, not copied
    reloaded = load_artifact(artifact, mmap=True, model_classes=MODEL_CLASSES)  # checksums verified
    assert reloaded.lists is not None
    np.testing.assert_array_equal(reloaded.lists.items, new_lists.items)
    assert sorted(path.name for path in artifact.parent.iterdir()) == ["artifact"]  # no leftovers


def _manifest(artifact: Path) -> dict:
    return json.loads((artifact / "manifest.json").read_text())


def _write_manifest(artifact: Path, manifest: dict) -> None:
    (artifact / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "left_out",
    [
        lambda files: {},
        lambda files: {name: digest for name, digest in files.items() if name != "lists/items.npy"},
        lambda files: {name: digest for name, digest in files.items() if "models/als/" not in name},
        lambda files: {name: digest for name, digest in files.items() if name != "metrics.json"},
    ],
    ids=["empty", "a list array", "a model's files", "an extra file"],
)
def test_a_manifest_that_leaves_out_a_file_the_loader_reads_is_refused(
    artifact: Path, left_out: object
) -> None:
    manifest = _manifest(artifact)
    manifest["files"] = left_out(manifest["files"])  # type: ignore[operator]
    _write_manifest(artifact, manifest)
    with pytest.raises(ArtifactError, match="does not list"):
        load_artifact(artifact, model_classes=MODEL_CLASSES)


def test_a_corrupted_list_behind_an_empty_files_map_is_not_served(artifact: Path) -> None:
    """What an outside harness found: with ``files: {}`` nothing was verified, and a member
    asked for 10 items got 9 from the damaged list."""
    corrupt(artifact, "lists/items.npy")
    manifest = _manifest(artifact)
    manifest["files"] = {}
    _write_manifest(artifact, manifest)
    with pytest.raises(ArtifactError, match=re.escape("lists/items.npy")):
        load_artifact(artifact, model_classes=MODEL_CLASSES)
