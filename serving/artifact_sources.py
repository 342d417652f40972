"""Where a variant's model artifact comes from: a directory, or a version in the MLflow registry.

A source answers three questions. ``marker()`` is cheapest (file sizes and times, one
registry call) and changes whenever what the source would give changes, so that a poller can
ask it every few seconds; ``current_version()`` names the version (a small JSON file, one
registry call); ``fetch(version)`` gives a local directory holding that version, downloading
it when needed.

A directory source follows its path as given, every time: a symlink switched atomically to
another version's directory is a new version at the next look. ``fetch`` resolves the link
once, so that one load reads one directory even if the link moves meanwhile.

Registry versions are immutable, so a downloaded version is kept under the artifact cache at
``<cache>/<name>/<version>`` and reused by every worker: they all memory-map the same files,
one copy in the page cache. Downloads go to a private staging directory that is renamed into
place; when two workers download the same version at once, the first rename wins and the
other discards its copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from features.errors import RecsysError
from training.artifact import MANIFEST, ArtifactError

__all__ = [
    "ArtifactSource",
    "DirectorySource",
    "RegistrySource",
    "SourceUnavailableError",
    "manifest_version",
    "source_for",
]

_REGISTRY_PREFIX = "models:/"


class SourceUnavailableError(RecsysError):
    """A source cannot be read now (registry unreachable, alias missing); nothing changes."""


def manifest_version(manifest: Mapping[str, Any]) -> str:
    """The version of a model artifact that is not in a registry: its creation time and a short
    hash of its data fingerprint and checksums (``20261123T182912-3fa9c2d1``), so that a rewritten
    artifact always gets a new version, and the same artifact the same one in every worker."""
    created = str(manifest.get("created_at", "")).replace("-", "").replace(":", "")[:15]
    files = json.dumps(manifest.get("files", {}), sort_keys=True)
    content = f"{manifest.get('data_fingerprint', '')}\x00{files}".encode()
    return f"{created}-{hashlib.sha256(content).hexdigest()[:8]}"


class ArtifactSource(ABC):
    """One variant's source of model artifacts."""

    def __init__(self, description: str) -> None:
        self.description = description

    def marker(self) -> str:
        """A token that changes whenever what :meth:`fetch` would give changes (the poller
        compares it with the last one loaded or refused). Registry versions are immutable:
        the version is the marker."""
        return self.current_version()

    @abstractmethod
    def current_version(self) -> str:
        """The version the source holds now."""

    @abstractmethod
    def fetch(self, version: str) -> Path:
        """A local directory with the model artifact of ``version``."""

    def loaded_version(self, manifest: Mapping[str, Any], version: str) -> str:
        """The version to report for a model artifact loaded after ``fetch(version)``."""
        return version


class DirectorySource(ArtifactSource):
    """A model artifact directory; its version comes from its manifest, so that an artifact
    rewritten into the same directory (``recsys train --out``) is noticed by the poller."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    def marker(self) -> str:
        """A digest of every file's path, size, modification time and inode (the directory
        as the path leads to it now): an artifact swapped in, a symlink switched, or one file
        fixed in place under an unchanged manifest each give another marker. Never fails: a
        missing or unreadable directory has a marker too, and loading it is what refuses it."""
        digest = hashlib.sha256(str(self.path).encode())
        try:
            root = self.path.resolve(strict=True)
            digest.update(str(root).encode())
            for file in sorted(root.rglob("*")):
                status = file.stat()
                digest.update(
                    f"\x00{file.relative_to(root)}\x00{status.st_size}\x00{status.st_mtime_ns}"
                    f"\x00{status.st_ino}".encode()
                )
        except OSError as error:  # absent, or changing under the walk: the next look settles
            digest.update(f"\x00unreadable: {error}".encode())
        return digest.hexdigest()[:16]

    def current_version(self) -> str:
        try:
            manifest = json.loads((self.path / MANIFEST).read_text())
        except FileNotFoundError:
            raise ArtifactError(
                f"{self.path} has no {MANIFEST}; it is not a model artifact"
            ) from None
        except (OSError, ValueError) as error:
            raise ArtifactError(f"{self.path / MANIFEST} is unreadable ({error})") from error
        return manifest_version(manifest)

    def fetch(self, version: str) -> Path:
        """The directory the path leads to now (a symlink resolved once, for one load)."""
        return self.path.resolve()

    def loaded_version(self, manifest: Mapping[str, Any], version: str) -> str:
        """From the loaded manifest itself: the directory may have been rewritten between
        reading its version and loading it."""
        return manifest_version(manifest)


class RegistrySource(ArtifactSource):
    """A registered model version or alias (``models:/member-recsys@champion``)."""

    def __init__(self, model_uri: str, tracking_uri: str | None, cache: Path) -> None:
        super().__init__(model_uri)
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.cache = cache
        self._name: str | None = None

    def current_version(self) -> str:
        from training.tracking import resolve_model_uri

        try:
            self._name, version = resolve_model_uri(self.model_uri, self.tracking_uri)
        except RecsysError as error:
            raise SourceUnavailableError(str(error)) from error
        return version

    def fetch(self, version: str) -> Path:
        from training.tracking import download_artifact

        if self._name is None:
            self.current_version()
        name = str(self._name)
        target = self.cache / name / version
        if (target / MANIFEST).is_file():
            return target
        staging = self.cache / name / f".{version}.download-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            downloaded = download_artifact(f"{_REGISTRY_PREFIX}{name}/{version}", staging,
                                         self.tracking_uri)  # fmt: skip
            try:
                downloaded.rename(target)
            except OSError:
                if not (target / MANIFEST).is_file():  # not a concurrent download: a real error
                    raise
        except RecsysError as error:
            raise SourceUnavailableError(str(error)) from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def source_for(source: str, tracking_uri: str | None, cache: Path) -> ArtifactSource:
    """A registry source for ``models:/...`` URIs, a directory source otherwise."""
    if source.startswith(_REGISTRY_PREFIX):
        return RegistrySource(source, tracking_uri, cache)
    return DirectorySource(Path(source))
