"""The manifest, read and written one way: its format check, its file checksums, its times.

``manifest.json`` is written last, so a directory without one is never a model artifact; its
``files`` entry (every other file's sha256) is what loading verifies.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from training.artifact.errors import ArtifactError
from training.artifact.layout import FORMAT_VERSION, MANIFEST


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the artifact at ``path``, refused when missing, unreadable or of another
    format version."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise ArtifactError(
            f"{path} has no {MANIFEST}; it is not a model artifact and is refused"
        ) from None
    except (OSError, ValueError) as error:
        raise ArtifactError(
            f"{path / MANIFEST} is unreadable ({error}); model artifact refused"
        ) from error
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has model artifact format version {version!r}; this member-recsys reads "
            f"version {FORMAT_VERSION}, so the artifact is refused. Retrain with this version."
        )
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` into the staged directory ``root`` (its last file)."""
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_value))


def files_under(root: Path, directory: str) -> list[str]:
    """Paths (relative to ``root``, sorted) of every file under ``root / directory``."""
    return [
        found.relative_to(root).as_posix()
        for found in sorted((root / directory).rglob("*"))
        if found.is_file()
    ]


def checksums_under(root: Path, directory: str = ".") -> dict[str, str]:
    """sha256 of every file under ``root / directory``, by path relative to ``root``."""
    return {relative: sha256(root / relative) for relative in files_under(root, directory)}


def sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def utc_text(moment: datetime) -> str:
    """A manifest time: ISO-8601 in UTC (naive times are UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def utc_moment(text: str) -> datetime:
    """An ISO-8601 manifest time as an aware UTC datetime (naive times are UTC)."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _json_value(value: Any) -> Any:
    """Let metrics hold NumPy numbers and arrays (``json`` only knows Python's)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
