"""Interaction matrices: event weights, duplicate summing, time decay, id alignment."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from features.columns import EVENT, EVENTS, ITEM_ID, MEMBER_ID, TIMESTAMP
from features.errors import ConfigError, DataError
from features.ids import IdMap
from features.matrices import EventWeights, build_interaction_matrix, ids_from_interactions

DAY = datetime(2024, 1, 1)

Row = tuple[str, str, str, datetime]


def interactions(rows: list[Row]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            MEMBER_ID: pl.Utf8,
            ITEM_ID: pl.Utf8,
            EVENT: pl.Utf8,
            TIMESTAMP: pl.Datetime("us"),
        },
        orient="row",
    )


def ids(*values: str) -> IdMap:
    return IdMap.from_values(values)


def test_event_weights_default_to_doubling_by_intent() -> None:
    assert EventWeights().by_event() == {"view": 1.0, "click": 2.0, "cart": 4.0, "purchase": 8.0}


@pytest.mark.parametrize(
    "weights",
    [{"click": 1.0}, {"cart": 10.0}, {"purchase": 3.0}],
    ids=["click-equals-view", "cart-above-purchase", "purchase-below-cart"],
)
def test_event_weights_must_increase_strictly_with_intent(weights: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="increase strictly"):
        EventWeights(**weights)


@pytest.mark.parametrize("view", [0.0, -1.0, float("nan")])
def test_event_weights_must_be_positive_and_finite(view: float) -> None:
    with pytest.raises(ConfigError, match="above 0"):
        EventWeights(view=view)


def test_matrix_sums_event_weights_of_repeated_cells() -> None:
    frame = interactions(
        [
            ("a", "x", "view", DAY),
            ("a", "x", "view", DAY),
            ("a", "x", "purchase", DAY),
            ("a", "y", "cart", DAY),
            ("b", "y", "click", DAY),
        ]
    )
    matrix = build_interaction_matrix(frame, ids("a", "b"), ids("x", "y"))
    assert isinstance(matrix, sp.csr_matrix)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix.toarray(), [[10.0, 4.0], [0.0, 2.0]])


def test_matrix_uses_custom_event_weights() -> None:
    frame = interactions([("a", "x", "view", DAY), ("a", "x", "purchase", DAY)])
    weights = EventWeights(view=0.5, click=1.0, cart=2.0, purchase=3.0)
    matrix = build_interaction_matrix(frame, ids("a"), ids("x"), weights=weights)
    assert matrix[0, 0] == pytest.approx(3.5)


def test_matrix_places_ids_at_their_map_positions_and_keeps_unused_ids() -> None:
    frame = interactions([("a", "x", "view", DAY)])
    matrix = build_interaction_matrix(frame, ids("z", "a", "q"), ids("w", "x"))
    assert matrix.shape == (3, 2)
    assert matrix.nnz == 1
    assert matrix[1, 1] == 1.0


def test_matrix_drops_rows_whose_member_or_item_is_not_mapped() -> None:
    frame = interactions(
        [("a", "x", "view", DAY), ("stranger", "x", "view", DAY), ("a", "new", "view", DAY)]
    )
    matrix = build_interaction_matrix(frame, ids("a"), ids("x"))
    np.testing.assert_array_equal(matrix.toarray(), [[1.0]])


def test_decay_halves_weight_at_one_half_life() -> None:
    now = DAY + timedelta(days=30)
    frame = interactions(
        [
            ("a", "x", "purchase", now),
            ("a", "y", "purchase", now - timedelta(days=7)),
            ("a", "z", "purchase", now - timedelta(days=14)),
        ]
    )
    matrix = build_interaction_matrix(
        frame, ids("a"), ids("x", "y", "z"), half_life_days=7.0, reference_time=now
    )
    np.testing.assert_allclose(matrix.toarray(), [[8.0, 4.0, 2.0]], rtol=1e-6)


def test_decay_measures_age_from_latest_timestamp_by_default() -> None:
    frame = interactions([("a", "x", "view", DAY), ("a", "y", "view", DAY + timedelta(days=2))])
    matrix = build_interaction_matrix(frame, ids("a"), ids("x", "y"), half_life_days=2.0)
    np.testing.assert_allclose(matrix.toarray(), [[0.5, 1.0]], rtol=1e-6)


def test_decay_gives_events_after_reference_time_full_weight_only() -> None:
    frame = interactions([("a", "x", "cart", DAY + timedelta(days=5))])
    matrix = build_interaction_matrix(
        frame, ids("a"), ids("x"), half_life_days=1.0, reference_time=DAY
    )
    assert matrix[0, 0] == pytest.approx(4.0)


@pytest.mark.parametrize("half_life", [0.0, -3.0, float("inf"), float("nan")])
def test_decay_rejects_half_lives_that_are_not_positive_and_finite(half_life: float) -> None:
    frame = interactions([("a", "x", "view", DAY)])
    with pytest.raises(ConfigError, match="half_life_days"):
        build_interaction_matrix(frame, ids("a"), ids("x"), half_life_days=half_life)


def test_matrix_refuses_events_outside_the_vocabulary() -> None:
    frame = interactions([("a", "x", "wishlist", DAY)])
    with pytest.raises(DataError, match=r"\['wishlist'\]"):
        build_interaction_matrix(frame, ids("a"), ids("x"))


def test_matrix_of_no_interactions_is_all_zero_with_map_shape() -> None:
    matrix = build_interaction_matrix(interactions([]), ids("a", "b"), ids("x"), half_life_days=3)
    assert matrix.shape == (2, 1)
    assert matrix.nnz == 0


def test_ids_from_interactions_lists_ids_in_order_of_first_appearance() -> None:
    frame = interactions(
        [("b", "y", "view", DAY), ("a", "y", "view", DAY), ("b", "x", "view", DAY)]
    )
    members, items = ids_from_interactions(frame)
    assert members.external_ids.tolist() == ["b", "a"]
    assert items.external_ids.tolist() == ["y", "x"]


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["m0", "m1", "m2"]),
        st.sampled_from(["i0", "i1", "i2", "i3"]),
        st.sampled_from(EVENTS),
        st.datetimes(min_value=DAY, max_value=DAY + timedelta(days=30)),
    ),
    max_size=30,
)
fast = settings(max_examples=60, deadline=None)


@fast
@given(
    rows=rows_strategy,
    members=st.lists(st.sampled_from(["m0", "m1", "m2", "m9"]), unique=True),
    items=st.lists(st.sampled_from(["i0", "i1", "i2", "i3", "i9"]), unique=True),
)
def test_matrix_cells_equal_the_summed_weights_of_their_mapped_rows(
    rows: list[Row], members: list[str], items: list[str]
) -> None:
    member_ids, item_ids = IdMap.from_values(members), IdMap.from_values(items)
    matrix = build_interaction_matrix(interactions(rows), member_ids, item_ids)
    expected: defaultdict[tuple[int, int], float] = defaultdict(float)
    weight = EventWeights().by_event()
    for member, item, event, _ in rows:
        if member in member_ids and item in item_ids:
            expected[member_ids.index_of(member), item_ids.index_of(item)] += weight[event]
    assert matrix.shape == (len(members), len(items))
    dense = np.zeros(matrix.shape)
    for cell, value in expected.items():
        dense[cell] = value
    np.testing.assert_allclose(matrix.toarray(), dense)


@fast
@given(
    age_days=st.floats(min_value=0.0, max_value=400.0),
    half_life=st.floats(min_value=0.5, max_value=100.0),
)
def test_decayed_weight_is_half_to_the_power_of_age_in_half_lives(
    age_days: float, half_life: float
) -> None:
    reference = DAY + timedelta(days=500)
    when = reference - timedelta(days=age_days)
    frame = interactions([("a", "x", "purchase", when)])
    matrix = build_interaction_matrix(
        frame, ids("a"), ids("x"), half_life_days=half_life, reference_time=reference
    )
    exact_age = (reference - when) / timedelta(days=1)  # timestamps keep microseconds only
    assert matrix[0, 0] == pytest.approx(8.0 * 0.5 ** (exact_age / half_life), rel=1e-5, abs=1e-30)
