"""Loading a model artifact: verify every checksum, then memory-map; refuse it whole or not at
all, so that serving keeps the artifact it has."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.ids import IdMap
from training.artifact.errors import ArtifactError
from training.artifact.layout import (
    CATALOG,
    HISTORIES_DIR,
    HISTORY_PARTS,
    INDEXES_DIR,
    ITEM_IDS,
    LIST_PARTS,
    LISTS_DIR,
    MEMBER_IDS,
    MEMBER_SEGMENTS,
    MODELS_DIR,
    POPULARITY,
    PURCHASES_DIR,
    SEGMENT_POPULARITY,
)
from training.artifact.lists import load_lists
from training.artifact.manifest import files_under, read_manifest, sha256
from training.artifact.model import ModelArtifact
from training.index import ItemIndex
from training.models.base import Recommender

#: What reading a damaged artifact raises from NumPy, FAISS (RuntimeError), Polars or a manifest
#: with missing keys or wrong types; translated to :class:`ArtifactError` at one boundary.
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, RuntimeError, pl.exceptions.PolarsError)


def load_artifact(
    path: Path,
    mmap: bool = True,
    verify: bool = True,
    *,
    model_classes: Mapping[str, type[Recommender]],
) -> ModelArtifact:
    """Load the model artifact at ``path``, refusing it whole (:class:`ArtifactError`) when the
    manifest is missing or of another format version, when (with ``verify``) any file is
    missing, its checksum differs or a file the loader reads is not listed, or when a model's
    class is not in ``model_classes`` (keyed by ``Recommender.name``; passed in so that this
    module imports no concrete model).

    With ``mmap`` the large arrays (histories, popularity, model arrays, the FAISS vectors) are
    memory-mapped read-only, so that every worker process shares one copy.
    """
    manifest = read_manifest(path)
    try:
        if verify:
            _verify_files(path, manifest["files"], _files_read(path, manifest))
        classes = _model_classes(path, manifest, model_classes)
        return _load_contents(path, manifest, classes, mmap)
    except _UNREADABLE as error:  # a malformed manifest or, unverified, a corrupt file
        raise ArtifactError(
            f"model artifact {path} cannot be loaded ({type(error).__name__}: {error}); "
            "it is refused"
        ) from error


def _verify_files(path: Path, files: Mapping[str, str], read: set[str]) -> None:
    """Every file the loader reads (``read``) must be listed, and every listed file present,
    inside the artifact, and unchanged since writing: a manifest that leaves a file out would
    let a corrupt array through unchecked."""
    unlisted = sorted(read - files.keys())
    if unlisted:
        raise ArtifactError(
            f"{path}: the manifest does not list {', '.join(unlisted)}, which serving reads, so "
            "their checksums cannot be verified; the artifact is refused. Rewrite it with "
            "recsys train."
        )
    for relative, expected in files.items():
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts:
            raise ArtifactError(
                f"{path}: manifest lists {relative!r} outside the artifact; refused"
            )
        file = path / relative
        if not file.is_file():
            raise ArtifactError(f"{path}: {relative} is missing; the artifact is refused")
        if sha256(file) != expected:
            raise ArtifactError(
                f"{path}: checksum mismatch in {relative} (changed or corrupt since it was "
                "written); the artifact is refused"
            )


def _files_read(path: Path, manifest: Mapping[str, Any]) -> set[str]:
    """The files :func:`_load_contents` reads for this manifest (relative paths): the fixed
    arrays, the lists and extra files the manifest names, and everything in the directory of
    each model and index it names (their ``load`` decides which files it opens)."""
    read = {MEMBER_IDS, ITEM_IDS, POPULARITY, *manifest["extra_files"]}
    read |= {f"{part_dir}/{part}.npy" for part_dir in (HISTORIES_DIR, PURCHASES_DIR)
             for part in HISTORY_PARTS}  # fmt: skip
    if manifest.get("lists") is not None:
        read |= {f"{LISTS_DIR}/{part}.npy" for part in LIST_PARTS}
    for directory in [
        *(f"{MODELS_DIR}/{name}" for name in manifest["models"]),
        *(f"{INDEXES_DIR}/{name}" for name in manifest["indexes"]),
    ]:
        read |= set(files_under(path, directory))
    return read


def _model_classes(
    path: Path, manifest: Mapping[str, Any], registry: Mapping[str, type[Recommender]]
) -> dict[str, type[Recommender]]:
    """The class of each model in the artifact, looked up before any model is loaded."""
    classes = {}
    for name, entry in manifest["models"].items():
        if entry["class"] not in registry:
            raise ArtifactError(
                f"{path}: model {name!r} is a {entry['class']!r}, which this service does not "
                f"know (known: {sorted(registry)}); the artifact is refused"
            )
        classes[name] = registry[entry["class"]]
    return classes


def _load_contents(
    path: Path,
    manifest: Mapping[str, Any],
    classes: Mapping[str, type[Recommender]],
    mmap: bool,
) -> ModelArtifact:
    files = manifest["files"]
    mode = "r" if mmap else None
    member_ids, item_ids = IdMap.load(path / MEMBER_IDS), IdMap.load(path / ITEM_IDS)
    return ModelArtifact(
        path=path,
        manifest=manifest,
        member_ids=member_ids,
        item_ids=item_ids,
        models={name: cls.load(path / MODELS_DIR / name, mmap) for name, cls in classes.items()},
        histories=_load_csr(path / HISTORIES_DIR, (len(member_ids), len(item_ids)), mode),
        purchases=_load_csr(path / PURCHASES_DIR, (len(member_ids), len(item_ids)), mode),
        popularity=np.load(path / POPULARITY, mmap_mode=mode, allow_pickle=False),
        segment_names=tuple(manifest["segment_names"]),
        segment_popularity=_load_optional(path, files, SEGMENT_POPULARITY, mode),
        member_segments=_load_optional(path, files, MEMBER_SEGMENTS, mode),
        catalog=pl.read_parquet(path / CATALOG) if CATALOG in files else None,
        indexes={
            name: ItemIndex.load(path / INDEXES_DIR / name, mmap) for name in manifest["indexes"]
        },
        extra_files={name: path / name for name in manifest["extra_files"]},
        lists=load_lists(path, manifest.get("lists"), mode),
    )


def _load_optional(
    path: Path, files: Mapping[str, str], relative: str, mode: str | None
) -> np.ndarray | None:
    """An optional array, present exactly when the manifest lists it."""
    if relative not in files:
        return None
    return np.load(path / relative, mmap_mode=mode, allow_pickle=False)


def _load_csr(directory: Path, shape: tuple[int, int], mode: str | None) -> sp.csr_matrix:
    parts = [
        np.load(directory / f"{part}.npy", mmap_mode=mode, allow_pickle=False)
        for part in HISTORY_PARTS
    ]
    return sp.csr_matrix(tuple(parts), shape=shape, copy=False)
