"""The reranker's settings: candidates, label windows, the LightGBM ranker and the base models."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from training.models.base import ModelParams

__all__ = ["RerankParams"]


class RerankParams(ModelParams):
    """Candidates, label windows, the ranker and the base models.

    ``candidates``: items proposed per candidate source and member. ``validation_days``: length
    of each label window; short windows rank better even for a longer horizon (on Online Retail,
    30-day windows beat 90-day ones on a 90-day validation period), as each window's base models
    then see data closer to what serving will see. ``windows``/``window_step_days``: how many
    label windows, each that many days before the previous one (more labelled groups; windows
    may overlap). ``recent_days``: what
    counts as a member's recent interest, back from their own last event. The ranker: LightGBM
    ``objective`` with up to ``trees`` trees early-stopped after ``early_stopping_rounds``
    rounds without gain on the ``holdout_share`` of members kept out of training. Base models
    default to the settings that are good on Online Retail (EASE λ=500, ALS 64 factors,
    BM25 item-kNN 100 neighbours, 30-day popularity). ``threads``: CPU threads of LightGBM and
    of the base models' linear algebra during fit (0: all cores); 1 by default because on a
    shared 2-core machine thread contention made the Online Retail ranker 4x slower (47s
    against 13s) and EASE's inverse 2-8x slower; results do not depend on it.
    """

    candidates: int = Field(default=100, ge=1)
    validation_days: int = Field(default=30, ge=1)
    windows: int = Field(default=3, ge=1)
    window_step_days: int = Field(default=30, ge=1)
    recent_days: float = Field(default=14.0, gt=0)
    objective: Literal["lambdarank", "binary"] = "binary"
    trees: int = Field(default=800, ge=1)
    learning_rate: float = Field(default=0.03, gt=0)
    leaves: int = Field(default=7, ge=2)
    min_child_samples: int = Field(default=100, ge=1)
    l2_regularization: float = Field(default=1.0, ge=0)
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    early_stopping_rounds: int = Field(default=100, ge=1)
    holdout_share: float = Field(default=0.2, ge=0, lt=1)
    ease_l2: float = Field(default=500.0, gt=0)
    als_factors: int = Field(default=64, ge=1)
    als_regularization: float = Field(default=0.05, ge=0)
    als_iterations: int = Field(default=15, ge=1)
    knn_neighbors: int = Field(default=100, ge=1)
    popular_days: float = Field(default=30.0, gt=0)
    threads: int = Field(default=1, ge=0)
    seed: int = 42
