"""Label windows: periods carved from the end of the training data that a ranker learns from.

``windows`` windows of ``validation_days`` days, each ``window_step_days`` earlier than the last.
Per window the first stage is fit on the interactions *before* the window, exactly as it will be
fit on all the data for serving, and the window says what came next. A relevant item is one the
member purchases in the window and had not purchased before (the evaluation protocol's
"relevant"); items purchased before are excluded, since they are never recommended. Members
without history before the window or without any relevant item carry no ranking signal and are
left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from training.dataset import TrainingData, history_matrix
from training.models.base import ModelFitError
from training.models.rerank.params import RerankParams
from training.models.rerank.statistics import binary, reference_time

__all__ = ["Window", "label_windows"]


@dataclass(frozen=True)
class Window:
    """One label window: the data before it, and for the members evaluated in it (history
    before the window, at least one relevant item) their relevant and excluded items."""

    data: TrainingData
    members: np.ndarray
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix


def label_windows(data: TrainingData, params: RerankParams) -> list[Window]:
    """The usable windows, latest first; a window with nothing to learn from is skipped."""
    reference = reference_time(data)
    first = data.interactions.get_column(col.TIMESTAMP).min()
    windows = []
    for step in range(params.windows):
        start = reference - timedelta(days=params.validation_days + step * params.window_step_days)
        if start <= first:
            break
        window = _label_window(data, start, start + timedelta(days=params.validation_days))
        if len(window.members):
            windows.append(window)
    if not windows:
        raise ModelFitError(
            f"rerank found no member with history before and a new purchase within a "
            f"{params.validation_days}-day label window; lower validation_days"
        )
    return windows


def _label_window(data: TrainingData, start: datetime, end: datetime) -> Window:
    """The window from ``start`` to ``end`` (both included), its past ending just before it."""
    timestamps = pl.col(col.TIMESTAMP)
    before = data.interactions.filter(timestamps < start)
    during = data.interactions.filter(timestamps.is_between(start, end, closed="both"))
    window_data = TrainingData(
        matrix=history_matrix(before, data.member_ids, data.item_ids),
        member_ids=data.member_ids,
        item_ids=data.item_ids,
        interactions=before,
        reference_time=start,
    )
    purchased = _pair_matrix(before.filter(pl.col(col.EVENT) == col.PURCHASE), data)
    bought = _pair_matrix(during.filter(pl.col(col.EVENT) == col.PURCHASE), data)
    relevant = bought - bought.multiply(purchased)
    relevant.eliminate_zeros()
    has_history = np.diff(window_data.matrix.indptr) > 0
    members = np.flatnonzero(has_history & (np.diff(relevant.indptr) > 0))
    return Window(window_data, members, relevant[members], purchased[members])


def _pair_matrix(interactions: pl.DataFrame, data: TrainingData) -> sp.csr_matrix:
    """Binary members x items over the full data's maps: which pairs the rows hold."""
    return binary(history_matrix(interactions, data.member_ids, data.item_ids))
