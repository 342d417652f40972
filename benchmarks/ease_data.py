"""The data each size of ``benchmarks/ease_solve.py`` is solved on: the generated store, the
``n`` items with the most training members, their evaluation task and their Gram matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.splits import parse_split_spec
from features.synthetic import StoreConfig, generate_store
from training.dataset import TrainingData, build_training_data
from training.evaluate import EvaluationTask
from training.models.ease import dense_gram

STORE_SIZE = {"members": 100_000, "items": 26_000, "events": 3_000_000, "seed": 42}
SPLIT = "last-days:30"
MAX_EVALUATED_MEMBERS = 10_000


@dataclass(frozen=True)
class SizeData:
    """A size's training data and evaluation task, built once in the parent."""

    directory: Path
    data: TrainingData
    task: EvaluationTask


def ensure_store(work: Path, n_items: int) -> Path:
    """The generated store a size reads: the main one, or for a size beyond its items one with
    2,000 items to spare (the same members, events and seed)."""
    items = max(STORE_SIZE["items"], n_items + 2_000)
    store = work / ("store" if items == STORE_SIZE["items"] else f"store-{items}-items")
    if not (store / "interactions.parquet").is_file():
        generate_store(StoreConfig(**{**STORE_SIZE, "items": items}), store)
    return store


def prepare_size(store: Path, work: Path, n_items: int, dtypes: set[str]) -> SizeData:
    """The ``n_items`` items with the most training members: their training interactions
    (saved for the fit child), the evaluation task, and the Gram matrix in ``dtypes``."""
    directory = work / f"n{n_items}"
    directory.mkdir(parents=True, exist_ok=True)
    split = parse_split_spec(SPLIT).split(pl.read_parquet(store / "interactions.parquet"))
    kept = (
        split.train.group_by(col.ITEM_ID)
        .agg(pl.col(col.MEMBER_ID).n_unique().alias("members"))
        .sort(["members", col.ITEM_ID], descending=[True, False])
        .head(n_items)
        .get_column(col.ITEM_ID)
    )
    if len(kept) < n_items:
        raise SystemExit(
            f"the store has only {len(kept)} items with training events, not {n_items}"
        )
    train = split.train.filter(pl.col(col.ITEM_ID).is_in(kept.implode()))
    train.write_parquet(directory / "train.parquet")
    data = build_training_data(train)
    task = EvaluationTask.from_split(data, split.test, max_members=MAX_EVALUATED_MEMBERS, seed=42)
    missing = [dtype for dtype in dtypes if not (directory / f"gram_{dtype}.npy").is_file()]
    if missing:
        gram = dense_gram(binary_histories(data.matrix))
        for dtype in missing:
            np.save(directory / f"gram_{dtype}.npy", gram.astype(dtype), allow_pickle=False)
    return SizeData(directory, data, task)


def binary_histories(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """EASE's binary view of the histories, as ``EASERecommender`` prepares it."""
    return sp.csr_matrix(matrix != 0, dtype=np.float32)
