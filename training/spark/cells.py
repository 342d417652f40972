"""The weighted member x item cells of :func:`features.matrices.build_interaction_matrix`, in Spark.

A cell sums, over the member's rows of the item, each row's event weight, times
``0.5 ** (age_days / half_life_days)`` with a half-life (age measured back from the fit's last
event, never below 0). The cells stay in Spark for the fits; :func:`collected_matrix` brings
them to the driver as the float32 CSR matrix the evaluation and the model artifact hold (summed
in float64, then cast, as the Polars engine's).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import scipy.sparse as sp
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from features import columns as col
from features.matrices import EventWeights

__all__ = ["ITEM", "MEMBER", "WEIGHT", "age_days", "collected_matrix", "weighted_cells"]

#: Columns of the cells: the member and item indices of the fit's id maps, and the weight.
MEMBER, ITEM, WEIGHT = "member", "item", "weight"
_MICROSECONDS_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1)


def age_days(reference: datetime) -> Column:
    """Fractional days from each row's timestamp up to ``reference`` (naive UTC), as
    :func:`features.times.days_before` measures them."""
    reference_micros = (reference - _EPOCH) // timedelta(microseconds=1)
    stamps = sf.unix_micros(sf.col(col.TIMESTAMP).cast("timestamp"))  # naive UTC, session in UTC
    return (sf.lit(reference_micros) - stamps) / _MICROSECONDS_PER_DAY


def weighted_cells(
    rows: DataFrame,
    members: DataFrame,
    items: DataFrame,
    weights: EventWeights,
    half_life_days: float | None = None,
    reference: datetime | None = None,
) -> DataFrame:
    """Cells (:data:`MEMBER`, :data:`ITEM`, :data:`WEIGHT`) of validated rows over the id maps
    ``members`` (member_id, MEMBER) and ``items`` (item_id, ITEM); every row's event is one of
    the contract's, validation saw to that."""
    weight: Column | None = None
    for event, value in weights.by_event().items():
        matched = sf.col(col.EVENT) == event
        weight = sf.when(matched, value) if weight is None else weight.when(matched, value)
    assert weight is not None
    if half_life_days is not None and reference is not None:
        age = sf.greatest(age_days(reference), sf.lit(0.0))
        weight = weight * sf.pow(sf.lit(0.5), age / half_life_days)
    return (
        rows.join(members, col.MEMBER_ID)
        .join(items, col.ITEM_ID)
        .groupBy(MEMBER, ITEM)
        .agg(sf.sum(weight).alias(WEIGHT))
    )


def collected_matrix(cells: DataFrame, shape: tuple[int, int]) -> sp.csr_matrix:
    """The cells on the driver as a float32 CSR matrix of ``shape``."""
    table = cells.toArrow()
    rows, columns = table.column(MEMBER).to_numpy(), table.column(ITEM).to_numpy()
    summed = sp.csr_matrix(
        (table.column(WEIGHT).to_numpy(), (rows, columns)), shape=shape, dtype=np.float64
    )
    return summed.astype(np.float32)
