"""Where a variant's bundle comes from: a directory, or a version in the MLflow registry.

A source answers two questions. ``current_version()`` is cheap (a small JSON file, one
registry call) so that a poller can ask it every few seconds; ``fetch(version)`` gives a local
directory holding that version, downloading it when needed.

Registry versions are immutable, so a downloaded version is kept under the bundle cache at
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
from training.bundle import MANIFEST, BundleError

__all__ = [
    "BundleSource",
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
    """The version of a bundle that is not in a registry: its creation time and a short hash
    of its data fingerprint and checksums (``20261123T182912-3fa9c2d1``), so that a rewritten
    bundle always gets a new version, and the same bundle the same one in every worker."""
    created = str(manifest.get("created_at", "")).replace("-", "").replace(":", "")[:15]
    files = json.dumps(manifest.get("files", {}), sort_keys=True)
    content = f"{manifest.get('data_fingerprint', '')}\x00{files}".encode()
    return f"{created}-{hashlib.sha256(content).hexdigest()[:8]}"


class BundleSource(ABC):
    """One variant's source of bundles."""

    def __init__(self, description: str) -> None:
        self.description = description

    @abstractmethod
    def current_version(self) -> str:
        """The version the source holds now (cheap; called by the poller)."""

    @abstractmethod
    def fetch(self, version: str) -> Path:
        """A local directory with the bundle of ``version``."""

    def loaded_version(self, manifest: Mapping[str, Any], version: str) -> str:
        """The version to report for a bundle loaded after ``fetch(version)``."""
        return version


class DirectorySource(BundleSource):
    """A bundle directory; its version comes from its manifest, so that a bundle rewritten in
    place (``recsys train --out`` the same directory) is noticed by the poller."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    def current_version(self) -> str:
        try:
            manifest = json.loads((self.path / MANIFEST).read_text())
        except FileNotFoundError:
            raise BundleError(f"{self.path} has no {MANIFEST}; it is not a bundle") from None
        except (OSError, ValueError) as error:
            raise BundleError(f"{self.path / MANIFEST} is unreadable ({error})") from error
        return manifest_version(manifest)

    def fetch(self, version: str) -> Path:
        return self.path

    def loaded_version(self, manifest: Mapping[str, Any], version: str) -> str:
        """From the loaded manifest itself: the directory may have been rewritten between
        reading its version and loading it."""
        return manifest_version(manifest)


class RegistrySource(BundleSource):
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
        from training.tracking import download_bundle

        if self._name is None:
            self.current_version()
        name = str(self._name)
        target = self.cache / name / version
        if (target / MANIFEST).is_file():
            return target
        staging = self.cache / name / f".{version}.download-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            downloaded = download_bundle(f"{_REGISTRY_PREFIX}{name}/{version}", staging,
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


def source_for(source: str, tracking_uri: str | None, cache: Path) -> BundleSource:
    """A registry source for ``models:/...`` URIs, a directory source otherwise."""
    if source.startswith(_REGISTRY_PREFIX):
        return RegistrySource(source, tracking_uri, cache)
    return DirectorySource(Path(source))
