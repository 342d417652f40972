"""``recsys evaluate``: score a trained model artifact on any test file (a published protocol).

The artifact carries what the protocol needs from training: the weighted histories the models
score from and the purchases that are excluded and that make a test purchase "not new".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from features import columns as col
from training.artifact import ModelArtifact
from training.dataset import TrainingData
from training.evaluate import EvaluationTask, evaluate_model
from training.models.base import popularity_tie_breaker

__all__ = ["evaluate_artifact", "seen_by_artifact", "training_view"]


def training_view(artifact: ModelArtifact) -> TrainingData:
    """The artifact's training side as :class:`TrainingData` (purchases as the interactions)."""
    purchases = artifact.purchases.tocoo()
    interactions = pl.DataFrame(
        {
            col.MEMBER_ID: artifact.member_ids.external_ids[purchases.row],
            col.ITEM_ID: artifact.item_ids.external_ids[purchases.col],
            col.EVENT: np.full(purchases.nnz, col.PURCHASE),
        }
    )
    return TrainingData(
        matrix=artifact.histories,
        member_ids=artifact.member_ids,
        item_ids=artifact.item_ids,
        interactions=interactions,
        reference_time=None,
        member_segments=artifact.member_segments,
        segment_names=artifact.segment_names,
    )


def evaluate_artifact(
    artifact: ModelArtifact,
    test: pl.DataFrame,
    models: Sequence[str] | None = None,
    relevant_events: Sequence[str] = (col.PURCHASE,),
    new_items_only: bool = True,
    max_members: int | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of each of the artifact's models (default: all) on ``test``."""
    task = EvaluationTask.from_split(
        training_view(artifact),
        test,
        relevant_events=relevant_events,
        new_items_only=new_items_only,
        max_members=max_members,
        tie_breaker=popularity_tie_breaker(artifact.popularity),
    )
    names = list(models) if models else list(artifact.models)
    return {name: evaluate_model(artifact.model(name), task) for name in names}


def seen_by_artifact(artifact: ModelArtifact, test: pl.DataFrame) -> int:
    """How many ``test`` events occurred no later than the artifact's last training event.

    An artifact refit on all the data has learned from its own test period: scored on it, every
    model looks better than it is. Nonzero means the figures are not a test.
    """
    data_end = artifact.data_end
    if data_end is None or col.TIMESTAMP not in test.columns:
        return 0
    naive_utc = data_end.replace(tzinfo=None)  # as interaction timestamps are stored
    return int((test.get_column(col.TIMESTAMP) <= naive_utc).sum())
