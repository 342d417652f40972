"""The model bundle: the one directory a training run hands to serving (DESIGN section 4).

Training writes everything serving needs to answer requests into one directory; serving loads
it from a path, checks every checksum and swaps it in, or refuses it and keeps the old one.
Nothing is pickled, so a bundle is safe to load from anywhere, and large arrays are plain
``.npy`` files that every worker memory-maps (one copy in the page cache, not one per worker).

Layout (paths relative to the bundle directory)::

    manifest.json               written last: format_version, created_at, data_end (the last
                                event the bundle learned from; live history starts after it),
                                data_fingerprint,
                                chosen, models {name: {class, params}}, indexes {name: {kind,
                                metric}}, extra_files, n_members, n_items, segment_names,
                                metrics, params, files {relative path: sha256}
    ids/members.npy             external member ids; the position is the internal index
    ids/items.npy               external item ids; the position is the internal index
    models/<name>/              Recommender.save: params.json and the model's .npy/.npz arrays
    indexes/<name>/             ItemIndex.save: index.faiss and index.json
    histories/data.npy          members x items CSR of the weighted training interactions
    histories/indices.npy         (what models score and fold in from), as three arrays so
    histories/indptr.npy          that they can be memory-mapped (an .npz cannot)
    purchases/{data,indices,indptr}.npy
                                members x items indicator of training purchases (for
                                "exclude purchased")
    popularity.npy              one score per item (cold-start answers)
    segments/popularity.npy     segments x items (optional)
    segments/members.npy        int32 segment code per member, -1 when unknown (optional)
    catalog.parquet             item_id and the filter fields; row i is item i (optional)
    lists/{items,scores,from_model}.npy
                                every member's top ``depth`` items by one model, computed
                                after the rest (:func:`add_member_lists`; optional)
    <name>                      extra files copied in as they are, at the top level:
                                metrics.json, report.html, rules.parquet, ...

A reader never sees a half-written bundle: it is written into a hidden sibling directory and
renamed into place; an existing bundle at the same path is renamed aside first and deleted
after. ``manifest.json`` is written last, so a directory without one is never a bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.errors import RecsysError
from features.ids import IdMap
from training.index import ItemIndex
from training.models.base import Recommender

__all__ = [
    "FORMAT_VERSION",
    "METRICS_FILE",
    "REPORT_FILE",
    "RULES_FILE",
    "ArtifactError",
    "MemberLists",
    "ModelArtifact",
    "UnknownModelError",
    "add_member_lists",
    "data_fingerprint",
    "load_artifact",
    "write_artifact",
]

FORMAT_VERSION = 1

MANIFEST = "manifest.json"
MEMBER_IDS = "ids/members.npy"
ITEM_IDS = "ids/items.npy"
MODELS_DIR = "models"
INDEXES_DIR = "indexes"
HISTORIES_DIR = "histories"
PURCHASES_DIR = "purchases"
HISTORY_PARTS = ("data", "indices", "indptr")
POPULARITY = "popularity.npy"
SEGMENT_POPULARITY = "segments/popularity.npy"
MEMBER_SEGMENTS = "segments/members.npy"
CATALOG = "catalog.parquet"
LISTS_DIR = "lists"
#: The extra files ``recsys train`` adds (training.publish) and serving reads.
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
RULES_FILE = "rules.parquet"
LIST_PARTS = ("items", "scores", "from_model")

#: Catalog fields that serving filters or displays by; other catalog columns (descriptions,
#: tags) only matter to training and stay out of the bundle.
CATALOG_FIELDS = (
    col.TITLE, col.CATEGORY, col.BRAND, col.PRICE, col.AVAILABLE, col.REPEATABLE,
)  # fmt: skip

#: Top-level names the bundle itself uses; extra files may not take them.
_RESERVED_TOP_LEVEL = frozenset(
    {MANIFEST, POPULARITY, CATALOG, "ids", MODELS_DIR, INDEXES_DIR, HISTORIES_DIR,
     PURCHASES_DIR, "segments", LISTS_DIR}
)  # fmt: skip

#: Model, index and extra file names become path components, so they must be plain names.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_FINGERPRINT_ROWS_PER_CHUNK = 1 << 20

#: What reading a damaged bundle raises from NumPy, FAISS (RuntimeError), Polars or a manifest
#: with missing keys or wrong types; translated to :class:`BundleError` at one boundary.
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, RuntimeError, pl.exceptions.PolarsError)


class ArtifactError(RecsysError):
    """A bundle cannot be written or loaded as it is; a bad bundle is refused whole."""


class UnknownModelError(ArtifactError, KeyError):
    """A model was asked for by a name the bundle does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class MemberLists:
    """Every member's best ``depth`` items by ``model``, worked out once when the bundle is
    written, so that serving answers a member the bundle knows with one row read instead of a
    pass over the catalog (the way Gorse caches its offline recommendations).

    A row is exactly what :class:`training.recommend.BundleRecommender` answers for the member
    with no filter but "exclude purchased" and no events since: ``items`` (int32 internal
    indices, -1 where the catalog ran out) and ``scores`` (float32), best first; the first
    ``from_model[m]`` items come from the model and the rest complete the list from
    popularity. A prefix of a row is the answer for a shorter list.
    """

    model: str
    items: np.ndarray
    scores: np.ndarray
    from_model: np.ndarray

    @property
    def depth(self) -> int:
        return int(self.items.shape[1])


@dataclass(frozen=True)
class ModelArtifact:
    """A loaded bundle: everything serving answers from, indexed by the bundle's id maps."""

    path: Path
    manifest: Mapping[str, Any]
    member_ids: IdMap
    item_ids: IdMap
    models: Mapping[str, Recommender]
    histories: sp.csr_matrix
    purchases: sp.csr_matrix
    popularity: np.ndarray
    segment_names: tuple[str, ...]
    segment_popularity: np.ndarray | None
    member_segments: np.ndarray | None
    catalog: pl.DataFrame | None
    indexes: Mapping[str, ItemIndex]
    extra_files: Mapping[str, Path]
    lists: MemberLists | None = None

    @property
    def chosen(self) -> str:
        """Name of the model that answers when a request names none."""
        return str(self.manifest["chosen"])

    @property
    def default_model(self) -> Recommender:
        return self.models[self.chosen]

    @property
    def created_at(self) -> datetime:
        """When the bundle was written (aware, UTC)."""
        return _utc_moment(str(self.manifest["created_at"]))

    @property
    def data_end(self) -> datetime | None:
        """The time of the last event the bundle learned from (aware, UTC); None for bundles
        written before the manifest recorded it."""
        stamp = self.manifest.get("data_end")
        return _utc_moment(str(stamp)) if stamp else None

    def model(self, name: str) -> Recommender:
        """The model called ``name``; an unknown name lists the ones there are."""
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(
                f"bundle {self.path} has no model {name!r}; available: {sorted(self.models)}"
            ) from None


# -- fingerprint -------------------------------------------------------------------------------


def data_fingerprint(frame: pl.DataFrame) -> str:
    """A sha256 hex digest of ``frame``'s column names and values, stable across Polars versions.

    It says whether two bundles were trained on the same interactions. ``DataFrame.hash_rows``
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
    for start in range(0, len(column), _FINGERPRINT_ROWS_PER_CHUNK):
        chunk = column.slice(start, _FINGERPRINT_ROWS_PER_CHUNK)
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


# -- writing -----------------------------------------------------------------------------------


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
) -> Path:
    """Write a complete bundle to ``out_dir`` atomically and return ``out_dir``.

    ``histories`` (weighted interactions) and ``purchases`` (an indicator) are members x
    items; ``popularity`` has one value per item;
    ``segment_popularity`` is ``len(segment_names)`` x items; ``member_segments`` holds one
    segment code (or -1) per member; ``catalog`` is aligned to ``item_ids`` by ``item_id``
    (catalog items without an index are dropped, indexed items without a row get nulls).
    ``extra_files`` maps a plain file name in the bundle to the file copied there.
    ``data_end`` is the time of the last event the bundle learned from (naive times are UTC):
    serving counts a member's events that occurred after it as live history.
    Inconsistent inputs raise ``ValueError`` before anything is written. A previous bundle at
    ``out_dir`` is replaced only once the new one is complete; if writing fails it stays.
    """
    indexes, extra_files = indexes or {}, extra_files or {}
    n_members, n_items = len(member_ids), len(item_ids)
    _check_names(chosen, models, indexes, extra_files)
    _check_shapes(n_members, n_items, models, indexes, histories, purchases, popularity)
    _check_segments(n_members, n_items, segment_names, segment_popularity, member_segments)
    _refuse_to_replace_non_artifact(out_dir)
    staging = _sibling(out_dir, "writing")
    staging.mkdir(parents=True)
    try:
        member_ids.save(_file(staging, MEMBER_IDS))
        item_ids.save(_file(staging, ITEM_IDS))
        _save_csr(staging / HISTORIES_DIR, histories)
        _save_csr(staging / PURCHASES_DIR, purchases)
        _save_array(staging, POPULARITY, popularity)
        _save_segments(staging, segment_popularity, member_segments)
        if catalog is not None:
            _aligned_catalog(catalog, item_ids).write_parquet(_file(staging, CATALOG))
        _save_components(staging, models, indexes, extra_files)
        manifest = {
            "format_version": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "data_end": _utc_text(data_end) if data_end is not None else None,
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
            "segment_names": list(segment_names),
            "metrics": dict(metrics or {}),
            "params": dict(params or {}),
            "files": _checksums(staging),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_value))
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def add_member_lists(path: Path, lists: MemberLists) -> None:
    """Add precomputed member lists to the complete bundle at ``path``.

    They are computed from the written bundle itself (by the recommender that serving runs),
    hence this second step. Nothing at ``path`` is rewritten: a server may have its arrays
    memory-mapped, and a mapped file rewritten in place can crash that server. Instead a new
    bundle directory is staged beside it (the other files hard-linked, or copied where the file
    system cannot link), the lists and a manifest listing them are written there as new files,
    and the directory is swapped in as :func:`write_bundle` swaps: a reader sees the bundle
    either without the lists or with all of them. Lists already there are replaced.
    """
    manifest = _read_manifest(path)
    n_members = manifest["n_members"]
    _require(lists.model in manifest["models"], f"lists: the bundle has no model {lists.model!r}")
    _require(
        lists.items.shape == lists.scores.shape == (n_members, lists.depth),
        f"lists: items and scores must both be {n_members} members x depth",
    )
    _require(lists.from_model.shape == (n_members,), "lists: from_model needs one count per member")
    arrays = {
        "items": lists.items.astype(np.int32, copy=False),
        "scores": lists.scores.astype(np.float32, copy=False),
        "from_model": lists.from_model.astype(np.int32, copy=False),
    }
    staging = _sibling(path, "lists")
    try:
        _link_all_but(path, staging, replaced=(MANIFEST, LISTS_DIR))
        for part, array in arrays.items():
            _save_array(staging, f"{LISTS_DIR}/{part}.npy", array)
        files = {name: digest for name, digest in manifest["files"].items()
                 if not name.startswith(f"{LISTS_DIR}/")}  # fmt: skip
        files.update(_checksums_under(staging, LISTS_DIR))
        manifest.update(files=files, lists={"model": lists.model, "depth": lists.depth})
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_value))
        _move_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _link_all_but(source: Path, target: Path, *, replaced: Sequence[str]) -> None:
    """``source`` rebuilt at ``target`` from hard links (copies where links fail), without the
    top-level entries in ``replaced``: those are written afresh, and writing through a link
    would rewrite the file the old bundle shares."""

    def left_out(directory: str, names: list[str]) -> set[str]:
        return set(replaced) & set(names) if Path(directory) == source else set()

    shutil.copytree(source, target, ignore=left_out, copy_function=_link_or_copy)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)


def _check_names(
    chosen: str,
    models: Mapping[str, Recommender],
    indexes: Mapping[str, ItemIndex],
    extra_files: Mapping[str, Path],
) -> None:
    """Names become directories and files: a slash or ``..`` would write outside the bundle."""
    _require(chosen in models, f"chosen model {chosen!r} is not among {sorted(models)}")
    for name in [*models, *indexes, *extra_files]:
        _require(_SAFE_NAME.fullmatch(name) is not None, f"{name!r} is not a plain file name")
    for name in extra_files:
        _require(name not in _RESERVED_TOP_LEVEL, f"extra file {name!r} would shadow bundle data")


def _check_shapes(
    n_members: int,
    n_items: int,
    models: Mapping[str, Recommender],
    indexes: Mapping[str, ItemIndex],
    histories: sp.csr_matrix,
    purchases: sp.csr_matrix,
    popularity: np.ndarray,
) -> None:
    """Every per-member and per-item part must be indexed by the bundle's id maps, or serving
    would answer with the wrong items."""
    for name, model in models.items():
        _require(model.n_items == n_items, f"model {name!r} has {model.n_items} items")
    for name, index in indexes.items():
        _require(index.n_items == n_items, f"index {name!r} has {index.n_items} items")
    _require(histories.shape == (n_members, n_items), f"histories are {histories.shape}")
    _require(purchases.shape == (n_members, n_items), f"purchases are {purchases.shape}")
    _require(np.shape(popularity) == (n_items,), f"popularity is {np.shape(popularity)}")


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
        _require(shape == expected, f"segment popularity is {shape}, expected {expected}")
    if member_segments is not None:
        codes = np.asarray(member_segments)
        _require(codes.shape == (n_members,), f"member segments are {codes.shape}")
        in_range = codes.size == 0 or (codes.min() >= -1 and codes.max() < len(segment_names))
        _require(in_range, f"member segment codes must lie in [-1, {len(segment_names)})")


def _require(condition: bool, problem: str) -> None:
    """Raise ``ValueError`` for an inconsistent bundle input; the message says what is wrong
    and the sizes every part must share."""
    if not condition:
        raise ValueError(f"cannot write bundle: {problem} (parts must match the id maps)")


def _refuse_to_replace_non_artifact(out_dir: Path) -> None:
    """Replacing deletes the old directory, so only ever delete a previous bundle."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file()):
        raise ArtifactError(
            f"{out_dir} exists and is not a bundle (no {MANIFEST}); refusing to replace it. "
            "Choose another output directory or remove it."
        )


def _sibling(out_dir: Path, purpose: str) -> Path:
    """A hidden, unique directory next to ``out_dir``: on the same file system, so that moving
    it into place is a rename, not a copy."""
    return out_dir.with_name(f".{out_dir.name}.{purpose}-{uuid.uuid4().hex[:8]}")


def _file(root: Path, relative: str) -> Path:
    """``root / relative`` with its parent directories created."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _save_array(root: Path, relative: str, array: np.ndarray) -> None:
    np.save(_file(root, relative), np.ascontiguousarray(array), allow_pickle=False)


def _save_csr(directory: Path, matrix: sp.csr_matrix) -> None:
    """Save the three CSR arrays so that loading maps them as they are: built from a tuple, as
    :func:`_load_csr` does, to get the index dtype scipy picks there (otherwise it converts,
    i.e. copies); canonical (sorted, no duplicates) so that scipy never fixes the read-only
    arrays in place."""
    csr = sp.csr_matrix(matrix)
    canonical = sp.csr_matrix((csr.data, csr.indices, csr.indptr), shape=csr.shape, copy=True)
    canonical.sum_duplicates()
    for part in HISTORY_PARTS:
        _save_array(directory, f"{part}.npy", getattr(canonical, part))


def _save_segments(
    root: Path, segment_popularity: np.ndarray | None, member_segments: np.ndarray | None
) -> None:
    if segment_popularity is not None:
        _save_array(root, SEGMENT_POPULARITY, segment_popularity)
    if member_segments is not None:
        _save_array(root, MEMBER_SEGMENTS, np.asarray(member_segments, dtype=np.int32))


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
        raise ValueError(f"cannot write bundle: the catalog has no {col.ITEM_ID!r} column")
    if catalog.get_column(col.ITEM_ID).is_duplicated().any():
        raise ValueError("cannot write bundle: the catalog lists an item_id more than once")
    fields = [name for name in CATALOG_FIELDS if name in catalog.columns]
    rows = catalog.select(pl.col(col.ITEM_ID).cast(pl.Utf8), *fields)
    order = pl.DataFrame({col.ITEM_ID: item_ids.external_ids}, schema={col.ITEM_ID: pl.Utf8})
    return order.join(rows, on=col.ITEM_ID, how="left", maintain_order="left")


def _checksums(root: Path) -> dict[str, str]:
    return _checksums_under(root, ".")


def _checksums_under(root: Path, directory: str) -> dict[str, str]:
    """sha256 of every file under ``root / directory``, by path relative to ``root``."""
    return {
        path.relative_to(root).as_posix(): _sha256(path)
        for path in sorted((root / directory).rglob("*"))
        if path.is_file()
    }


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _utc_text(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def _utc_moment(text: str) -> datetime:
    """An ISO-8601 manifest time as an aware UTC datetime (naive times are UTC)."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _json_value(value: Any) -> Any:
    """Let metrics hold NumPy numbers and arrays (``json`` only knows Python's)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the finished bundle to ``out_dir``; a previous one is renamed aside first and
    put back if the swap fails. Between the two renames ``out_dir`` is briefly absent: a
    reader then finds no manifest and refuses, so it keeps what it had."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = _sibling(out_dir, "retired")
    out_dir.rename(retired)
    try:
        staging.rename(out_dir)
    except BaseException:
        retired.rename(out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)


# -- loading -----------------------------------------------------------------------------------


def load_artifact(
    path: Path,
    mmap: bool = True,
    verify: bool = True,
    *,
    model_classes: Mapping[str, type[Recommender]],
) -> ModelArtifact:
    """Load the bundle at ``path``, refusing it whole (:class:`BundleError`) when the manifest is
    missing or of another format version, when (with ``verify``) any file is missing, its
    checksum differs or a file the loader reads is not listed, or when a model's class is not
    in ``model_classes`` (keyed by ``Recommender.name``; passed in so that this module imports
    no concrete model).

    With ``mmap`` the large arrays (histories, popularity, model arrays, the FAISS vectors) are
    memory-mapped read-only, so that every worker process shares one copy.
    """
    manifest = _read_manifest(path)
    try:
        if verify:
            _verify_files(path, manifest["files"], _files_read(path, manifest))
        classes = _model_classes(path, manifest, model_classes)
        return _load_contents(path, manifest, classes, mmap)
    except _UNREADABLE as error:  # a malformed manifest or, unverified, a corrupt file
        raise ArtifactError(
            f"bundle {path} cannot be loaded ({type(error).__name__}: {error}); it is refused"
        ) from error


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise ArtifactError(
            f"{path} has no {MANIFEST}; it is not a bundle and is refused"
        ) from None
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{path / MANIFEST} is unreadable ({error}); bundle refused") from error
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has bundle format version {version!r}; this member-recsys reads version "
            f"{FORMAT_VERSION}, so the bundle is refused. Retrain with this version."
        )
    return manifest


def _verify_files(path: Path, files: Mapping[str, str], read: set[str]) -> None:
    """Every file the loader reads (``read``) must be listed, and every listed file present,
    inside the bundle, and unchanged since writing: a manifest that leaves a file out would
    let a corrupt array through unchecked."""
    unlisted = sorted(read - files.keys())
    if unlisted:
        raise ArtifactError(
            f"{path}: the manifest does not list {', '.join(unlisted)}, which serving reads, so "
            "their checksums cannot be verified; the bundle is refused. Rewrite it with "
            "recsys train."
        )
    for relative, expected in files.items():
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts:
            raise ArtifactError(f"{path}: manifest lists {relative!r} outside the bundle; refused")
        file = path / relative
        if not file.is_file():
            raise ArtifactError(f"{path}: {relative} is missing; the bundle is refused")
        if _sha256(file) != expected:
            raise ArtifactError(
                f"{path}: checksum mismatch in {relative} (changed or corrupt since it was "
                "written); the bundle is refused"
            )


def _files_read(path: Path, manifest: Mapping[str, Any]) -> set[str]:
    """The files :func:`_load_contents` reads for this manifest (relative paths): the fixed
    arrays, the lists and extra files the manifest names, and everything in the directory of
    each model and index it names (their ``load`` decides which files it opens)."""
    read = {MEMBER_IDS, ITEM_IDS, POPULARITY, *manifest["extra_files"]}
    read |= {f"{part_dir}/{part}.npy" for part_dir in (HISTORIES_DIR, PURCHASES_DIR)
             for part in HISTORY_PARTS}  # fmt: skip
    if manifest.get("lists") is not None:
        read |= {f"{LISTS_DIR}/{part}.npy" for part in LIST_PARTS}
    for directory in [
        *(f"{MODELS_DIR}/{name}" for name in manifest["models"]),
        *(f"{INDEXES_DIR}/{name}" for name in manifest["indexes"]),
    ]:
        read |= set(_files_under(path, directory))
    return read


def _files_under(root: Path, directory: str) -> list[str]:
    """Paths (relative to ``root``) of every file under ``root / directory``."""
    return [
        found.relative_to(root).as_posix()
        for found in sorted((root / directory).rglob("*"))
        if found.is_file()
    ]


def _model_classes(
    path: Path, manifest: Mapping[str, Any], registry: Mapping[str, type[Recommender]]
) -> dict[str, type[Recommender]]:
    """The class of each model in the bundle, looked up before any model is loaded."""
    classes = {}
    for name, entry in manifest["models"].items():
        if entry["class"] not in registry:
            raise ArtifactError(
                f"{path}: model {name!r} is a {entry['class']!r}, which this service does not "
                f"know (known: {sorted(registry)}); the bundle is refused"
            )
        classes[name] = registry[entry["class"]]
    return classes


def _load_contents(
    path: Path,
    manifest: Mapping[str, Any],
    classes: Mapping[str, type[Recommender]],
    mmap: bool,
) -> ModelArtifact:
    files = manifest["files"]
    mode = "r" if mmap else None
    member_ids, item_ids = IdMap.load(path / MEMBER_IDS), IdMap.load(path / ITEM_IDS)
    return ModelArtifact(
        path=path,
        manifest=manifest,
        member_ids=member_ids,
        item_ids=item_ids,
        models={name: cls.load(path / MODELS_DIR / name, mmap) for name, cls in classes.items()},
        histories=_load_csr(path / HISTORIES_DIR, (len(member_ids), len(item_ids)), mode),
        purchases=_load_csr(path / PURCHASES_DIR, (len(member_ids), len(item_ids)), mode),
        popularity=np.load(path / POPULARITY, mmap_mode=mode, allow_pickle=False),
        segment_names=tuple(manifest["segment_names"]),
        segment_popularity=_load_optional(path, files, SEGMENT_POPULARITY, mode),
        member_segments=_load_optional(path, files, MEMBER_SEGMENTS, mode),
        catalog=pl.read_parquet(path / CATALOG) if CATALOG in files else None,
        indexes={
            name: ItemIndex.load(path / INDEXES_DIR / name, mmap) for name in manifest["indexes"]
        },
        extra_files={name: path / name for name in manifest["extra_files"]},
        lists=_load_lists(path, manifest.get("lists"), mode),
    )


def _load_lists(
    path: Path, entry: Mapping[str, Any] | None, mode: str | None
) -> MemberLists | None:
    if entry is None:
        return None
    # Plain ndarray views of the maps: a row read from an ``np.memmap`` makes another memmap
    # object (a few microseconds each, on every storefront request).
    parts = {
        part: np.load(path / LISTS_DIR / f"{part}.npy", mmap_mode=mode, allow_pickle=False).view(
            np.ndarray
        )
        for part in LIST_PARTS
    }
    return MemberLists(model=str(entry["model"]), **parts)


def _load_optional(
    path: Path, files: Mapping[str, str], relative: str, mode: str | None
) -> np.ndarray | None:
    """An optional array, present exactly when the manifest lists it."""
    if relative not in files:
        return None
    return np.load(path / relative, mmap_mode=mode, allow_pickle=False)


def _load_csr(directory: Path, shape: tuple[int, int], mode: str | None) -> sp.csr_matrix:
    parts = [
        np.load(directory / f"{part}.npy", mmap_mode=mode, allow_pickle=False)
        for part in HISTORY_PARTS
    ]
    return sp.csr_matrix(tuple(parts), shape=shape, copy=False)
