"""The members the artifact carries without events: the program's members no model indexes.

The models index only members with events, yet a campaign is for every member of the
program. So the artifact carries the members table's other members (``members.parquet``:
``member_id`` and the lifecycle segment :func:`features.members.compute_member_profiles`
gives them as of the data's end), and an export lists each of them once with the popularity
of their segment, flagged fallback, instead of leaving them out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from features import columns as col
from features.members import SEGMENT, compute_member_profiles
from training.artifact import ModelArtifact
from training.dataset import TrainingData

__all__ = ["ROSTER_FILE", "Roster", "members_without_events"]

#: The artifact's extra file of the members without events.
ROSTER_FILE = "members.parquet"

_CODE = "segment_code"


def members_without_events(members: pl.DataFrame, data: TrainingData) -> pl.DataFrame:
    """``member_id`` and ``segment`` of the members of ``members`` that ``data`` has no event of.

    Their profile is computed on their own, as of the data's reference time: without events a
    member's segment follows from ``joined_at`` alone (churned without one), exactly as the
    profile of the whole member base gives it, and this costs nothing per event.
    """
    indexed = pl.Series(data.member_ids.external_ids, dtype=pl.Utf8)
    outside = members.filter(~pl.col(col.MEMBER_ID).cast(pl.Utf8).is_in(indexed.implode()))
    profiles = compute_member_profiles(
        data.interactions.clear(), reference_time=data.reference_time, members=outside
    )
    return profiles.select(col.MEMBER_ID, SEGMENT)


class Roster:
    """The artifact's members without events, with their segment codes (the artifact's
    ``segment_names`` positions; -1 where the artifact has no such segment)."""

    def __init__(self, artifact: ModelArtifact) -> None:
        path = artifact.extra_files.get(ROSTER_FILE)
        frame = (
            pl.read_parquet(path, columns=[col.MEMBER_ID, SEGMENT])
            if path is not None
            else pl.DataFrame(schema={col.MEMBER_ID: pl.Utf8, SEGMENT: pl.Utf8})
        )
        names = list(artifact.segment_names)
        indexed = pl.Series(artifact.member_ids.external_ids, dtype=pl.Utf8)
        self._codes = (
            frame.filter(~pl.col(col.MEMBER_ID).is_in(indexed.implode()))
            .unique(col.MEMBER_ID, keep="first", maintain_order=True)
            .select(
                col.MEMBER_ID,
                pl.col(SEGMENT)
                .replace_strict(names, range(len(names)), default=-1, return_dtype=pl.Int32)
                .alias(_CODE),
            )
        )

    @property
    def member_ids(self) -> np.ndarray:
        """The carried members' ids, in the file's order, each once and none the models index."""
        return self._codes.get_column(col.MEMBER_ID).to_numpy()

    def __len__(self) -> int:
        return self._codes.height

    def in_segment(self, code: int) -> np.ndarray:
        """The carried members of segment ``code``."""
        return self._codes.filter(pl.col(_CODE) == code).get_column(col.MEMBER_ID).to_numpy()

    def codes_by_member(self) -> dict[str, int]:
        """Every carried member's segment code, for lookups one member at a time (serving)."""
        return dict(self._codes.iter_rows())

    def segment_codes(self, member_ids: Sequence[str]) -> np.ndarray:
        """Per member (in order): the carried member's segment code, -1 for anyone else."""
        asked = pl.DataFrame({col.MEMBER_ID: pl.Series(member_ids, dtype=pl.Utf8)})
        found = asked.join(self._codes, on=col.MEMBER_ID, how="left", maintain_order="left")
        return found.get_column(_CODE).fill_null(-1).to_numpy()
