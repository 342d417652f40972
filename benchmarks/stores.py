"""Trained model artifacts on generated stores, shared by the benchmarks that need one."""

from __future__ import annotations

import time
from pathlib import Path


def trained_artifact(
    work: Path,
    *,
    members: int,
    items: int,
    events: int,
    seed: int,
    models: tuple[str, ...],
    reuse: bool,
) -> tuple[Path, float]:
    """Generate a store under ``work`` and train ``models`` on it (one tuning trial, 5,000
    evaluated members, no MLflow, the last 30 days as test); returns the model artifact and
    the seconds it took (0 when ``reuse`` finds one already there)."""
    from features.synthetic import StoreConfig, generate_store
    from training.config import TuningBudget
    from training.publish import train_generated_store
    from training.train import TrainConfig

    artifact = work / "artifact"
    if reuse and (artifact / "manifest.json").is_file():
        return artifact, 0.0
    started = time.perf_counter()
    store = work / "store"
    generate_store(StoreConfig(members=members, items=items, events=events, seed=seed), store)
    config = TrainConfig(
        models=models, budget=TuningBudget(trials=1, seconds=60), max_eval_members=5_000
    )
    train_generated_store(store, artifact, config, split="last-days:30")
    return artifact, time.perf_counter() - started
