"""Precomputed member lists: every member's best items, added to a written model artifact.

They are computed from the written artifact itself (by the recommender that serving runs),
hence a second step after :func:`training.artifact.write_artifact`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.artifact.layout import LIST_PARTS, LISTS_DIR, MANIFEST
from training.artifact.manifest import checksums_under, read_manifest, write_manifest
from training.artifact.write import move_into_place, require, save_array, sibling


@dataclass(frozen=True)
class MemberLists:
    """Every member's best ``depth`` items by ``model``, worked out once when the artifact is
    written, so that serving answers a member the artifact knows with one row read instead of
    a pass over the catalog (the way Gorse caches its offline recommendations).

    A row is exactly what :class:`training.recommend.ArtifactRecommender` answers for the
    member with no filter but "exclude purchased" and no events since: ``items`` (int32
    internal indices, -1 where the catalog ran out) and ``scores`` (float32), best first; the
    first ``from_model[m]`` items come from the model and the rest complete the list from
    popularity. A prefix of a row is the answer for a shorter list.
    """

    model: str
    items: np.ndarray
    scores: np.ndarray
    from_model: np.ndarray

    @property
    def depth(self) -> int:
        return int(self.items.shape[1])


def add_member_lists(path: Path, lists: MemberLists) -> None:
    """Add precomputed member lists to the complete model artifact at ``path``.

    Nothing at ``path`` is rewritten: a server may have its arrays memory-mapped, and a mapped
    file rewritten in place can crash that server. Instead a new artifact directory is staged
    beside it (the other files hard-linked, or copied where the file system cannot link), the
    lists and a manifest listing them are written there as new files, and the directory is
    swapped in as :func:`training.artifact.write_artifact` swaps: a reader sees the artifact
    either without the lists or with all of them. Lists already there are replaced.
    """
    manifest = read_manifest(path)
    n_members = manifest["n_members"]
    require(lists.model in manifest["models"], f"lists: the artifact has no model {lists.model!r}")
    require(
        lists.items.shape == lists.scores.shape == (n_members, lists.depth),
        f"lists: items and scores must both be {n_members} members x depth",
    )
    require(lists.from_model.shape == (n_members,), "lists: from_model needs one count per member")
    arrays = {
        "items": lists.items.astype(np.int32, copy=False),
        "scores": lists.scores.astype(np.float32, copy=False),
        "from_model": lists.from_model.astype(np.int32, copy=False),
    }
    staging = sibling(path, "lists")
    try:
        _link_all_but(path, staging, replaced=(MANIFEST, LISTS_DIR))
        for part, array in arrays.items():
            save_array(staging, f"{LISTS_DIR}/{part}.npy", array)
        files = {name: digest for name, digest in manifest["files"].items()
                 if not name.startswith(f"{LISTS_DIR}/")}  # fmt: skip
        files.update(checksums_under(staging, LISTS_DIR))
        manifest.update(files=files, lists={"model": lists.model, "depth": lists.depth})
        write_manifest(staging, manifest)
        move_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_lists(path: Path, entry: Mapping[str, Any] | None, mode: str | None) -> MemberLists | None:
    """The lists the manifest's ``lists`` entry names (None: the artifact has none)."""
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


def _link_all_but(source: Path, target: Path, *, replaced: Sequence[str]) -> None:
    """``source`` rebuilt at ``target`` from hard links (copies where links fail), without the
    top-level entries in ``replaced``: those are written afresh, and writing through a link
    would rewrite the file the old artifact shares."""

    def left_out(directory: str, names: list[str]) -> set[str]:
        return set(replaced) & set(names) if Path(directory) == source else set()

    shutil.copytree(source, target, ignore=left_out, copy_function=_link_or_copy)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)
