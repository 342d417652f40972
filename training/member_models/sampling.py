"""Seeded samples of members: the rows a fit learns from, and the validation member split.

Fits learn from at most ``max_fit_members`` members so that their cost stays flat with the size
of the program (200,000 members pin a churn rate to about 0.001, more than any model here can
use); the sample is seeded and kept in row order, so a run is reproducible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_rows", "split_members"]


def fit_rows(size: int, limit: int, seed: int) -> np.ndarray:
    """Row positions to fit on: all, or a seeded sample of ``limit`` in row order."""
    if size <= limit:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, limit, replace=False))


def split_members(size: int, held_out_share: float, seed: int) -> np.ndarray:
    """A seeded mask, True for the rows held out (about ``held_out_share`` of them, at least
    one row on each side when ``size`` >= 2)."""
    held_out = np.random.default_rng(seed).random(size) < held_out_share
    if size >= 2 and (held_out.all() or not held_out.any()):
        held_out[:] = False
        held_out[: max(1, round(size * held_out_share))] = True
    return held_out
