"""Interactions -> the sparse member x item matrix that every collaborative model trains on.

One cell holds the summed evidence that a member likes an item: each event adds its event-type
weight, optionally discounted by age so that old habits fade. Rows and columns are the internal
indices of :class:`~features.ids.IdMap` objects, so the matrix lines up with everything else
that uses the same maps.
"""

from __future__ import annotations

import math
from datetime import datetime
from itertools import pairwise

import numpy as np
import polars as pl
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, model_validator

from features.columns import EVENT, EVENTS, ITEM_ID, MEMBER_ID, TIMESTAMP
from features.errors import ConfigError, DataError
from features.frames import require_columns
from features.ids import IdMap
from features.times import days_before

__all__ = ["EventWeights", "build_interaction_matrix", "ids_from_interactions"]


class EventWeights(BaseModel):
    """How much one event of each kind counts towards a member-item cell.

    Stronger intent must weigh strictly more (view < click < cart < purchase): otherwise ten
    views could outrank a purchase by construction, which is never what a retailer means.
    The field names are the event names of :data:`features.columns.EVENTS`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    view: float = 1.0
    click: float = 2.0
    cart: float = 4.0
    purchase: float = 8.0

    @model_validator(mode="after")
    def _positive_and_increasing(self) -> EventWeights:
        weights = self.by_event()
        if not all(math.isfinite(weight) and weight > 0 for weight in weights.values()):
            raise ConfigError(f"event weights must be finite and above 0, got {weights}")
        if any(weaker >= stronger for weaker, stronger in pairwise(weights.values())):
            raise ConfigError(
                f"event weights must increase strictly in the order {' < '.join(EVENTS)}, "
                f"got {weights}; raise the weight of the stronger event"
            )
        return self

    def by_event(self) -> dict[str, float]:
        """The weights keyed by event name, weakest event first."""
        return {event: getattr(self, event) for event in EVENTS}


_DEFAULT_WEIGHTS = EventWeights()  # frozen, so one shared default is safe


def ids_from_interactions(interactions: pl.DataFrame) -> tuple[IdMap, IdMap]:
    """Member and item maps covering every id in the interactions, in order of first appearance.

    Use these for a matrix that keeps every row; pass narrower maps to build a matrix over a
    fixed universe (for example the training maps when encoding test interactions).
    """
    require_columns(interactions, (MEMBER_ID, ITEM_ID), "interactions")
    return (
        IdMap.from_values(interactions.get_column(MEMBER_ID)),
        IdMap.from_values(interactions.get_column(ITEM_ID)),
    )


def build_interaction_matrix(
    interactions: pl.DataFrame,
    member_ids: IdMap,
    item_ids: IdMap,
    weights: EventWeights = _DEFAULT_WEIGHTS,
    half_life_days: float | None = None,
    reference_time: datetime | None = None,
) -> sp.csr_matrix:
    """Sum event weights into a float32 CSR matrix of shape ``(len(member_ids), len(item_ids))``.

    Each row adds its event's weight once, whatever its quantity: buying a dozen of an item
    says less about taste than buying it on a dozen occasions.
    With ``half_life_days`` each event is multiplied by ``0.5 ** (age_days / half_life_days)``,
    the age being measured back from ``reference_time`` (default: the latest timestamp in the
    interactions). Events after the reference time count as age 0, never more than full weight.

    Rows whose member or item is not in the maps are dropped: the maps define the universe of
    the model and such a row has no cell to go to. Build the maps with
    :func:`ids_from_interactions` to keep every row.
    """
    require_columns(interactions, (MEMBER_ID, ITEM_ID, EVENT, TIMESTAMP), "interactions")
    values = _cell_contributions(interactions, weights, half_life_days, reference_time)
    rows = member_ids.to_internal(interactions.get_column(MEMBER_ID), strict=False)
    columns = item_ids.to_internal(interactions.get_column(ITEM_ID), strict=False)
    mapped = (rows >= 0) & (columns >= 0)
    if not mapped.all():  # copying tens of millions of rows only when some drop out
        values, rows, columns = values[mapped], rows[mapped], columns[mapped]
    summed = sp.csr_matrix(  # COO -> CSR conversion sums duplicate cells
        (values, (rows, columns)), shape=(len(member_ids), len(item_ids)), dtype=np.float64
    )
    return summed.astype(np.float32)


def _cell_contributions(
    interactions: pl.DataFrame,
    weights: EventWeights,
    half_life_days: float | None,
    reference_time: datetime | None,
) -> np.ndarray:
    """One float64 value per row: its event weight times its time decay."""
    decay = _decay_factors(interactions, half_life_days, reference_time)
    event_weight = interactions.select(
        pl.col(EVENT).replace_strict(weights.by_event(), default=None, return_dtype=pl.Float64)
    ).to_series()
    if event_weight.null_count():
        _raise_unknown_events(interactions)
    return event_weight.to_numpy() * decay


def _decay_factors(
    interactions: pl.DataFrame, half_life_days: float | None, reference_time: datetime | None
) -> np.ndarray | float:
    """``0.5 ** (age_days / half_life_days)`` per row, or 1 when decay is off."""
    if half_life_days is None:
        return 1.0
    if not (math.isfinite(half_life_days) and half_life_days > 0):
        raise ConfigError(f"half_life_days must be a positive number of days, got {half_life_days}")
    latest = interactions.get_column(TIMESTAMP).max()
    reference = reference_time if reference_time is not None else latest
    if reference is None:  # no rows, nothing to decay
        return 1.0
    age_days = interactions.select(
        days_before(reference, TIMESTAMP).clip(lower_bound=0.0)  # type: ignore[arg-type]
    ).to_series()
    return np.power(0.5, age_days.to_numpy() / half_life_days)


def _raise_unknown_events(interactions: pl.DataFrame) -> None:
    events = interactions.get_column(EVENT)
    unknown = events.filter(~events.is_in(EVENTS).fill_null(False)).unique().head(5).to_list()
    raise DataError(
        f"interactions contain events outside {list(EVENTS)}: {unknown}; "
        "validate the interactions (or map the event values) before building a matrix"
    )
