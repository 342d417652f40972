"""Checks on a frame's shape that every ``features`` and ``training`` function runs first.

A missing column otherwise surfaces deep inside a polars expression as an error that names
neither the input nor the fix; checking up front, in one place, gives the same message everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from features.errors import MissingColumnError

__all__ = ["require_columns"]


def require_columns(frame: pl.DataFrame, columns: Iterable[str], what: str) -> None:
    """Fail early, naming every missing column, instead of deep inside a polars expression."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise MissingColumnError(
            f"{what} lack column(s) {missing}; present are {frame.columns}. "
            "Validate the input first or map the columns with --columns."
        )
