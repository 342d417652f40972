"""Member features as of a date (rates, gaps, trend, activity, BTYD inputs) and outcomes."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from features.errors import MissingColumnError
from features.member_features import (
    BTYD_M,
    BTYD_T,
    BTYD_TX,
    BTYD_X,
    FEATURES,
    IS_BUYER,
    future_outcomes,
    member_features,
)

AS_OF = datetime(2024, 6, 1)


def _events(rows: list[tuple[str, str, float, str | None, float, str | None]]) -> pl.DataFrame:
    """(member, event, days before AS_OF, order id, price, item) rows; quantity 1."""
    return pl.DataFrame(
        {
            "member_id": [row[0] for row in rows],
            "item_id": [row[5] or "i1" for row in rows],
            "event": [row[1] for row in rows],
            "timestamp": [AS_OF - timedelta(days=row[2]) for row in rows],
            "quantity": [1.0] * len(rows),
            "price": [row[4] for row in rows],
            "order_id": [row[3] for row in rows],
        },
        schema_overrides={"timestamp": pl.Datetime("us")},
    )


def _row(frame: pl.DataFrame, member: str) -> dict[str, object]:
    return frame.filter(pl.col("member_id") == member).row(0, named=True)


@pytest.fixture
def three_orders() -> pl.DataFrame:
    """Member a buys every 30 days (70, 40, 10 days ago, for 10, 20 and 30); b viewed once."""
    return _events(
        [
            ("a", "purchase", 70, "o1", 10.0, "i1"),
            ("a", "purchase", 40, "o2", 20.0, "i2"),
            ("a", "purchase", 40, "o2", 0.0, "i3"),
            ("a", "purchase", 10, "o3", 30.0, "i1"),
            ("a", "view", 5, None, 1.0, "i9"),
            ("b", "view", 3, None, 1.0, "i1"),
        ]
    )


def test_purchase_features_are_rates_gaps_and_recent_counts(three_orders: pl.DataFrame) -> None:
    row = _row(member_features(three_orders, AS_OF), "a")
    assert row["days_since_purchase"] == pytest.approx(10)
    assert row["days_since_first_purchase"] == pytest.approx(70)
    assert row["orders_per_30d"] == pytest.approx(3 * 30 / 70)
    assert row["spend_per_30d"] == pytest.approx(60 * 30 / 70)
    assert row["mean_order_value"] == pytest.approx(20)
    assert row["items_per_order"] == pytest.approx(4 / 3)
    assert row["mean_gap_days"] == pytest.approx(30)
    assert row["std_gap_days"] == pytest.approx(0)
    assert row["last_gap_ratio"] == pytest.approx(1)
    assert row["open_gap_ratio"] == pytest.approx(10 / 30)
    assert (row["orders_30d"], row["orders_90d"], row["spend_90d"]) == (1, 3, 60)
    assert row["trend_90d"] is None  # the first purchase is within the last 90 days
    assert row["trend_30d"] == pytest.approx(1 - 2 / 2)
    assert row["days_since_event"] == pytest.approx(5)
    assert row[IS_BUYER] is True
    assert (row[BTYD_X], row[BTYD_TX], row[BTYD_T]) == (2, pytest.approx(60), pytest.approx(70))
    assert row[BTYD_M] == pytest.approx(25)  # the repeat orders (20 and 30), not the first


def test_a_member_with_events_but_no_purchase_is_known_and_not_a_buyer(
    three_orders: pl.DataFrame,
) -> None:
    row = _row(member_features(three_orders, AS_OF), "b")
    assert row[IS_BUYER] is False
    assert row["days_since_purchase"] is None and row[BTYD_X] is None
    assert row["views_per_30d"] == pytest.approx(1.0)  # one view in a tenure floored at 30 days
    assert row["tenure_days"] == pytest.approx(3)


def test_rates_mean_the_same_over_short_and_long_histories() -> None:
    """One order every 30 days gives one order per 30 days whether the history is two months
    or ten: a total would differ five-fold."""
    short = _events([("a", "purchase", days, f"s{days}", 5.0, None) for days in (60, 30)])
    long = _events([("a", "purchase", 30 * k, f"l{k}", 5.0, None) for k in range(1, 11)])
    for frame in (short, long):
        row = _row(member_features(frame, AS_OF), "a")
        assert row["orders_per_30d"] == pytest.approx(1.0, rel=0.01)
        assert row["mean_gap_days"] == pytest.approx(30)


def test_a_new_buyers_rate_is_floored_at_a_30_day_span() -> None:
    row = _row(member_features(_events([("a", "purchase", 2, "o1", 5.0, None)]), AS_OF), "a")
    assert row["orders_per_30d"] == pytest.approx(1.0)


def test_events_at_or_after_as_of_never_change_the_features(three_orders: pl.DataFrame) -> None:
    later = _events(
        [
            ("a", "purchase", 0, "o9", 99.0, "i1"),
            ("a", "view", -3, None, 1.0, "i1"),
            ("c", "purchase", -10, "o10", 5.0, "i2"),
        ]
    )
    before = member_features(three_orders, AS_OF)
    after = member_features(pl.concat([three_orders, later]), AS_OF)
    assert_frame_equal(before, after)


def test_lazy_and_eager_inputs_give_the_same_features(three_orders: pl.DataFrame) -> None:
    assert_frame_equal(
        member_features(three_orders, AS_OF), member_features(three_orders.lazy(), AS_OF)
    )


def test_members_table_adds_members_joined_before_as_of_with_their_tier(
    three_orders: pl.DataFrame,
) -> None:
    members = pl.DataFrame(
        {
            "member_id": ["a", "z", "late"],
            "joined_at": [AS_OF - timedelta(days=400), AS_OF - timedelta(days=60), AS_OF],
            "tier": ["Gold", "diamond", "silver"],
        },
        schema_overrides={"joined_at": pl.Datetime("us")},
    )
    frame = member_features(three_orders, AS_OF, members=members)
    assert frame.get_column("member_id").to_list() == ["a", "b", "z"]
    a, z = _row(frame, "a"), _row(frame, "z")
    assert a["tier_rank"] == 2.0 and a["tenure_days"] == pytest.approx(400)
    assert z["tier_rank"] is None  # off the bronze..platinum ladder
    assert z[IS_BUYER] is False and z["views_per_30d"] == 0.0 and z["tenure_days"] == 60


def test_category_breadth_counts_categories_bought_in_the_last_90_days(
    three_orders: pl.DataFrame,
) -> None:
    items = pl.DataFrame({"item_id": ["i1", "i2", "i3"], "category": ["x", "y", "y"]})
    row = _row(member_features(three_orders, AS_OF, items=items), "a")
    assert row["categories_90d"] == 2.0
    assert _row(member_features(three_orders, AS_OF), "a")["categories_90d"] is None


def test_every_feature_is_a_float_column(three_orders: pl.DataFrame) -> None:
    frame = member_features(three_orders, AS_OF)
    assert all(frame.schema[name] == pl.Float64 for name in FEATURES)


def test_missing_columns_are_named() -> None:
    with pytest.raises(MissingColumnError, match="order_id"):
        member_features(pl.DataFrame({"member_id": ["a"]}).with_columns(
            pl.lit("i").alias("item_id"), pl.lit("purchase").alias("event"),
            pl.lit(AS_OF).alias("timestamp"), pl.lit(1.0).alias("quantity"),
            pl.lit(1.0).alias("price"),
        ), AS_OF)  # fmt: skip


def test_outcomes_count_distinct_orders_and_spend_in_the_window_only() -> None:
    frame = _events(
        [
            ("a", "purchase", 1, "before", 7.0, None),  # before as_of
            ("a", "purchase", 0, "o1", 2.0, None),  # at as_of: in
            ("a", "purchase", -5, "o2", 3.0, "i1"),
            ("a", "purchase", -5, "o2", 4.0, "i2"),
            ("a", "view", -6, None, 50.0, None),  # a view is no purchase
            ("a", "purchase", -10, "edge", 9.0, None),  # at as_of + H: out
            ("b", "purchase", -2, None, 1.5, None),  # no order id: one order per day
        ]
    )
    outcomes = future_outcomes(frame, AS_OF, 10)
    assert outcomes.rows() == [("a", 2, 9.0), ("b", 1, 1.5)]
