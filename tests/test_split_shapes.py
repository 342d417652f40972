"""The shape of a given train/test split is read right, and validation is carved the same way."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from features import columns as col
from features.errors import DataError
from features.split_shapes import (
    carve_validation,
    first_orders,
    infer_split_shape,
    shape_of_spec,
)
from features.splits import (
    last_share_split,
    leave_last_k_out,
    parse_split_spec,
    ratio_split,
    temporal_split,
)

START = datetime(2024, 1, 1)


def _log(members: int = 300, items: int = 80, events: int = 12_000, seed: int = 1) -> pl.DataFrame:
    """Members active across the whole period (so per-member windows overlap), random items."""
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, 200 * 86_400, events)
    return pl.DataFrame(
        {
            col.MEMBER_ID: [f"m{m}" for m in rng.integers(0, members, events)],
            col.ITEM_ID: [f"i{i}" for i in rng.zipf(1.3, events) % items],
            col.EVENT: ["purchase"] * events,
            col.TIMESTAMP: [START + timedelta(seconds=int(s)) for s in seconds],
        }
    )


LOG = _log()


def test_a_global_time_cut_is_read_as_one_with_the_tests_window() -> None:
    split = temporal_split(LOG, last_days=20)
    shape = infer_split_shape(split.train, split.test)
    assert shape.kind == "global-time"
    assert shape.inferred
    assert shape.window is not None
    assert abs(shape.window - timedelta(days=20)) < timedelta(hours=1)


def test_a_global_window_is_not_a_day_short_and_never_takes_a_larger_share() -> None:
    split = temporal_split(LOG, cutoff=START + timedelta(days=196, hours=12))  # a 3.5-day test
    shape = infer_split_shape(split.train, split.test)
    validation = carve_validation(split.train, shape)
    window = validation.test[col.TIMESTAMP].max() - validation.test[col.TIMESTAMP].min()
    assert timedelta(days=3, hours=11) < window <= timedelta(days=3, hours=12)

    long_test = temporal_split(LOG, cutoff=START + timedelta(days=100))  # half the log
    shape = infer_split_shape(long_test.train, long_test.test)
    validation = carve_validation(long_test.train, shape)
    assert validation.test.height / long_test.train.height <= shape.share + 1e-3


def test_each_members_last_share_is_read_as_a_member_time_cut() -> None:
    split = last_share_split(LOG, 0.2)
    shape = infer_split_shape(split.train, split.test)
    assert shape.kind == "member-time"
    assert shape.per_member is None
    assert shape.share == pytest.approx(0.2, abs=0.02)
    validation = carve_validation(split.train, shape)
    last_train = validation.train.group_by(col.MEMBER_ID).agg(pl.col(col.TIMESTAMP).max())
    after = validation.test.join(last_train, on=col.MEMBER_ID, suffix="_train")
    assert (after[col.TIMESTAMP] >= after[f"{col.TIMESTAMP}_train"]).all()
    assert validation.test.height / split.train.height == pytest.approx(0.2, abs=0.02)


def test_leave_last_k_is_read_as_k_events_per_member() -> None:
    split = leave_last_k_out(LOG, k=2)
    shape = infer_split_shape(split.train, split.test)
    assert (shape.kind, shape.per_member) == ("member-time", 2)
    validation = carve_validation(split.train, shape)
    assert validation.test.group_by(col.MEMBER_ID).len()["len"].unique().to_list() == [2]


@pytest.mark.parametrize("by", ["member", "item"])
def test_a_random_split_is_read_with_its_share_and_stratification(by: str) -> None:
    split = ratio_split(LOG, 0.25, by=by, seed=3)  # type: ignore[arg-type]
    shape = infer_split_shape(split.train, split.test)
    assert shape.kind == "random"
    assert shape.group == by
    assert shape.share == pytest.approx(0.25, abs=0.01)
    validation = carve_validation(split.train, shape, seed=4)
    assert validation.test.height / split.train.height == pytest.approx(0.25, abs=0.01)


def test_a_split_made_from_a_spec_has_the_specs_shape() -> None:
    expected = {
        "last-days:20": "global-time",
        "leave-last:1": "member-time",
        "last-share:0.1": "member-time",
        "ratio:0.2:item:5": "random",
    }
    for text, kind in expected.items():
        spec = parse_split_spec(text)
        shape = shape_of_spec(spec, spec.split(LOG))
        assert (shape.kind, shape.inferred) == (kind, False)


def test_the_shape_record_is_plain_json() -> None:
    split = temporal_split(LOG, last_days=20)
    record = infer_split_shape(split.train, split.test).describe()
    assert record["kind"] == "global-time"
    assert record["window_days"] == pytest.approx(20, abs=0.05)
    assert set(record["evidence"]) == {"test_events_before_last_train_event"}


def test_last_share_split_is_a_partition_with_each_members_latest_rows_in_test() -> None:
    split = last_share_split(LOG, 0.3)
    assert split.train.height + split.test.height == LOG.height
    sizes = (
        LOG.group_by(col.MEMBER_ID)
        .len()
        .join(
            split.test.group_by(col.MEMBER_ID).len(), on=col.MEMBER_ID, how="left", suffix="_test"
        )
    )
    expected = (sizes["len"] * 0.3).round(0).cast(pl.Int64)
    assert (sizes["len_test"].fill_null(0) == expected).all()


def test_a_test_of_strangers_interleaved_in_time_asks_for_a_validation_spec() -> None:
    strangers = LOG.with_columns(("new-" + pl.col(col.MEMBER_ID)).alias(col.MEMBER_ID))
    train, test = LOG.filter(pl.col(col.MEMBER_ID) < "m5"), strangers.head(500)
    with pytest.raises(DataError, match="--validation SPEC"):
        infer_split_shape(train, test)


# --- next-basket shapes: whole orders per member ----------------------------------------------


def _baskets(members: int = 60, orders: int = 8, seed: int = 3) -> pl.DataFrame:
    """Members with ``orders`` member-day baskets of 2-4 items each, days apart, plus views."""
    rng = np.random.default_rng(seed)
    rows = []
    for member in range(members):
        day = int(rng.integers(0, 20))
        for _ in range(orders):
            day += int(rng.integers(3, 15))
            stamp = START + timedelta(days=day, hours=int(rng.integers(8, 20)))
            for item in rng.choice(30, size=int(rng.integers(2, 5)), replace=False):
                rows.append((f"m{member}", f"i{item}", "purchase", stamp))
            rows.append((f"m{member}", f"i{rng.integers(30)}", "view", stamp))
    return pl.DataFrame(
        rows,
        schema={col.MEMBER_ID: pl.Utf8, col.ITEM_ID: pl.Utf8, col.EVENT: pl.Utf8,
                col.TIMESTAMP: pl.Datetime("us")},
        orient="row",
    )  # fmt: skip


BASKETS = _baskets()


def _orders(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.filter(pl.col(col.EVENT) == "purchase")
        .group_by(col.MEMBER_ID)
        .agg(pl.col(col.TIMESTAMP).dt.date().n_unique().alias("orders"))
    )


def test_last_baskets_puts_each_members_last_orders_and_what_follows_in_test() -> None:
    split = parse_split_spec("last-baskets:2").split(BASKETS)
    assert split.train.height + split.test.height == BASKETS.height
    assert set(_orders(split.test)["orders"].to_list()) == {2}
    last_train = split.train.group_by(col.MEMBER_ID).agg(pl.col(col.TIMESTAMP).max())
    first_test = split.test.group_by(col.MEMBER_ID).agg(pl.col(col.TIMESTAMP).min())
    joined = last_train.join(first_test, on=col.MEMBER_ID, suffix="_test")
    assert (joined[col.TIMESTAMP] < joined[f"{col.TIMESTAMP}_test"]).all()


def test_a_member_with_no_more_orders_than_k_stays_in_train() -> None:
    few = BASKETS.filter(pl.col(col.MEMBER_ID) == "m0")
    split = parse_split_spec("last-baskets:8").split(few)
    assert split.test.height == 0


def test_a_first_basket_test_is_read_and_validated_as_one_basket_per_member() -> None:
    cut = START + timedelta(days=60)
    split = temporal_split(BASKETS, cutoff=cut)
    test = first_orders(split.test, 1)
    assert set(_orders(test)["orders"].to_list()) == {1}
    assert infer_split_shape(split.train, test).orders_per_member is None  # not asked for
    shape = infer_split_shape(split.train, test, baskets=True)
    assert (shape.kind, shape.orders_per_member) == ("global-time", 1)
    validation = carve_validation(split.train, shape)
    assert set(_orders(validation.test)["orders"].to_list()) == {1}
    assert validation.test[col.TIMESTAMP].min() > validation.train[col.TIMESTAMP].max()


def test_a_last_basket_test_is_validated_on_each_members_last_training_basket() -> None:
    split = parse_split_spec("last-baskets:1").split(BASKETS)
    shape = infer_split_shape(split.train, split.test, baskets=True)
    assert (shape.kind, shape.orders_per_member) == ("member-time", 1)
    from_spec = shape_of_spec(parse_split_spec("last-baskets:1"), split)
    assert (from_spec.kind, from_spec.orders_per_member) == ("member-time", 1)
    validation = carve_validation(split.train, shape)
    assert set(_orders(validation.test)["orders"].to_list()) == {1}
