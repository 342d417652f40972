"""Training examples: the first stage's candidates of a label window, labelled by the window.

Rows are (member, candidate item) pairs with the first stage's features; a label is 1 for an
item the member went on to buy in the window (new to them), else 0. Rows come in groups, one
member in one window each, the unit a ranking objective compares within.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from training.models.rerank.first_stage import FirstStage
from training.models.rerank.windows import Window

__all__ = ["Examples", "concatenated", "window_examples"]

#: Score cells (members x items) handled at once while building examples, as in ``recommend``.
_CELLS_PER_BATCH: Final = 1 << 23


@dataclass(frozen=True)
class Examples:
    """Labelled candidate rows; ``groups`` are the row counts of consecutive groups (one member
    in one window each) and ``group_members`` their members."""

    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    group_members: np.ndarray

    def subset(self, keep_group: np.ndarray) -> Examples:
        """The groups where ``keep_group`` is true."""
        keep_row = np.repeat(keep_group, self.groups)
        return Examples(
            self.features[keep_row],
            self.labels[keep_row],
            self.groups[keep_group],
            self.group_members[keep_group],
        )


def window_examples(stage: FirstStage, window: Window) -> Examples:
    """Candidates of the window's members labelled by the window, previously purchased items
    dropped, and members without a positive candidate left out (they carry no ranking signal
    for lambdarank and only dilute a binary objective)."""
    parts = []
    for rows in _batches(len(window.members), stage.n_items):
        members = window.members[rows]
        candidates = stage.candidates(members, window.data.matrix[members])
        member_rows = rows[candidates.rows]
        keep = np.asarray(window.exclude[member_rows, candidates.items]).ravel() == 0
        labels = np.asarray(window.relevant[member_rows, candidates.items]).ravel()[keep]
        groups = np.bincount(candidates.rows[keep], minlength=len(rows))
        parts.append(Examples(candidates.features[keep], labels, groups, members))
    examples = concatenated(parts)
    positive_rows = examples.labels > 0
    group_of_row = np.repeat(np.arange(len(examples.groups)), examples.groups)
    has_positive = np.bincount(group_of_row[positive_rows], minlength=len(examples.groups)) > 0
    return examples.subset(has_positive)


def concatenated(parts: list[Examples]) -> Examples:
    """The examples of several batches or windows, one after the other."""
    return Examples(
        np.concatenate([part.features for part in parts]),
        np.concatenate([part.labels for part in parts]).astype(np.float32),
        np.concatenate([part.groups for part in parts]),
        np.concatenate([part.group_members for part in parts]),
    )


def _batches(n_rows: int, n_items: int) -> Iterator[np.ndarray]:
    """Row positions in batches of about :data:`_CELLS_PER_BATCH` score cells."""
    size = max(1, _CELLS_PER_BATCH // max(n_items, 1))
    for start in range(0, n_rows, size):
        yield np.arange(start, min(start + size, n_rows))
