"""One fit of the protocol in Spark: its rows, id maps and weighted cells, the driver's
:class:`~training.dataset.TrainingData` built from them, and the models fit on them.

What runs where: the id maps' distinct ids and the cells are computed in Spark and collected
(ids in order of first appearance, the cells as the CSR matrix); ALS, popularity and the
itemsets of the rules are fit or counted in Spark on the cells and rows kept there. The driver
holds the compact matrix, the models' arrays and the fit's validated rows as a Polars frame
(which the evaluation, the member segments and the model artifact read).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl
from pyspark.sql import DataFrame, SparkSession

from features import columns as col
from features.errors import ConfigError
from features.ids import IdMap
from features.matrices import EventWeights
from training.config import SPARK_MODELS, RuleConfig
from training.dataset import TrainingData, member_segment_codes
from training.models.als import ALSRecommender
from training.models.base import Recommender
from training.models.popular import PopularityRecommender
from training.rules import MinedRules
from training.spark import itemsets
from training.spark.als import fit_als
from training.spark.cells import ITEM, MEMBER, collected_matrix, weighted_cells
from training.spark.popularity import fit_popularity
from training.spark.rows import FitRows, first_seen, index_frame, spark_rows

__all__ = ["SparkFit", "spark_fit"]


@dataclass(frozen=True, eq=False)
class SparkFit:
    """A fit's tables in Spark (``rows``, the id maps ``members`` and ``items``, ``cells``) and
    ``data``, the same fit on the driver."""

    session: SparkSession
    rows: DataFrame
    members: DataFrame
    items: DataFrame
    cells: DataFrame
    data: TrainingData

    def fit_model(self, name: str, params: dict[str, Any], data: TrainingData) -> Recommender:
        """A :data:`~training.models.FitModel` of the engine's models, on this fit's data."""
        if data is not self.data:
            raise ValueError("a Spark fit fits models on its own training data only")
        if name == ALSRecommender.name:
            return fit_als(self.cells, data.matrix, ALSRecommender(**params).params)
        if name == PopularityRecommender.name:
            return fit_popularity(self, PopularityRecommender(**params).params)
        raise ConfigError(f"the spark engine fits {', '.join(SPARK_MODELS)}, not {name!r}")

    def mine_rules(self, config: RuleConfig) -> MinedRules:
        """The frequently-bought-together rules of this fit's purchases."""
        return itemsets.mine_rules(self.session, self.rows, config)


@contextmanager
def spark_fit(
    session: SparkSession,
    table: DataFrame,
    rows: FitRows,
    frame: pl.DataFrame,
    *,
    items: pl.DataFrame | None,
    segments: pl.DataFrame,
    weights: EventWeights,
    half_life_days: float | None,
) -> Iterator[SparkFit]:
    """The fit of ``rows`` of the validated ``table`` (``frame``: the same rows on the driver,
    without row numbers), as :func:`training.dataset.build_training_data` builds one: catalog
    items never interacted with are indexed after the others; ``segments``: each member's
    segment. Its Spark tables are cached for the block and released after it."""
    fit_rows = spark_rows(session, table, rows).persist()
    cells = None
    try:
        member_ids = IdMap.from_values(first_seen(fit_rows, col.MEMBER_ID))
        item_ids = IdMap.from_values(first_seen(fit_rows, col.ITEM_ID))
        if items is not None:
            item_ids = item_ids.extend(items.get_column(col.ITEM_ID))
        members = index_frame(session, col.MEMBER_ID, member_ids, MEMBER)
        items_frame = index_frame(session, col.ITEM_ID, item_ids, ITEM)
        reference = frame.get_column(col.TIMESTAMP).max()
        cells = weighted_cells(
            fit_rows,
            members,
            items_frame,
            weights,
            half_life_days,
            reference,  # type: ignore[arg-type]
        ).persist()
        segment_codes, segment_names = member_segment_codes(segments, member_ids)
        data = TrainingData(
            matrix=collected_matrix(cells, (len(member_ids), len(item_ids))),
            member_ids=member_ids,
            item_ids=item_ids,
            interactions=frame,
            reference_time=reference,  # type: ignore[arg-type]
            member_segments=segment_codes,
            segment_names=segment_names,
            items=items,
        )
        yield SparkFit(session, fit_rows, members, items_frame, cells, data)
    finally:
        fit_rows.unpersist()
        if cells is not None:
            cells.unpersist()
