"""External string ids <-> contiguous internal indices: the one place that owns this mapping.

External ids (member ids, item ids) stay strings at the edges of the system. Inside, models and
matrices use the position of an id in an :class:`IdMap`. A map is immutable; :meth:`IdMap.extend`
returns a new map with unseen ids appended, so an index once given never changes meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from features.errors import DataError


class UnknownIdError(DataError, KeyError):
    """Raised by strict lookups when an external id is not in the map."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class IdMap:
    """An immutable, ordered set of external ids; the internal index of an id is its position."""

    def __init__(self, external_ids: np.ndarray) -> None:
        external = np.asarray(external_ids, dtype=np.str_)
        if external.ndim != 1:
            raise ValueError("IdMap expects a one-dimensional array of ids")
        if len(np.unique(external)) != len(external):
            raise ValueError("IdMap ids must be unique")
        external.setflags(write=False)
        self._external = external

    @classmethod
    def from_values(cls, values: Iterable[str] | pl.Series) -> IdMap:
        """Build a map from ids in order of first appearance (duplicates are collapsed)."""
        series = values if isinstance(values, pl.Series) else pl.Series(list(values), dtype=pl.Utf8)
        unique = series.cast(pl.Utf8).drop_nulls().unique(maintain_order=True)
        if unique.str.contains("\x00", literal=True).any():
            # NumPy's fixed-width strings drop trailing NULs, which would merge distinct ids.
            raise DataError("ids must not contain NUL characters")
        return cls._of_distinct(unique.to_numpy().astype(np.str_))

    @classmethod
    def _of_distinct(cls, external: np.ndarray) -> IdMap:
        """A map over a 1-D string array already known to hold distinct ids.

        Skips the constructor's uniqueness check, which sorts every id (about a second per
        million), for ids that are distinct by construction.
        """
        id_map = cls.__new__(cls)
        external.setflags(write=False)
        id_map._external = external
        return id_map

    @property
    def external_ids(self) -> np.ndarray:
        """The external ids, indexed by internal id (read-only)."""
        return self._external

    @cached_property
    def _index(self) -> dict[str, int]:
        # A plain dict, built once: the request path needs O(1) lookups without pandas.
        return {external: position for position, external in enumerate(self._external.tolist())}

    def __len__(self) -> int:
        return len(self._external)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self._external, other._external)

    def __hash__(self) -> int:
        return hash(self._external.tobytes())

    def __repr__(self) -> str:
        return f"IdMap({len(self)} ids)"

    def index_of(self, external_id: str) -> int:
        """Internal index of one id; raises :class:`UnknownIdError` if it is not mapped."""
        try:
            return self._index[external_id]
        except KeyError:
            raise UnknownIdError(f"unknown id {external_id!r}") from None

    def get(self, external_id: str) -> int | None:
        """Internal index of one id, or ``None`` when it is not mapped."""
        return self._index.get(external_id)

    def to_internal(
        self, external_ids: Sequence[str] | pl.Series, *, strict: bool = True
    ) -> np.ndarray:
        """Map many external ids to internal indices.

        With ``strict=True`` an unknown id raises :class:`UnknownIdError` naming it; otherwise
        unknown ids map to ``-1`` so that callers can filter them in one vectorised step.
        """
        series = (
            external_ids
            if isinstance(external_ids, pl.Series)
            else pl.Series(list(external_ids), dtype=pl.Utf8)
        )
        mapping = pl.DataFrame(
            {"_external": self._external, "_internal": np.arange(len(self), dtype=np.int64)},
            schema={"_external": pl.Utf8, "_internal": pl.Int64},
        )
        joined = (
            pl.DataFrame({"_external": series.cast(pl.Utf8)})
            .join(mapping, on="_external", how="left", maintain_order="left")
            .get_column("_internal")
        )
        if strict and joined.null_count():
            unknown = series.filter(joined.is_null()).head(3).to_list()
            raise UnknownIdError(
                f"{joined.null_count()} unknown id(s), for example {unknown!r}; "
                "ids must be present when the map was built"
            )
        return joined.fill_null(-1).to_numpy().astype(np.int64, copy=False)

    def to_external(self, internal_ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Map internal indices back to external ids."""
        indices = np.asarray(internal_ids, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"internal ids must lie in [0, {len(self)})")
        return self._external[indices]

    def extend(self, external_ids: Iterable[str] | pl.Series) -> IdMap:
        """A new map with the unseen ids appended after the existing ones."""
        candidates = IdMap.from_values(external_ids).external_ids
        unseen = candidates[~np.isin(candidates, self._external)]
        return IdMap(np.concatenate([self._external, unseen]))

    def save(self, path: Path) -> None:
        """Write the map as a ``.npy`` file of unicode strings (no pickle)."""
        np.save(path, self._external, allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> IdMap:
        """Read a map written by :meth:`save`."""
        return cls(np.load(path, allow_pickle=False))
