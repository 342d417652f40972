"""A loaded model artifact: what serving answers from (:func:`training.artifact.load_artifact`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.ids import IdMap
from training.artifact.errors import UnknownModelError
from training.artifact.lists import MemberLists
from training.artifact.manifest import utc_moment
from training.index import ItemIndex
from training.models.base import Recommender


@dataclass(frozen=True)
class ModelArtifact:
    """A loaded model artifact: everything serving answers from, indexed by its id maps."""

    path: Path
    manifest: Mapping[str, Any]
    member_ids: IdMap
    item_ids: IdMap
    models: Mapping[str, Recommender]
    histories: sp.csr_matrix
    purchases: sp.csr_matrix
    popularity: np.ndarray
    segment_names: tuple[str, ...]
    segment_popularity: np.ndarray | None
    member_segments: np.ndarray | None
    catalog: pl.DataFrame | None
    indexes: Mapping[str, ItemIndex]
    extra_files: Mapping[str, Path]
    lists: MemberLists | None = None

    @property
    def chosen(self) -> str:
        """Name of the model that answers when a request names none."""
        return str(self.manifest["chosen"])

    @property
    def default_model(self) -> Recommender:
        return self.models[self.chosen]

    @property
    def created_at(self) -> datetime:
        """When the artifact was written (aware, UTC)."""
        return utc_moment(str(self.manifest["created_at"]))

    @property
    def data_end(self) -> datetime | None:
        """The time of the last event the artifact learned from (aware, UTC); None for
        artifacts written before the manifest recorded it."""
        stamp = self.manifest.get("data_end")
        return utc_moment(str(stamp)) if stamp else None

    @property
    def member_key(self) -> str | None:
        """The key fingerprint of the artifact's pseudonymised member ids; None when the ids
        are raw (and for artifacts written before the manifest recorded it)."""
        recorded = self.manifest.get("member_ids") or {}
        return recorded.get("key_fingerprint") if recorded.get("pseudonymised") else None

    def model(self, name: str) -> Recommender:
        """The model called ``name``; an unknown name lists the ones there are."""
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(
                f"model artifact {self.path} has no model {name!r}; "
                f"available: {sorted(self.models)}"
            ) from None
