"""Popularity, overall and per member segment, counted in Spark into the project's
:class:`~training.models.popular.PopularityRecommender`.

The counts are those of ``PopularityRecommender.fit``: per item, the members with a cell
(``"members"`` weighting) or the cells' weights summed (``"events"``), over the fit's cells, or,
with a window, over the cells of the recent rows with the default event weights and no decay.
The per-segment table sums the cells of each segment's members (segments of the driver's
:class:`~training.dataset.TrainingData`, shipped to Spark as one small table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from features.matrices import EventWeights
from training.models.popular import PopularityParams, PopularityRecommender
from training.spark.cells import ITEM, MEMBER, WEIGHT, age_days, weighted_cells

if TYPE_CHECKING:
    from training.spark.fit import SparkFit

__all__ = ["fit_popularity"]

_SEGMENT, _SCORE = "segment", "score"


def fit_popularity(fit: SparkFit, params: PopularityParams) -> PopularityRecommender:
    """The popularity model of ``params`` from the fit's cells (see the module docstring)."""
    data = fit.data
    counted = fit.cells
    if params.window_days is not None:
        assert data.reference_time is not None
        recent = fit.rows.where(age_days(data.reference_time) <= params.window_days)
        counted = weighted_cells(recent, fit.members, fit.items, EventWeights())
    value = sf.lit(1.0) if params.weighting == "members" else sf.col(WEIGHT)
    model = PopularityRecommender(params)
    model.n_items = data.n_items
    totals = counted.groupBy(ITEM).agg(sf.sum(value).alias(_SCORE))
    model.global_scores = _dense(totals, [ITEM], (data.n_items,))
    model.segment_scores = np.zeros((0, data.n_items), dtype=np.float32)
    if params.by_segment and data.member_segments is not None:
        model.member_segments = np.asarray(data.member_segments, dtype=np.int32)
        known = np.flatnonzero(model.member_segments >= 0)
        segment_of = fit.session.createDataFrame(
            pa.table({MEMBER: known.astype(np.int32), _SEGMENT: model.member_segments[known]})
        )
        by_segment = counted.join(segment_of, MEMBER).groupBy(_SEGMENT, ITEM)
        model.segment_scores = _dense(
            by_segment.agg(sf.sum(value).alias(_SCORE)),
            [_SEGMENT, ITEM],
            (len(data.segment_names), data.n_items),
        )
    return model


def _dense(totals: DataFrame, keys: list[str], shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of ``shape`` holding ``totals``' scores at their ``keys``, 0 elsewhere."""
    table = totals.toArrow()
    dense = np.zeros(shape, dtype=np.float32)
    dense[tuple(table.column(key).to_numpy() for key in keys)] = table.column(_SCORE).to_numpy()
    return dense
