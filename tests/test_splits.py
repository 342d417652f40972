"""Train/test splitters: known answers on hand-built frames, partition properties on random ones."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from features.columns import EVENT, EVENTS, ITEM_ID, MEMBER_ID, TIMESTAMP
from features.errors import ConfigError, DataError, MissingColumnError
from features.frames import require_columns
from features.splits import (
    LastDaysSplitSpec,
    LeaveLastOutSpec,
    RatioSplitSpec,
    Split,
    TemporalSplitSpec,
    explicit_split,
    leave_last_k_out,
    parse_split_spec,
    ratio_split,
    temporal_split,
)
from features.times import as_naive_utc, days_before

ROW_ID = "row_id"
DAY = datetime(2024, 1, 1)

Row = tuple[str, str, str, datetime]


def interactions(rows: list[Row]) -> pl.DataFrame:
    """Interactions with a ``row_id`` column so that tests can tell rows apart."""
    return pl.DataFrame(
        {
            MEMBER_ID: [row[0] for row in rows],
            ITEM_ID: [row[1] for row in rows],
            EVENT: [row[2] for row in rows],
            TIMESTAMP: [row[3] for row in rows],
            ROW_ID: list(range(len(rows))),
        },
        schema={
            MEMBER_ID: pl.Utf8,
            ITEM_ID: pl.Utf8,
            EVENT: pl.Utf8,
            TIMESTAMP: pl.Datetime("us"),
            ROW_ID: pl.Int64,
        },
    )


def row_ids(frame: pl.DataFrame) -> list[int]:
    return frame.get_column(ROW_ID).to_list()


def assert_partition(split: Split, frame: pl.DataFrame) -> None:
    train, test = set(row_ids(split.train)), set(row_ids(split.test))
    assert not train & test
    assert train | test == set(row_ids(frame))


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["m0", "m1", "m2", "m3"]),
        st.sampled_from(["i0", "i1", "i2", "i3", "i4"]),
        st.sampled_from(EVENTS),
        st.datetimes(min_value=DAY, max_value=DAY + timedelta(days=60)),
    ),
    max_size=40,
)
frames = rows_strategy.map(interactions)
fast = settings(max_examples=60, deadline=None)


# --- helpers ------------------------------------------------------------------------------------


def test_as_naive_utc_converts_aware_datetimes_to_utc_wall_clock() -> None:
    aware = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert as_naive_utc(aware) == datetime(2024, 1, 1, 10)
    assert as_naive_utc(datetime(2024, 1, 1, 12)) == datetime(2024, 1, 1, 12)


def test_days_before_measures_fractional_days_back_from_reference() -> None:
    frame = pl.DataFrame({TIMESTAMP: [DAY, DAY + timedelta(hours=12)]})
    ages = frame.select(days_before(DAY + timedelta(days=1), TIMESTAMP)).to_series().to_list()
    assert ages == [1.0, 0.5]


def test_require_columns_names_every_missing_column() -> None:
    with pytest.raises(MissingColumnError, match=r"\['item_id', 'event'\]"):
        require_columns(pl.DataFrame({MEMBER_ID: ["a"]}), (MEMBER_ID, ITEM_ID, EVENT), "things")


# --- temporal -----------------------------------------------------------------------------------


def test_temporal_split_puts_cutoff_day_in_test() -> None:
    frame = interactions(
        [
            ("a", "x", "view", datetime(2024, 1, 1, 23, 59, 59, 999999)),
            ("a", "y", "view", datetime(2024, 1, 2)),
            ("b", "x", "view", datetime(2024, 1, 2, 8)),
        ]
    )
    split = temporal_split(frame, cutoff=datetime(2024, 1, 2))
    assert row_ids(split.train) == [0]
    assert row_ids(split.test) == [1, 2]


def test_temporal_split_last_days_counts_back_from_latest_timestamp() -> None:
    frame = interactions(
        [
            ("a", "x", "view", datetime(2024, 1, 1, 11, 59)),
            ("a", "y", "view", datetime(2024, 1, 1, 12)),
            ("b", "x", "view", datetime(2024, 1, 3, 12)),
        ]
    )
    split = temporal_split(frame, last_days=2)
    assert row_ids(split.train) == [0]
    assert row_ids(split.test) == [1, 2]


def test_temporal_split_compares_aware_cutoff_in_utc() -> None:
    frame = interactions([("a", "x", "view", datetime(2024, 1, 1, 11))])
    cutoff = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))  # 10:00 UTC
    assert row_ids(temporal_split(frame, cutoff=cutoff).test) == [0]


@pytest.mark.parametrize(("cutoff", "last_days"), [(None, None), (DAY, 3)], ids=["neither", "both"])
def test_temporal_split_requires_exactly_one_of_cutoff_and_last_days(
    cutoff: datetime | None, last_days: int | None
) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        temporal_split(interactions([]), cutoff=cutoff, last_days=last_days)


@pytest.mark.parametrize("last_days", [0, -1, 1.5, True])
def test_temporal_split_rejects_last_days_that_are_not_positive_whole_numbers(
    last_days: int,
) -> None:
    with pytest.raises(ConfigError, match="last_days"):
        temporal_split(interactions([("a", "x", "view", DAY)]), last_days=last_days)


def test_temporal_split_by_last_days_of_empty_table_raises_data_error() -> None:
    with pytest.raises(DataError, match="empty"):
        temporal_split(interactions([]), last_days=7)


@fast
@given(frame=frames, cutoff=st.datetimes(min_value=DAY, max_value=DAY + timedelta(days=60)))
def test_temporal_split_partitions_rows_around_the_cutoff(
    frame: pl.DataFrame, cutoff: datetime
) -> None:
    split = temporal_split(frame, cutoff=cutoff)
    assert_partition(split, frame)
    if split.train.height:
        assert split.train.get_column(TIMESTAMP).max() < cutoff
    if split.test.height:
        assert cutoff <= split.test.get_column(TIMESTAMP).min()


@fast
@given(frame=frames, last_days=st.integers(min_value=1, max_value=70))
def test_temporal_split_by_last_days_keeps_only_the_last_days_in_test(
    frame: pl.DataFrame, last_days: int
) -> None:
    assume(not frame.is_empty())
    split = temporal_split(frame, last_days=last_days)
    cutoff = frame.get_column(TIMESTAMP).max() - timedelta(days=last_days)
    assert_partition(split, frame)
    assert split.test.get_column(TIMESTAMP).min() >= cutoff
    assert split.train.is_empty() or split.train.get_column(TIMESTAMP).max() < cutoff


# --- leave last k out ---------------------------------------------------------------------------


def test_leave_last_k_out_moves_each_members_latest_rows_to_test() -> None:
    frame = interactions(
        [
            ("a", "x", "view", DAY + timedelta(days=3)),
            ("a", "y", "view", DAY + timedelta(days=1)),
            ("b", "x", "view", DAY + timedelta(days=5)),
            ("a", "z", "view", DAY + timedelta(days=2)),
            ("b", "y", "view", DAY + timedelta(days=9)),
            ("b", "z", "view", DAY),
        ]
    )
    split = leave_last_k_out(frame, k=2)
    assert row_ids(split.train) == [1, 5]
    assert row_ids(split.test) == [0, 2, 3, 4]


def test_leave_last_k_out_breaks_timestamp_ties_by_row_order() -> None:
    frame = interactions(
        [("a", "x", "view", DAY), ("a", "y", "view", DAY), ("a", "z", "view", DAY)]
    )
    split = leave_last_k_out(frame, k=1)
    assert row_ids(split.test) == [2]


def test_leave_last_k_out_keeps_members_with_at_most_k_rows_in_train() -> None:
    frame = interactions(
        [("a", "x", "view", DAY), ("a", "y", "view", DAY), ("b", "x", "view", DAY)]
    )
    split = leave_last_k_out(frame, k=2)
    assert row_ids(split.train) == [0, 1, 2]
    assert split.test.is_empty()


@pytest.mark.parametrize("k", [0, -2, 1.0])
def test_leave_last_k_out_rejects_k_below_one(k: int) -> None:
    with pytest.raises(ConfigError, match="k must be"):
        leave_last_k_out(interactions([]), k=k)


@fast
@given(frame=frames, k=st.integers(min_value=1, max_value=4))
def test_leave_last_k_out_tests_the_latest_k_of_each_larger_member(
    frame: pl.DataFrame, k: int
) -> None:
    split = leave_last_k_out(frame, k=k)
    assert_partition(split, frame)
    sizes = dict(frame.group_by(MEMBER_ID).len().iter_rows())
    test_sizes = dict(split.test.group_by(MEMBER_ID).len().iter_rows())
    for member, size in sizes.items():
        assert test_sizes.get(member, 0) == (k if size > k else 0)
    for member, test_rows in split.test.group_by(MEMBER_ID):
        train_rows = split.train.filter(pl.col(MEMBER_ID) == member[0])
        if train_rows.height:
            assert test_rows.get_column(TIMESTAMP).min() >= train_rows.get_column(TIMESTAMP).max()


# --- ratio --------------------------------------------------------------------------------------


def test_ratio_split_sends_rounded_share_of_each_member_to_test() -> None:
    frame = interactions(
        [("a", f"i{n}", "view", DAY) for n in range(5)]
        + [("b", "x", "view", DAY), ("b", "y", "view", DAY), ("c", "x", "view", DAY)]
    )
    split = ratio_split(frame, test_ratio=0.5, seed=3)
    test_sizes = dict(split.test.group_by(MEMBER_ID).len().iter_rows())
    assert test_sizes == {"a": 2, "b": 1}  # round(2.5) == 2 (half to even); c has one row


def test_ratio_split_by_item_stratifies_items() -> None:
    frame = interactions(
        [(f"m{n}", "x", "view", DAY) for n in range(4)] + [("m0", "y", "view", DAY)]
    )
    split = ratio_split(frame, test_ratio=0.25, by="item")
    assert dict(split.test.group_by(ITEM_ID).len().iter_rows()) == {"x": 1}


def test_ratio_split_draws_differ_between_seeds() -> None:
    frame = interactions([("a", f"i{n}", "view", DAY) for n in range(60)])
    draws = {tuple(row_ids(ratio_split(frame, 0.5, seed=seed).test)) for seed in range(3)}
    assert len(draws) == 3


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_ratio_split_rejects_ratios_outside_the_open_unit_interval(ratio: float) -> None:
    with pytest.raises(ConfigError, match="test_ratio"):
        ratio_split(interactions([]), test_ratio=ratio)


def test_ratio_split_rejects_unknown_grouping() -> None:
    with pytest.raises(ConfigError, match="groups by one of"):
        ratio_split(interactions([]), test_ratio=0.2, by="shop")  # type: ignore[arg-type]


@fast
@given(
    frame=frames,
    ratio=st.floats(min_value=0.01, max_value=0.99),
    by=st.sampled_from(["member", "item"]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_ratio_split_test_size_per_group_is_rounded_ratio_and_seed_deterministic(
    frame: pl.DataFrame, ratio: float, by: str, seed: int
) -> None:
    split = ratio_split(frame, ratio, by=by, seed=seed)  # type: ignore[arg-type]
    assert_partition(split, frame)
    group = MEMBER_ID if by == "member" else ITEM_ID
    test_sizes = dict(split.test.group_by(group).len().iter_rows())
    for key, size in frame.group_by(group).len().iter_rows():
        assert test_sizes.get(key, 0) == (round(ratio * size) if size > 1 else 0)
    again = ratio_split(frame, ratio, by=by, seed=seed)  # type: ignore[arg-type]
    assert row_ids(again.test) == row_ids(split.test)


# --- explicit -----------------------------------------------------------------------------------


def test_explicit_split_removes_train_rows_that_repeat_a_test_event() -> None:
    train = interactions(
        [
            ("a", "x", "view", DAY),
            ("a", "x", "purchase", DAY),  # same cell, other event: kept
            ("a", "x", "view", DAY),  # repeated twice in train: both removed
            ("b", "y", "cart", DAY + timedelta(seconds=1)),  # other time: kept
        ]
    )
    test = interactions([("a", "x", "view", DAY), ("b", "y", "cart", DAY)])
    split = explicit_split(train, test)
    assert row_ids(split.train) == [1, 3]
    assert split.test.equals(test)
    assert split.describe()["removed_from_train"] == 2


def test_explicit_split_names_the_file_lacking_a_key_column() -> None:
    with pytest.raises(MissingColumnError, match="test interactions"):
        explicit_split(interactions([]), interactions([]).drop(EVENT))


@fast
@given(train=frames, test=frames)
def test_explicit_split_leaves_no_test_event_in_train(
    train: pl.DataFrame, test: pl.DataFrame
) -> None:
    split = explicit_split(train, test)
    key = [MEMBER_ID, ITEM_ID, EVENT, TIMESTAMP]
    assert split.train.join(split.test, on=key, how="semi").is_empty()
    assert split.removed_from_train == train.height - split.train.height
    assert set(row_ids(split.train)) <= set(row_ids(train))


# --- results ------------------------------------------------------------------------------------


def test_split_describe_counts_rows_members_and_ids_unseen_in_train() -> None:
    frame = interactions(
        [
            ("a", "x", "view", DAY),
            ("b", "y", "view", DAY),
            ("a", "y", "view", DAY + timedelta(days=2)),
            ("c", "z", "view", DAY + timedelta(days=2)),
        ]
    )
    described = temporal_split(frame, cutoff=DAY + timedelta(days=1)).describe()
    assert described == {
        "train_rows": 2,
        "test_rows": 2,
        "train_members": 2,
        "test_members": 2,
        "test_members_not_in_train": 1,
        "train_items": 2,
        "test_items": 2,
        "test_items_not_in_train": 1,
        "removed_from_train": 0,
    }


def test_splits_keep_extra_columns_and_row_order() -> None:
    frame = interactions(
        [("a", "x", "view", DAY + timedelta(days=n)) for n in range(4)]
    ).with_columns(pl.lit("web").alias("channel"))
    split = leave_last_k_out(frame, k=2)
    assert split.train.columns == frame.columns
    assert row_ids(split.train) == [0, 1]
    assert row_ids(split.test) == [2, 3]


# --- specs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("temporal:2024-03-01", TemporalSplitSpec(cutoff=datetime(2024, 3, 1))),
        ("temporal:2024-03-01T06:30", TemporalSplitSpec(cutoff=datetime(2024, 3, 1, 6, 30))),
        ("last-days:14", LastDaysSplitSpec(days=14)),
        ("leave-last:2", LeaveLastOutSpec(k=2)),
        ("ratio:0.25", RatioSplitSpec(test_ratio=0.25)),
        ("ratio:0.25:item", RatioSplitSpec(test_ratio=0.25, by="item")),
        ("ratio:0.25:item:7", RatioSplitSpec(test_ratio=0.25, by="item", seed=7)),
        ("ratio:0.25:7", RatioSplitSpec(test_ratio=0.25, seed=7)),
    ],
)
def test_parse_split_spec_reads_every_accepted_form(spec: str, expected: object) -> None:
    assert parse_split_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "random:0.2",
        "temporal:",
        "temporal:yesterday",
        "last-days:0",
        "last-days:two",
        "leave-last:-1",
        "ratio:1.5",
        "ratio:0.2:shop",
        "ratio:0.2:item:7:extra",
    ],
)
def test_parse_split_spec_rejects_bad_specs_listing_the_accepted_forms(spec: str) -> None:
    with pytest.raises(ConfigError, match="accepted forms are temporal:YYYY-MM-DD"):
        parse_split_spec(spec)


def test_parsed_spec_splits_like_the_function_it_names() -> None:
    frame = interactions([("a", f"i{n}", "view", DAY + timedelta(days=n)) for n in range(6)])
    spec = parse_split_spec("ratio:0.5:member:11")
    assert row_ids(spec.split(frame).test) == row_ids(ratio_split(frame, 0.5, seed=11).test)
    cutoff = datetime(2024, 1, 3, tzinfo=UTC)
    assert row_ids(TemporalSplitSpec(cutoff=cutoff).split(frame).test) == [2, 3, 4, 5]
