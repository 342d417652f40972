"""The data fingerprint a model artifact records: which interactions it was trained on."""

from __future__ import annotations

import hashlib
from typing import Any

import polars as pl

_ROWS_PER_CHUNK = 1 << 20


def data_fingerprint(frame: pl.DataFrame) -> str:
    """A sha256 hex digest of ``frame``'s column names and values, stable across Polars versions.

    It says whether two artifacts were trained on the same interactions. ``DataFrame.hash_rows``
    is not used because Polars only guarantees it within one version. The digest is
    order-sensitive: the same rows in another order give another fingerprint (training output
    may depend on row order too, and sorting millions of rows only to hash them is not worth
    it). Column order does not matter.
    """
    digest = hashlib.sha256()
    for name in sorted(frame.columns):
        _hash_column(digest, frame.get_column(name))
    return digest.hexdigest()


def _hash_column(digest: Any, column: pl.Series) -> None:
    digest.update(f"{column.name}\x00{len(column)}\x00".encode())
    for start in range(0, len(column), _ROWS_PER_CHUNK):
        chunk = column.slice(start, _ROWS_PER_CHUNK)
        digest.update(chunk.is_null().to_numpy().tobytes())
        digest.update(_value_bytes(chunk))


def _value_bytes(chunk: pl.Series) -> bytes:
    """Canonical bytes of a column's values: UTF-8 with byte lengths (so that no separator can
    be ambiguous) for text, little-endian physical values for numbers, dates and booleans."""
    if chunk.dtype in (pl.Utf8, pl.Categorical) or isinstance(chunk.dtype, pl.Enum):
        text = chunk.cast(pl.Utf8).fill_null("")
        lengths = text.str.len_bytes().to_numpy().astype("<u4")
        return b"text" + lengths.tobytes() + text.str.join("").item().encode()
    if chunk.dtype.is_numeric() or chunk.dtype.is_temporal() or chunk.dtype == pl.Boolean:
        values = chunk.to_physical().fill_null(0).to_numpy()
        little_endian = values.astype(values.dtype.newbyteorder("<"), copy=False)
        return little_endian.dtype.str.encode() + little_endian.tobytes()
    raise TypeError(f"cannot fingerprint column {chunk.name!r} of type {chunk.dtype}")
