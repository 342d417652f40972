"""Writing a model artifact: check the parts, stage them, checksum them, move them into place.

A reader never sees a half-written artifact: it is written into a hidden sibling directory and
renamed into place; an existing artifact at the same path is renamed aside first and deleted
after. ``manifest.json`` is written last, so a directory without one is never an artifact.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.catalog import aligned_catalog
from features.ids import IdMap
from training.artifact.errors import ArtifactError
from training.artifact.layout import (
    CATALOG,
    CATALOG_FIELDS,
    FORMAT_VERSION,
    HISTORIES_DIR,
    HISTORY_PARTS,
    INDEXES_DIR,
    ITEM_IDS,
    MANIFEST,
    MEMBER_IDS,
    MEMBER_SEGMENTS,
    MODELS_DIR,
    POPULARITY,
    PURCHASES_DIR,
    RESERVED_TOP_LEVEL,
    SAFE_NAME,
    SEGMENT_POPULARITY,
)
from training.artifact.manifest import checksums_under, utc_text, write_manifest
from training.index import ItemIndex
from training.models.base import Recommender


def write_artifact(
    out_dir: Path,
    *,
    models: Mapping[str, Recommender],
    chosen: str,
    member_ids: IdMap,
    item_ids: IdMap,
    histories: sp.csr_matrix,
    purchases: sp.csr_matrix,
    popularity: np.ndarray,
    data_fingerprint: str,
    data_end: datetime | None = None,
    segment_popularity: np.ndarray | None = None,
    segment_names: Sequence[str] = (),
    member_segments: np.ndarray | None = None,
    catalog: pl.DataFrame | None = None,
    indexes: Mapping[str, ItemIndex] | None = None,
    extra_files: Mapping[str, Path] | None = None,
    metrics: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    member_key: str | None = None,
) -> Path:
    """Write a complete model artifact to ``out_dir`` atomically and return ``out_dir``.

    ``histories`` (weighted interactions) and ``purchases`` (an indicator) are members x
    items; ``popularity`` has one value per item;
    ``segment_popularity`` is ``len(segment_names)`` x items; ``member_segments`` holds one
    segment code (or -1) per member; ``catalog`` is aligned to ``item_ids`` by ``item_id``
    (catalog items without an index are dropped, indexed items without a row get nulls).
    ``extra_files`` maps a plain file name in the artifact to the file copied there.
    ``data_end`` is the time of the last event the artifact learned from (naive times are UTC):
    serving counts a member's events that occurred after it as live history.
    ``member_key`` is the key fingerprint of pseudonymised member ids (None: the ids are raw),
    recorded as the manifest's ``member_ids`` so that readers refuse a key that does not match.
    Inconsistent inputs raise ``ValueError`` before anything is written. A previous artifact at
    ``out_dir`` is replaced only once the new one is complete; if writing fails it stays.
    """
    indexes, extra_files = indexes or {}, extra_files or {}
    n_members, n_items = len(member_ids), len(item_ids)
    _check_names(chosen, models, indexes, extra_files)
    _check_shapes(n_members, n_items, models, indexes, histories, purchases, popularity)
    _check_segments(n_members, n_items, segment_names, segment_popularity, member_segments)
    _refuse_to_replace_non_artifact(out_dir)
    staging = sibling(out_dir, "writing")
    staging.mkdir(parents=True)
    try:
        member_ids.save(_file(staging, MEMBER_IDS))
        item_ids.save(_file(staging, ITEM_IDS))
        _save_csr(staging / HISTORIES_DIR, histories)
        _save_csr(staging / PURCHASES_DIR, purchases)
        save_array(staging, POPULARITY, popularity)
        _save_segments(staging, segment_popularity, member_segments)
        if catalog is not None:
            _aligned_catalog(catalog, item_ids).write_parquet(_file(staging, CATALOG))
        _save_components(staging, models, indexes, extra_files)
        manifest = {
            "format_version": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "data_end": utc_text(data_end) if data_end is not None else None,
            "data_fingerprint": data_fingerprint,
            "chosen": chosen,
            "models": {
                name: {"class": model.name, "params": model.get_params()}
                for name, model in models.items()
            },
            "indexes": {
                name: {"kind": index.kind, "metric": index.metric}
                for name, index in indexes.items()
            },
            "extra_files": sorted(extra_files),
            "n_members": n_members,
            "n_items": n_items,
            "member_ids": {"pseudonymised": member_key is not None, "key_fingerprint": member_key},
            "segment_names": list(segment_names),
            "metrics": dict(metrics or {}),
            "params": dict(params or {}),
            "files": checksums_under(staging),
        }
        write_manifest(staging, manifest)
        move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def require(condition: bool, problem: str) -> None:
    """Raise ``ValueError`` for an inconsistent artifact input; the message says what is wrong
    and the sizes every part must share."""
    if not condition:
        raise ValueError(f"cannot write model artifact: {problem} (parts must match the id maps)")


def sibling(out_dir: Path, purpose: str) -> Path:
    """A hidden, unique directory next to ``out_dir``: on the same file system, so that moving
    it into place is a rename, not a copy."""
    return out_dir.with_name(f".{out_dir.name}.{purpose}-{uuid.uuid4().hex[:8]}")


def save_array(root: Path, relative: str, array: np.ndarray) -> None:
    np.save(_file(root, relative), np.ascontiguousarray(array), allow_pickle=False)


def move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the finished artifact to ``out_dir``; a previous one is renamed aside first and
    put back if the swap fails. Between the two renames ``out_dir`` is briefly absent: a
    reader then finds no manifest and refuses, so it keeps what it had."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = sibling(out_dir, "retired")
    out_dir.rename(retired)
    try:
        staging.rename(out_dir)
    except BaseException:
        retired.rename(out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _check_names(
    chosen: str,
    models: Mapping[str, Recommender],
    indexes: Mapping[str, ItemIndex],
    extra_files: Mapping[str, Path],
) -> None:
    """Names become directories and files: a slash or ``..`` would write outside the
    artifact."""
    require(chosen in models, f"chosen model {chosen!r} is not among {sorted(models)}")
    for name in [*models, *indexes, *extra_files]:
        require(SAFE_NAME.fullmatch(name) is not None, f"{name!r} is not a plain file name")
    for name in extra_files:
        require(name not in RESERVED_TOP_LEVEL, f"extra file {name!r} would shadow artifact data")


def _check_shapes(
    n_members: int,
    n_items: int,
    models: Mapping[str, Recommender],
    indexes: Mapping[str, ItemIndex],
    histories: sp.csr_matrix,
    purchases: sp.csr_matrix,
    popularity: np.ndarray,
) -> None:
    """Every per-member and per-item part must be indexed by the artifact's id maps, or serving
    would answer with the wrong items."""
    for name, model in models.items():
        require(model.n_items == n_items, f"model {name!r} has {model.n_items} items")
    for name, index in indexes.items():
        require(index.n_items == n_items, f"index {name!r} has {index.n_items} items")
    require(histories.shape == (n_members, n_items), f"histories are {histories.shape}")
    require(purchases.shape == (n_members, n_items), f"purchases are {purchases.shape}")
    require(np.shape(popularity) == (n_items,), f"popularity is {np.shape(popularity)}")


def _check_segments(
    n_members: int,
    n_items: int,
    segment_names: Sequence[str],
    segment_popularity: np.ndarray | None,
    member_segments: np.ndarray | None,
) -> None:
    """Segment codes index ``segment_names`` and the rows of the segment popularity."""
    if segment_popularity is not None:
        expected = (len(segment_names), n_items)
        shape = np.shape(segment_popularity)
        require(shape == expected, f"segment popularity is {shape}, expected {expected}")
    if member_segments is not None:
        codes = np.asarray(member_segments)
        require(codes.shape == (n_members,), f"member segments are {codes.shape}")
        in_range = codes.size == 0 or (codes.min() >= -1 and codes.max() < len(segment_names))
        require(in_range, f"member segment codes must lie in [-1, {len(segment_names)})")


def _refuse_to_replace_non_artifact(out_dir: Path) -> None:
    """Replacing deletes the old directory, so only ever delete a previous artifact."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file()):
        raise ArtifactError(
            f"{out_dir} exists and is not a model artifact (no {MANIFEST}); refusing to replace "
            "it. Choose another output directory or remove it."
        )


def _file(root: Path, relative: str) -> Path:
    """``root / relative`` with its parent directories created."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _save_csr(directory: Path, matrix: sp.csr_matrix) -> None:
    """Save the three CSR arrays so that loading maps them as they are: built from a tuple, as
    :func:`training.artifact.load._load_csr` does, to get the index dtype scipy picks there
    (otherwise it converts, i.e. copies); canonical (sorted, no duplicates) so that scipy never
    fixes the read-only arrays in place."""
    csr = sp.csr_matrix(matrix)
    canonical = sp.csr_matrix((csr.data, csr.indices, csr.indptr), shape=csr.shape, copy=True)
    canonical.sum_duplicates()
    for part in HISTORY_PARTS:
        save_array(directory, f"{part}.npy", getattr(canonical, part))


def _save_segments(
    root: Path, segment_popularity: np.ndarray | None, member_segments: np.ndarray | None
) -> None:
    if segment_popularity is not None:
        save_array(root, SEGMENT_POPULARITY, segment_popularity)
    if member_segments is not None:
        save_array(root, MEMBER_SEGMENTS, np.asarray(member_segments, dtype=np.int32))


def _save_components(
    root: Path,
    models: Mapping[str, Recommender],
    indexes: Mapping[str, ItemIndex],
    extra_files: Mapping[str, Path],
) -> None:
    for name, model in models.items():
        model.save(root / MODELS_DIR / name)
    for name, index in indexes.items():
        index.save(root / INDEXES_DIR / name)
    for name, source in extra_files.items():
        shutil.copyfile(source, _file(root, name))


def _aligned_catalog(catalog: pl.DataFrame, item_ids: IdMap) -> pl.DataFrame:
    """The catalog's filter fields with row i describing internal item i."""
    if col.ITEM_ID not in catalog.columns:
        raise ValueError(f"cannot write model artifact: the catalog has no {col.ITEM_ID!r} column")
    if catalog.get_column(col.ITEM_ID).is_duplicated().any():
        raise ValueError("cannot write model artifact: the catalog lists an item_id more than once")
    return aligned_catalog(catalog, item_ids, CATALOG_FIELDS)
