from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.errors import DataError
from features.ids import IdMap, UnknownIdError

ids = st.lists(
    st.text(
        st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
        min_size=1,
        max_size=12,
    ),
    max_size=50,
)


@given(ids)
def test_round_trip_external_to_internal_and_back(values: list[str]) -> None:
    id_map = IdMap.from_values(values)
    internal = id_map.to_internal(values)
    assert id_map.to_external(internal).tolist() == values


@given(ids)
def test_internal_ids_are_contiguous_in_first_seen_order(values: list[str]) -> None:
    id_map = IdMap.from_values(values)
    first_seen = list(dict.fromkeys(values))
    assert id_map.external_ids.tolist() == first_seen
    assert [id_map.index_of(v) for v in first_seen] == list(range(len(first_seen)))


@given(ids, ids)
def test_extend_appends_unseen_ids_and_keeps_existing_indices(
    old: list[str], new: list[str]
) -> None:
    id_map = IdMap.from_values(old)
    extended = id_map.extend(new)
    assert extended.external_ids[: len(id_map)].tolist() == id_map.external_ids.tolist()
    assert set(extended.external_ids.tolist()) == set(old) | set(new)
    assert len(extended) == len(set(old) | set(new))


def test_strict_lookup_names_the_unknown_id() -> None:
    id_map = IdMap.from_values(["a", "b"])
    with pytest.raises(UnknownIdError, match="'zz'"):
        id_map.to_internal(["a", "zz"])
    with pytest.raises(UnknownIdError, match="'zz'"):
        id_map.index_of("zz")


def test_lenient_lookup_marks_unknown_ids_minus_one() -> None:
    id_map = IdMap.from_values(["a", "b"])
    assert id_map.to_internal(["b", "x", "a"], strict=False).tolist() == [1, -1, 0]
    assert id_map.get("x") is None


def test_to_external_rejects_out_of_range_indices() -> None:
    with pytest.raises(IndexError):
        IdMap.from_values(["a"]).to_external([1])


def test_save_and_load_without_pickle(tmp_path: Path) -> None:
    id_map = IdMap.from_values(["m1", "m2", "ü-3"])
    id_map.save(tmp_path / "members.npy")
    assert IdMap.load(tmp_path / "members.npy") == id_map
    assert np.load(tmp_path / "members.npy", allow_pickle=False).dtype.kind == "U"


def test_nul_characters_are_refused_instead_of_silently_merged() -> None:
    with pytest.raises(DataError, match="NUL"):
        IdMap.from_values(["a\x00", "a"])


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        IdMap(np.array(["a", "a"]))
