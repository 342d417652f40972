"""The training view of interactions that every model is fit on.

One :class:`TrainingData` is built per fit, from validated interactions (and optionally the item
catalog and member profiles). It fixes the id maps, so that every model of a run, the FAISS
index and the model artifact share the same internal indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.ids import IdMap
from features.item_content import ItemContentConfig, ItemFeatures, build_item_features
from features.matrices import EventWeights, build_interaction_matrix, ids_from_interactions

__all__ = ["TrainingData", "build_training_data", "history_matrix", "member_segment_codes"]


@dataclass(frozen=True)
class TrainingData:
    """Everything a model may learn from, indexed by the run's id maps.

    ``matrix`` is members x items, float32, each cell the (weighted, optionally decayed) sum of
    events. ``member_segments`` holds, per member index, an index into ``segment_names`` (or -1
    when unknown); popularity per segment and LightFM's member features use it.
    """

    matrix: sp.csr_matrix
    member_ids: IdMap
    item_ids: IdMap
    interactions: pl.DataFrame
    #: The time the data is "as of" (the last event); None for a view read back from a model
    #: artifact, which is only evaluated, never fit.
    reference_time: datetime | None
    member_segments: np.ndarray | None = None
    segment_names: tuple[str, ...] = ()
    #: The catalog and how to featurise it, for :attr:`item_features`.
    items: pl.DataFrame | None = None
    content: ItemContentConfig | None = None

    @cached_property
    def item_features(self) -> ItemFeatures | None:
        """Content features of every indexed item (None without a catalog), built on first
        use: only content-aware models read them, and TF-IDF over a 100,000-item catalog
        costs about 2 s per fit that would otherwise be spent for nothing."""
        if self.items is None:
            return None
        return build_item_features(self.items, self.item_ids, self.content or ItemContentConfig())

    @property
    def n_members(self) -> int:
        return len(self.member_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def build_training_data(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None = None,
    member_segment_of: pl.DataFrame | None = None,
    weights: EventWeights | None = None,
    half_life_days: float | None = None,
    content: ItemContentConfig | None = None,
) -> TrainingData:
    """Build the id maps, the matrix and the side features of one fit.

    Catalog items that never occur in the interactions still get an index (after the
    interacted ones), so that content-aware models can recommend brand-new items.
    ``member_segment_of`` has columns ``member_id`` and ``segment``.
    """
    member_ids, item_ids = ids_from_interactions(interactions)
    if items is not None:
        item_ids = item_ids.extend(items.get_column(col.ITEM_ID))
    reference = interactions.get_column(col.TIMESTAMP).max()
    matrix = build_interaction_matrix(
        interactions,
        member_ids,
        item_ids,
        weights=weights or EventWeights(),
        half_life_days=half_life_days,
        reference_time=reference,
    )
    segments, names = member_segment_codes(member_segment_of, member_ids)
    return TrainingData(
        matrix=matrix,
        member_ids=member_ids,
        item_ids=item_ids,
        interactions=interactions,
        reference_time=reference,
        member_segments=segments,
        segment_names=names,
        items=items,
        content=content,
    )


def member_segment_codes(
    member_segment_of: pl.DataFrame | None, member_ids: IdMap
) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Per member index, the index of its segment in the sorted segment names (-1 where it has
    none), and the names: the form per-segment popularity indexes by."""
    if member_segment_of is None:
        return None, ()
    names = tuple(sorted(member_segment_of.get_column("segment").unique().drop_nulls().to_list()))
    codes = np.full(len(member_ids), -1, dtype=np.int32)
    index = member_ids.to_internal(member_segment_of.get_column(col.MEMBER_ID), strict=False)
    segment = member_segment_of.get_column("segment").cast(pl.Utf8)
    segment_codes = segment.replace_strict(
        names, range(len(names)), default=-1, return_dtype=pl.Int32
    ).to_numpy()
    known = index >= 0
    codes[index[known]] = segment_codes[known]
    return codes, names


def history_matrix(
    interactions: pl.DataFrame,
    member_ids: IdMap,
    item_ids: IdMap,
    weights: EventWeights | None = None,
) -> sp.csr_matrix:
    """Members x items matrix of the given interactions over fixed maps (unknown ids dropped)."""
    return build_interaction_matrix(interactions, member_ids, item_ids, weights or EventWeights())
