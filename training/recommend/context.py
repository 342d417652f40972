"""What a caller knows of a member beyond the model artifact, folded into the member's rows.

A model scores a member from their history row and must not show their exclusions. For a
member the artifact knows, both rows come from its matrices; a :class:`MemberContext` adds what
happened since (events, purchases) or what the member declared, so that fresh behaviour counts
without retraining. Requests from the API are one member at a time, so rows are read from the
matrices' CSR arrays directly rather than by sparse fancy indexing (which builds a matrix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.artifact import ModelArtifact

__all__ = ["NO_CONTEXT", "MemberContext", "MemberHistory", "row_cells", "rows_matrix"]


@dataclass(frozen=True)
class MemberContext:
    """What a caller knows about one member that the model artifact does not.

    ``items`` and ``weights``: interactions since the artifact was built, as internal item
    indices and event weights (repeats allowed, they add up); they join the member's history
    row, from which ALS folds the member in and item-item and content models score.
    ``purchased``: items bought since; they join the exclusions. ``declared``: the items are
    preferences the member declared (a sign-up form), not behaviour. ``segment``: a segment
    code for a member the artifact does not know (segment popularity).
    """

    items: Sequence[int] = ()
    weights: Sequence[float] = ()
    purchased: Sequence[int] = ()
    segment: int | None = None
    declared: bool = False

    @property
    def adds_nothing(self) -> bool:
        """True when the member's answer is the artifact's alone (a segment only matters to
        members the artifact does not know)."""
        return not len(self.items) and not len(self.purchased) and not self.declared


#: The context of a member the caller knows nothing more of.
NO_CONTEXT = MemberContext()


def rows_matrix(
    rows: Sequence[tuple[np.ndarray, np.ndarray | None]], n_items: int
) -> sp.csr_matrix:
    """A CSR matrix over the catalog from per-row (indices, data); data None means ones.
    Repeated items in a row are summed (a fold-in must see one cell per item)."""
    lengths = np.fromiter((len(items) for items, _ in rows), dtype=np.int64, count=len(rows))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate([items for items, _ in rows]) if rows else np.empty(0, np.int32)
    data = (
        np.concatenate([values for _, values in rows])
        if rows and rows[0][1] is not None
        else np.ones(len(indices), dtype=np.float32)
    )
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_items))
    matrix.sum_duplicates()
    return matrix


def row_cells(indptr: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``indices``, cell) of every stored cell of rows ``indices`` (-1: no row)
    of a CSR structure with row pointers ``indptr``, rows in the order given: what gathers a
    batch's rows from several aligned arrays at once. Read from the pointers alone: scipy's
    fancy row indexing builds a whole matrix, which costs a single-member request more than
    the rest of its answer."""
    known = np.flatnonzero(indices >= 0)
    starts = indptr[indices[known]]
    lengths = indptr[indices[known] + 1] - starts
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(known, lengths), np.repeat(starts, lengths) + offsets


class MemberHistory:
    """Members' history rows and exclusions: the artifact's rows (none for a member it does
    not know, index -1) with each member's context folded in (live history).

    Which purchases a list leaves out is the request's ``exclude_purchased``: True every
    purchase, False none, and None (the default) the artifact's default: every purchase,
    except, with ``bought_again`` (a boolean per item: an artifact trained for the next
    basket), the items members buy again, which stay recommendable after a purchase.
    """

    def __init__(self, artifact: ModelArtifact, bought_again: np.ndarray | None = None) -> None:
        self._histories = artifact.histories
        self._purchases = artifact.purchases
        self._n_items = len(artifact.item_ids)
        self._bought_again = bought_again

    def histories(self, indices: np.ndarray, contexts: Sequence[MemberContext]) -> sp.csr_matrix:
        """The members' history matrix, one row per member, the context's items added."""
        return rows_matrix(
            [
                self._history(index, context)
                for index, context in zip(indices, contexts, strict=True)
            ],
            self._n_items,
        )

    def is_default(self, exclude_purchased: bool | None) -> bool:
        """Whether ``exclude_purchased`` leaves out what the default does (the precomputed
        member lists are the default's answers)."""
        return exclude_purchased is None or (exclude_purchased and self._bought_again is None)

    def excluded(
        self, index: int, context: MemberContext, exclude_purchased: bool | None = None
    ) -> np.ndarray:
        """Item indices never to show this member: purchases in the artifact and since (those
        ``exclude_purchased`` leaves out, see the class docstring)."""
        if exclude_purchased is False:
            return np.empty(0, dtype=np.int64)
        bought, _ = _row(self._purchases, index)
        if len(context.purchased):
            bought = np.union1d(bought, np.asarray(context.purchased, dtype=np.int64))
        return self._kept_out(bought.astype(np.int64), exclude_purchased)

    def excluded_range(self, start: int, stop: int) -> list[np.ndarray]:
        """The default exclusions of members ``start`` to ``stop`` (known, no context), read
        from one slice of the purchases matrix: a whole batch of precomputed lists at once."""
        bought = self._purchases[start:stop]
        rows = np.split(bought.indices.astype(np.int64), bought.indptr[1:-1])
        return [self._kept_out(items, None) for items in rows]

    def _kept_out(self, bought: np.ndarray, exclude_purchased: bool | None) -> np.ndarray:
        if exclude_purchased is None and self._bought_again is not None:
            return bought[~self._bought_again[bought]]
        return bought

    def _history(self, index: int, context: MemberContext) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, weights) of the member's history row plus the context's items."""
        items, weights = _row(self._histories, index)
        if not len(context.items):
            return items, weights
        return (
            np.concatenate([items, np.asarray(context.items, dtype=items.dtype)]),
            np.concatenate([weights, np.asarray(context.weights, dtype=weights.dtype)]),
        )


def _row(matrix: sp.csr_matrix, index: int) -> tuple[np.ndarray, np.ndarray]:
    """A member's row of an artifact matrix as (indices, data); empty for unknown members."""
    if index < 0:
        return matrix.indices[:0], matrix.data[:0]
    cells = slice(matrix.indptr[index], matrix.indptr[index + 1])
    return matrix.indices[cells], matrix.data[cells]
