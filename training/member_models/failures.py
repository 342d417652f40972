"""How a model that could not be fit is recorded: it is reported, never dropped silently.

Scoring goes on with the other models (a baseline always remains), and ``metrics["failed"]``
lists each failure with the step it happened in, so that the analyst sees which rows of the
comparison are missing and why.
"""

from __future__ import annotations

from typing import Any

__all__ = ["failure"]


def failure(model: str, error: BaseException, step: str | None = None) -> dict[str, Any]:
    """The record of a failed fit: the model, the step (when known) and the error's message."""
    record: dict[str, Any] = {"model": model, "reason": f"{type(error).__name__}: {error}"}
    if step is not None:
        record["step"] = step
    return record
