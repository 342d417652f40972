"""What a recommender answers: ranked lists, and the names of what answered them.

:class:`RankedRows` is the step between: each member's row, read from the artifact's
precomputed lists or scored, before it is cut into a list or stacked into arrays.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from training.artifact import MemberLists

__all__ = [
    "DECLARED_MODEL",
    "FALLBACK_MODEL",
    "ItemList",
    "RankedLists",
    "RankedRow",
    "RankedRows",
    "Recommendation",
]

#: The name reported for lists that popularity answered alone (members the artifact lacks).
FALLBACK_MODEL = "popular"

#: The model that answers from declared preferences when the artifact has it: it needs no
#: behaviour, only what the liked items look like.
DECLARED_MODEL = "content"


@dataclass(frozen=True)
class ItemList:
    """A ranked list of items, best first, and what answered it."""

    item_ids: list[str]
    scores: list[float]
    model: str
    #: True when popularity answered instead of the model (nothing known of the member), or
    #: filled the slots the model left empty, or the content model answered from declared
    #: preferences.
    fallback: bool
    #: The artifact's internal indices of ``item_ids`` (callers look items up by them).
    item_indices: list[int] = field(default_factory=list, kw_only=True)


@dataclass(frozen=True)
class Recommendation(ItemList):
    """One member's list."""

    member_id: str = field(kw_only=True)


@dataclass(frozen=True)
class RankedLists:
    """Ranked lists of many members as arrays, one row per member."""

    #: Internal item indices, best first; -1 where the filtered catalog ran out.
    items: np.ndarray
    scores: np.ndarray
    #: The model that answered each row (:data:`FALLBACK_MODEL` for popularity alone).
    models: list[str]
    #: Per row: popularity answered or completed it (see :attr:`ItemList.fallback`).
    fallback: np.ndarray
    #: Per row: the member's internal index (-1: a member the artifact does not know).
    members: np.ndarray
    #: Per row: how many leading items the answering model ranked before popularity completed
    #: the row (0 when popularity or declared preferences answered), so that a list cut from
    #: the row is flagged by what it shows, not by how deep the row went.
    from_model: np.ndarray


class RankedRow(NamedTuple):
    """One member's ranked row: items (-1: none) and scores, best first, the model that
    answered, and how many leading items it ranked (see :attr:`RankedLists.from_model`)."""

    items: np.ndarray
    scores: np.ndarray
    model: str
    from_model: int


@dataclass(frozen=True)
class RankedRows:
    """The members' ranked rows before they are cut into lists or stacked into arrays: the
    row of a ``listed`` member is read from the precomputed ``lists`` at their internal index
    (``indices``), the others' are the rows of ``scored``, in order."""

    depth: int
    indices: np.ndarray
    listed: list[bool]
    lists: MemberLists | None
    scored: RankedLists | None

    def each(self) -> Iterator[RankedRow]:
        """Each member's row, in order; a precomputed one is a row read (no copy), which is
        what a storefront request takes."""
        scored = 0
        for index, listed in zip(self.indices.tolist(), self.listed, strict=True):
            if listed and self.lists is not None:
                lists = self.lists
                yield RankedRow(
                    lists.items[index, : self.depth], lists.scores[index, : self.depth],
                    lists.model, int(lists.from_model[index]),
                )  # fmt: skip
            elif self.scored is not None:
                found = self.scored
                yield RankedRow(
                    found.items[scored], found.scores[scored], found.models[scored],
                    int(found.from_model[scored]),
                )  # fmt: skip
                scored += 1

    def stacked(self) -> RankedLists:
        """Every row as arrays, the precomputed ones gathered in one array operation."""
        if self.scored is None:
            assert self.lists is not None  # rows are read or scored
            return _read(self.lists, self.indices, self.depth)
        if self.lists is None or not any(self.listed):
            return self.scored
        listed = np.array(self.listed, dtype=bool)
        return _merged(listed, _read(self.lists, self.indices[listed], self.depth), self.scored)


def _read(lists: MemberLists, indices: np.ndarray, depth: int) -> RankedLists:
    """The precomputed rows of known members (``indices``), cut to ``depth``."""
    return RankedLists(
        items=lists.items[indices, :depth].astype(np.int64),
        scores=lists.scores[indices, :depth],
        models=[lists.model] * len(indices),
        fallback=lists.from_model[indices] < depth,
        members=indices,
        from_model=np.minimum(lists.from_model[indices], depth).astype(np.int64),
    )


def _merged(listed: np.ndarray, read: RankedLists, scored: RankedLists) -> RankedLists:
    """The rows of ``read`` where ``listed`` and of ``scored`` elsewhere, in members' order."""

    def rows(from_read: np.ndarray, from_scored: np.ndarray) -> np.ndarray:
        merged = np.empty((len(listed), *from_read.shape[1:]), dtype=from_read.dtype)
        merged[listed], merged[~listed] = from_read, from_scored
        return merged

    read_models, scored_models = iter(read.models), iter(scored.models)
    return RankedLists(
        items=rows(read.items, scored.items),
        scores=rows(read.scores, scored.scores),
        models=[next(read_models if done else scored_models) for done in listed.tolist()],
        fallback=rows(read.fallback, scored.fallback),
        members=rows(read.members, scored.members),
        from_model=rows(read.from_model, scored.from_model),
    )
