"""Turn a training outcome into the model artifact that serving and ``recsys export`` load."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from training.artifact import (
    METRICS_FILE,
    REPORT_FILE,
    RULES_FILE,
    add_member_lists,
    data_fingerprint,
    load_artifact,
    write_artifact,
)
from training.buy_again import write_cycle_files
from training.config import DEFAULT_LIST_DEPTH, DEFAULT_SPLIT
from training.dataset import TrainingData, history_matrix
from training.member_files import write_member_files
from training.models import MODEL_CLASSES
from training.models.popular import PopularityRecommender, fallback_popularity
from training.recommend import ArtifactRecommender
from training.report import write_report
from training.roster import ROSTER_FILE, members_without_events
from training.train import TrainConfig, TrainOutcome

__all__ = ["catalog_for_artifact", "train_generated_store", "write_training_artifact"]


def catalog_for_artifact(items: pl.DataFrame | None, interactions: pl.DataFrame) -> pl.DataFrame:
    """The item fields serving filters and shows by.

    With no catalog file, titles and prices carried by the interactions (Online Retail's
    Description and UnitPrice) stand in: the most frequent title and the median price.
    """
    if items is not None:
        return items
    carried = [c for c in (col.TITLE, col.CATEGORY, col.BRAND) if c in interactions.columns]
    aggregations = [pl.col(c).drop_nulls().mode().first().alias(c) for c in carried]
    return interactions.group_by(col.ITEM_ID, maintain_order=True).agg(
        *aggregations, pl.col(col.PRICE).median().alias(col.PRICE)
    )


def _purchase_histories(data: TrainingData) -> sp.csr_matrix:
    """Members x items indicator of training purchases, for "exclude purchased"."""
    purchases = data.interactions.filter(pl.col(col.EVENT) == col.PURCHASE)
    matrix = history_matrix(purchases, data.member_ids, data.item_ids)
    matrix.data[:] = 1.0
    return matrix


def write_training_artifact(
    outcome: TrainOutcome,
    out_dir: Path,
    items: pl.DataFrame | None = None,
    list_depth: int = DEFAULT_LIST_DEPTH,
    members: pl.DataFrame | None = None,
    member_key: str | None = None,
) -> Path:
    """Write the model artifact, with ``metrics.json``, ``report.html``, the dashboard's
    ``kpis.json`` and ``member_profiles.parquet`` (:mod:`training.member_kpis`), the purchase
    cycles (:func:`training.buy_again.write_cycle_files`) (and, with a ``members`` table,
    ``members.parquet``: its members without events, :mod:`training.roster`),
    atomically to ``out_dir``, then add every member's top ``list_depth`` by the chosen model
    (none when 0), computed by the recommender serving runs, from the written artifact, so that
    they are what it would answer. ``member_key``: the key fingerprint of pseudonymised member
    ids (:mod:`features.pseudonyms`; None: raw ids), recorded in the manifest."""
    _write_artifact(outcome, out_dir, items, members, member_key)
    if list_depth > 0:
        artifact = load_artifact(out_dir, verify=False, model_classes=MODEL_CLASSES)
        add_member_lists(out_dir, ArtifactRecommender(artifact).member_lists(list_depth))
    return out_dir


def _write_artifact(
    outcome: TrainOutcome,
    out_dir: Path,
    items: pl.DataFrame | None,
    members: pl.DataFrame | None,
    member_key: str | None,
) -> Path:
    data = outcome.data
    popular = fallback_popularity(
        outcome.data, outcome.metrics["params"].get(PopularityRecommender.name)
    )
    segment_popularity = popular.segment_scores if data.segment_names else None
    catalog = catalog_for_artifact(items, data.interactions)
    with tempfile.TemporaryDirectory(prefix="recsys-report-") as scratch:
        extra_files = write_cycle_files(
            data.interactions, data.member_ids, data.item_ids, catalog, Path(scratch)
        )
        if outcome.rules is not None:
            extra_files[RULES_FILE] = Path(scratch) / RULES_FILE
            outcome.rules.write_parquet(extra_files[RULES_FILE])
        if data.reference_time is not None:
            extra_files.update(
                write_member_files(
                    data.interactions,
                    data.reference_time,
                    Path(scratch),
                    members=members,
                    items=items,
                    config=outcome.member_files,
                    record_failure=lambda *failure: _record_failure(outcome, *failure),
                )
            )
        if members is not None:
            extra_files[ROSTER_FILE] = Path(scratch) / ROSTER_FILE
            members_without_events(members, data).write_parquet(extra_files[ROSTER_FILE])
        # Last, so that they hold every failure, the member files' too.
        extra_files[METRICS_FILE] = Path(scratch) / METRICS_FILE
        extra_files[METRICS_FILE].write_text(json.dumps(outcome.metrics, indent=2, default=float))
        extra_files[REPORT_FILE] = write_report(outcome.metrics, Path(scratch) / REPORT_FILE)
        return write_artifact(
            out_dir,
            models=outcome.models,
            chosen=outcome.metrics["chosen"],
            member_ids=data.member_ids,
            item_ids=data.item_ids,
            histories=data.matrix,
            purchases=_purchase_histories(data),
            popularity=np.asarray(popular.global_scores, dtype=np.float32),
            data_fingerprint=data_fingerprint(data.interactions),
            data_end=data.interactions.get_column(col.TIMESTAMP).max(),  # type: ignore[arg-type]
            segment_popularity=segment_popularity,
            segment_names=data.segment_names if segment_popularity is not None else (),
            member_segments=data.member_segments,
            catalog=catalog,
            indexes=outcome.indexes,
            extra_files=extra_files,
            metrics={
                "target": outcome.metrics.get("target", "new-items"),
                "chosen": outcome.metrics["chosen"],
                "primary_metric": outcome.metrics["primary_metric"],
                "models": outcome.metrics["models"],
                # Which engine fit the models (the Spark engine's master and version); absent
                # for this process's own fits, the default.
                **{key: outcome.metrics[key] for key in ("engine",) if key in outcome.metrics},
            },
            params=outcome.metrics["params"],
            member_key=member_key,
        )


def _record_failure(outcome: TrainOutcome, model: str, stage: str, reason: str) -> None:
    outcome.metrics["failed"].append({"model": model, "stage": stage, "reason": reason})


def train_generated_store(
    store: Path,
    out_dir: Path,
    config: TrainConfig,
    *,
    split: str = DEFAULT_SPLIT,
    list_depth: int = DEFAULT_LIST_DEPTH,
) -> TrainOutcome:
    """Train on a store written by ``recsys generate`` (its interactions, catalog and member
    files) and write the model artifact to ``out_dir``: what benchmarks and tests need of a
    trained artifact, in one call (no MLflow)."""
    from features.splits import parse_split_spec
    from features.synthetic import INTERACTIONS_FILE, ITEMS_FILE, MEMBERS_FILE
    from features.validate import load_interactions, load_items, load_members
    from training.train import run_training

    interactions = load_interactions(store / INTERACTIONS_FILE).frame
    items = load_items(store / ITEMS_FILE).frame
    spec = parse_split_spec(split)
    members = load_members(store / MEMBERS_FILE).frame
    outcome = run_training(spec.split(interactions), spec, config, items=items, members=members)
    write_training_artifact(outcome, out_dir, items, list_depth=list_depth, members=members)
    return outcome
