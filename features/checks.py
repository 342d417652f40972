"""The unit of row validation, shared by the generic checks and the presets' own rules."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

__all__ = ["RowCheck"]


@dataclass(frozen=True)
class RowCheck:
    """One rule: rows where ``fails`` is true are quarantined with ``reason``.

    ``column`` is the contract column the rule is about, so that an error can name it.
    """

    column: str
    reason: str
    fails: pl.Expr
