"""The model artifact: round trip, refusal of tampered or incomplete artifacts, atomic
replacement."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features import columns as col
from tests.model_contract import two_group_interactions, two_group_items
from training.artifact import (
    FORMAT_VERSION,
    ArtifactError,
    MemberLists,
    ModelArtifact,
    UnknownModelError,
    add_member_lists,
    data_fingerprint,
    load_artifact,
    write_artifact,
)
from training.dataset import TrainingData, build_training_data
from training.index import ItemIndex
from training.models.base import Recommender


class TinyModel(Recommender):
    """Scores = item popularity plus the member's own history: one array to save and load."""

    name: ClassVar[str] = "tiny"

    def fit(self, data: TrainingData) -> Self:
        self.n_items = data.n_items
        self.weights = np.asarray(data.matrix.sum(axis=0), dtype=np.float32).ravel()
        return self

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        return self.weights[None, :] + histories.toarray().astype(np.float32)

    def _save_arrays(self, directory: Path) -> None:
        np.save(directory / "weights.npy", self.weights, allow_pickle=False)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        mode = "r" if mmap else None
        self.weights = np.load(directory / "weights.npy", mmap_mode=mode, allow_pickle=False)


class BrokenModel(TinyModel):
    """Fails half-way through saving, like a full disk."""

    name: ClassVar[str] = "broken"

    def _save_arrays(self, directory: Path) -> None:
        raise OSError("disk full")


MODEL_CLASSES: dict[str, type[Recommender]] = {TinyModel.name: TinyModel}
SEGMENTS = ("active", "sleeping")


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return build_training_data(two_group_interactions(), items=two_group_items())


def artifact_inputs(data: TrainingData, **overrides: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    popularity = np.asarray(data.matrix.sum(axis=0), dtype=np.float32).ravel()
    inputs = {
        "models": {"tiny": TinyModel().fit(data)},
        "chosen": "tiny",
        "member_ids": data.member_ids,
        "item_ids": data.item_ids,
        "histories": data.matrix,
        "purchases": (data.matrix > 0).astype(np.float32).tocsr(),
        "popularity": popularity,
        "segment_popularity": np.vstack([popularity, popularity[::-1]]),
        "segment_names": SEGMENTS,
        "member_segments": rng.integers(-1, len(SEGMENTS), data.n_members),
        "catalog": two_group_items().reverse(),
        "indexes": {"tiny": ItemIndex.build(rng.normal(size=(data.n_items, 4)))},
        "metrics": {"ndcg@10": np.float32(0.25)},
        "data_fingerprint": data_fingerprint(data.interactions),
        "params": {"seed": 0},
    }
    return {**inputs, **overrides}


@pytest.fixture
def artifact_dir(data: TrainingData, tmp_path: Path) -> Path:
    return write_artifact(tmp_path / "artifact", **artifact_inputs(data))


def load(path: Path, **options: Any) -> ModelArtifact:
    return load_artifact(path, model_classes=MODEL_CLASSES, **options)


def test_loaded_artifact_equals_what_was_written(data: TrainingData, artifact_dir: Path) -> None:
    inputs = artifact_inputs(data)
    artifact = load(artifact_dir)
    assert artifact.member_ids == data.member_ids and artifact.item_ids == data.item_ids
    assert (artifact.histories != data.matrix).nnz == 0
    np.testing.assert_array_equal(artifact.popularity, inputs["popularity"])
    np.testing.assert_array_equal(artifact.segment_popularity, inputs["segment_popularity"])
    np.testing.assert_array_equal(artifact.member_segments, inputs["member_segments"])
    assert artifact.segment_names == SEGMENTS
    members = np.arange(data.n_members)
    np.testing.assert_array_equal(
        artifact.default_model.score(members, data.matrix),
        inputs["models"]["tiny"].score(members, data.matrix),
    )
    queries = np.eye(4, dtype=np.float32)
    got_index, expected_index = artifact.indexes["tiny"], inputs["indexes"]["tiny"]
    for got, expected in zip(
        got_index.search(queries, 5), expected_index.search(queries, 5), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


def test_catalog_rows_follow_the_internal_item_order(artifact_dir: Path) -> None:
    artifact = load(artifact_dir)
    assert artifact.catalog is not None
    assert (
        artifact.catalog.get_column(col.ITEM_ID).to_list()
        == artifact.item_ids.external_ids.tolist()
    )
    by_item = dict(two_group_items().select(col.ITEM_ID, col.CATEGORY).iter_rows())
    for item, category in artifact.catalog.select(col.ITEM_ID, col.CATEGORY).iter_rows():
        assert category == by_item[item]


def test_manifest_describes_the_run_and_checksums_every_other_file(artifact_dir: Path) -> None:
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    on_disk = {
        path.relative_to(artifact_dir).as_posix()
        for path in artifact_dir.rglob("*")
        if path.is_file() and path.name != "manifest.json"
    }
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["chosen"] == "tiny"
    assert manifest["models"]["tiny"]["class"] == "tiny"
    assert manifest["metrics"] == {"ndcg@10": 0.25}
    assert set(manifest["files"]) == on_disk
    assert {"ids/members.npy", "ids/items.npy", "models/tiny/weights.npy"} <= on_disk


def test_extra_files_are_copied_in_and_listed(data: TrainingData, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    out = write_artifact(
        tmp_path / "b", **artifact_inputs(data, extra_files={"report.html": report})
    )
    assert load(out).extra_files["report.html"].read_text() == "<html></html>"


def backed_by_memmap(array: np.ndarray) -> bool:
    """Whether ``array`` is, or views, a memory map (scipy wraps the arrays it is given)."""
    while array is not None and not isinstance(array, np.memmap):
        array = getattr(array, "base", None)
    return array is not None


def test_large_arrays_are_memory_mapped(artifact_dir: Path) -> None:
    artifact = load(artifact_dir, mmap=True)
    assert isinstance(artifact.popularity, np.memmap)
    assert isinstance(artifact.segment_popularity, np.memmap)
    assert isinstance(artifact.default_model.weights, np.memmap)  # type: ignore[attr-defined]
    histories = artifact.histories
    assert all(backed_by_memmap(part) for part in (histories.data, histories.indices))
    assert not backed_by_memmap(load(artifact_dir, mmap=False).histories.indices)
    assert not isinstance(load(artifact_dir, mmap=False).popularity, np.memmap)


def test_a_changed_byte_in_a_model_array_refuses_the_artifact(artifact_dir: Path) -> None:
    weights = artifact_dir / "models" / "tiny" / "weights.npy"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"checksum mismatch in models/tiny/weights\.npy"):
        load(artifact_dir)
    load(artifact_dir, verify=False)  # an operator can still inspect it on purpose


def test_a_deleted_file_refuses_the_artifact(artifact_dir: Path) -> None:
    (artifact_dir / "popularity.npy").unlink()
    with pytest.raises(ArtifactError, match=r"popularity\.npy is missing; the artifact is refused"):
        load(artifact_dir)


def test_a_directory_without_manifest_is_refused(artifact_dir: Path) -> None:
    (artifact_dir / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"no manifest\.json; it is not a model artifact"):
        load(artifact_dir)


def test_another_format_version_is_refused(artifact_dir: Path) -> None:
    manifest_path = artifact_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ArtifactError, match="format version 2"):
        load(artifact_dir)


def test_a_model_class_missing_from_the_registry_refuses_the_artifact(artifact_dir: Path) -> None:
    with pytest.raises(ArtifactError, match=r"'tiny', which this service does not know"):
        load_artifact(artifact_dir, model_classes={})


def test_asking_for_an_unknown_model_lists_the_available_ones(artifact_dir: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"no model 'als'; available: \['tiny'\]"):
        load(artifact_dir).model("als")


def test_a_failed_write_leaves_the_previous_artifact_intact(
    data: TrainingData, artifact_dir: Path
) -> None:
    before = (artifact_dir / "manifest.json").read_text()
    models = {"tiny": TinyModel().fit(data), "broken": BrokenModel().fit(data)}
    with pytest.raises(OSError, match="disk full"):
        write_artifact(artifact_dir, **artifact_inputs(data, models=models))
    assert (artifact_dir / "manifest.json").read_text() == before
    assert load(artifact_dir).models.keys() == {"tiny"}
    assert [path.name for path in artifact_dir.parent.iterdir()] == ["artifact"]


def test_rewriting_replaces_the_previous_artifact(data: TrainingData, artifact_dir: Path) -> None:
    write_artifact(artifact_dir, **artifact_inputs(data, params={"seed": 1}))
    assert load(artifact_dir).manifest["params"] == {"seed": 1}
    assert [path.name for path in artifact_dir.parent.iterdir()] == ["artifact"]


def test_a_directory_that_is_not_an_artifact_is_never_replaced(
    data: TrainingData, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="is not a model artifact"):
        write_artifact(tmp_path, **artifact_inputs(data))
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_inconsistent_inputs_are_refused_before_writing(data: TrainingData, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="popularity is"):
        write_artifact(tmp_path / "b", **artifact_inputs(data, popularity=np.zeros(3)))
    with pytest.raises(ValueError, match="chosen model 'als'"):
        write_artifact(tmp_path / "b", **artifact_inputs(data, chosen="als"))
    assert not any(tmp_path.iterdir())


def test_fingerprint_depends_on_values_not_column_order() -> None:
    frame = two_group_interactions()
    fingerprint = data_fingerprint(frame)
    assert data_fingerprint(frame.select(reversed(frame.columns))) == fingerprint
    assert data_fingerprint(frame.with_columns(pl.col(col.QUANTITY) * 2)) != fingerprint
    assert data_fingerprint(frame.head(len(frame) - 1)) != fingerprint


def test_fingerprint_tells_apart_text_that_only_differs_in_where_values_split() -> None:
    first = pl.DataFrame({col.ITEM_ID: ["ab", "c"]})
    second = pl.DataFrame({col.ITEM_ID: ["a", "bc"]})
    assert data_fingerprint(first) != data_fingerprint(second)


def test_extra_file_may_not_shadow_artifact_data(data: TrainingData, tmp_path: Path) -> None:
    fake = tmp_path / "popularity.npy"
    fake.write_text("not an array")
    with pytest.raises(ValueError, match="would shadow artifact data"):
        write_artifact(
            tmp_path / "b", **artifact_inputs(data, extra_files={"popularity.npy": fake})
        )


def member_lists(data: TrainingData, depth: int = 3) -> MemberLists:
    rng = np.random.default_rng(1)
    return MemberLists(
        model="tiny",
        items=rng.integers(0, data.n_items, (data.n_members, depth)).astype(np.int32),
        scores=-np.sort(rng.random((data.n_members, depth)), axis=1).astype(np.float32),
        from_model=np.full(data.n_members, depth, dtype=np.int32),
    )


def test_added_member_lists_load_memory_mapped_and_checksummed(
    data: TrainingData, artifact_dir: Path
) -> None:
    lists = member_lists(data)
    add_member_lists(artifact_dir, lists)
    loaded = load(artifact_dir).lists
    assert loaded is not None and loaded.model == "tiny" and loaded.depth == 3
    np.testing.assert_array_equal(loaded.items, lists.items)
    np.testing.assert_array_equal(loaded.scores, lists.scores)
    assert backed_by_memmap(loaded.items)
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    assert manifest["lists"] == {"model": "tiny", "depth": 3}
    assert {"lists/items.npy", "lists/scores.npy", "lists/from_model.npy"} <= set(manifest["files"])
    raw = bytearray((artifact_dir / "lists" / "items.npy").read_bytes())
    raw[-1] ^= 0xFF
    (artifact_dir / "lists" / "items.npy").write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"checksum mismatch in lists/items\.npy"):
        load(artifact_dir)


def test_member_lists_are_replaced_whole(data: TrainingData, artifact_dir: Path) -> None:
    add_member_lists(artifact_dir, member_lists(data, depth=5))
    add_member_lists(artifact_dir, member_lists(data, depth=2))
    loaded = load(artifact_dir).lists
    assert loaded is not None and loaded.depth == 2
    assert not list(artifact_dir.glob(".manifest.json.*"))  # the staged manifest was renamed


def test_an_artifact_without_lists_loads_none(artifact_dir: Path) -> None:
    assert load(artifact_dir).lists is None


def test_member_lists_that_do_not_fit_the_artifact_are_refused(
    data: TrainingData, artifact_dir: Path
) -> None:
    short = member_lists(data)
    with pytest.raises(ValueError, match="no model 'ghost'"):
        add_member_lists(artifact_dir, replace(short, model="ghost"))
    with pytest.raises(ValueError, match="members x depth"):
        add_member_lists(artifact_dir, replace(short, items=short.items[1:]))
    with pytest.raises(ValueError, match="one count per member"):
        add_member_lists(artifact_dir, replace(short, from_model=short.from_model[1:]))
    assert load(artifact_dir).lists is None
