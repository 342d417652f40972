"""``recsys evaluate``: score a trained bundle on any test file (a published protocol).

The bundle carries what the protocol needs from training: the weighted histories the models
score from and the purchases that are excluded and that make a test purchase "not new".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from features import columns as col
from training.bundle import Bundle
from training.dataset import TrainingData
from training.evaluate import EvaluationTask, evaluate_model
from training.models.base import popularity_tie_breaker

__all__ = ["evaluate_bundle", "seen_by_bundle", "training_view"]


def training_view(bundle: Bundle) -> TrainingData:
    """The bundle's training side as :class:`TrainingData` (purchases as the interactions)."""
    purchases = bundle.purchases.tocoo()
    interactions = pl.DataFrame(
        {
            col.MEMBER_ID: bundle.member_ids.external_ids[purchases.row],
            col.ITEM_ID: bundle.item_ids.external_ids[purchases.col],
            col.EVENT: np.full(purchases.nnz, "purchase"),
        }
    )
    return TrainingData(
        matrix=bundle.histories,
        member_ids=bundle.member_ids,
        item_ids=bundle.item_ids,
        interactions=interactions,
        reference_time=None,
        member_segments=bundle.member_segments,
        segment_names=bundle.segment_names,
    )


def evaluate_bundle(
    bundle: Bundle,
    test: pl.DataFrame,
    models: Sequence[str] | None = None,
    relevant_events: Sequence[str] = ("purchase",),
    new_items_only: bool = True,
    max_members: int | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of each of the bundle's models (default: all) on ``test``."""
    task = EvaluationTask.from_split(
        training_view(bundle),
        test,
        relevant_events=relevant_events,
        new_items_only=new_items_only,
        max_members=max_members,
        tie_breaker=popularity_tie_breaker(bundle.popularity),
    )
    names = list(models) if models else list(bundle.models)
    return {name: evaluate_model(bundle.model(name), task) for name in names}


def seen_by_bundle(bundle: Bundle, test: pl.DataFrame) -> int:
    """How many ``test`` events occurred no later than the bundle's last training event.

    A bundle refit on all the data has learned from its own test period: scored on it, every
    model looks better than it is. Nonzero means the figures are not a test.
    """
    data_end = bundle.data_end
    if data_end is None or col.TIMESTAMP not in test.columns:
        return 0
    naive_utc = data_end.replace(tzinfo=None)  # as interaction timestamps are stored
    return int((test.get_column(col.TIMESTAMP) <= naive_utc).sum())
