"""The model artifact: the one directory a training run hands to serving (DESIGN section 4).

Training writes everything serving needs to answer requests into one directory; serving loads
it from a path, checks every checksum and swaps it in, or refuses it and keeps the old one.
Nothing is pickled, so an artifact is safe to load from anywhere, and large arrays are plain
``.npy`` files that every worker memory-maps (one copy in the page cache, not one per worker).
The contract is written up in docs/artifact.md. One module per job:

- :mod:`~training.artifact.layout`: the file names and the catalog fields (the layout);
- :mod:`~training.artifact.manifest`: the manifest's format check, checksums and times;
- :mod:`~training.artifact.fingerprint`: which interactions an artifact was trained on;
- :mod:`~training.artifact.write`: :func:`write_artifact`, staged and moved into place;
- :mod:`~training.artifact.lists`: precomputed member lists, added after writing;
- :mod:`~training.artifact.load`: :func:`load_artifact`, verified, then memory-mapped, into a
  :class:`~training.artifact.model.ModelArtifact`;
- :mod:`~training.artifact.errors`: :class:`ArtifactError`, what a refused artifact raises.
"""

from training.artifact.errors import ArtifactError, UnknownModelError
from training.artifact.fingerprint import data_fingerprint
from training.artifact.layout import (
    FORMAT_VERSION,
    MANIFEST,
    MEMBERS_METRICS_FILE,
    METRICS_FILE,
    REPORT_FILE,
    RULES_FILE,
)
from training.artifact.lists import MemberLists, add_member_lists
from training.artifact.load import load_artifact
from training.artifact.model import ModelArtifact
from training.artifact.write import write_artifact

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "MEMBERS_METRICS_FILE",
    "METRICS_FILE",
    "REPORT_FILE",
    "RULES_FILE",
    "ArtifactError",
    "MemberLists",
    "ModelArtifact",
    "UnknownModelError",
    "add_member_lists",
    "data_fingerprint",
    "load_artifact",
    "write_artifact",
]
