"""Member profiles: RFM numbers, quintile scores, lifecycle segments, value tiers, summaries."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.columns import (
    EVENT,
    EVENTS,
    ITEM_ID,
    JOINED_AT,
    MEMBER_ID,
    ORDER_ID,
    PRICE,
    QUANTITY,
    TIER,
    TIMESTAMP,
)
from features.errors import ConfigError, DataError, MissingColumnError
from features.members import (
    ACTIVE,
    AT_RISK,
    CHURNED,
    FREQUENCY,
    LAST_PURCHASE,
    M_SCORE,
    MONETARY,
    NEW,
    R_SCORE,
    RECENCY_DAYS,
    RFM_SCORE,
    SEGMENT,
    SEGMENTS,
    SLEEPING,
    VALUE_TIER,
    VALUE_TIERS,
    SegmentConfig,
    compute_member_profiles,
    segment_summary,
)

NOW = datetime(2024, 6, 1)
LONG_AGO = NOW - timedelta(days=1000)
MICROSECOND = timedelta(microseconds=1)

#: member, event, timestamp, quantity, price, order_id
Row = tuple[str, str, datetime, float, float | None, str | None]


def interactions(rows: list[Row]) -> pl.DataFrame:
    return pl.DataFrame(
        [(member, "item", *rest) for member, *rest in rows],
        schema={
            MEMBER_ID: pl.Utf8,
            ITEM_ID: pl.Utf8,
            EVENT: pl.Utf8,
            TIMESTAMP: pl.Datetime("us"),
            QUANTITY: pl.Float64,
            PRICE: pl.Float64,
            ORDER_ID: pl.Utf8,
        },
        orient="row",
    )


def purchase(
    member: str, when: datetime, price: float | None = 1.0, order: str | None = None
) -> Row:
    return (member, "purchase", when, 1.0, price, order)


def view(member: str, when: datetime) -> Row:
    return (member, "view", when, 1.0, None, None)


def profile_of(profiles: pl.DataFrame, member: str) -> dict[str, object]:
    return profiles.filter(pl.col(MEMBER_ID) == member).row(0, named=True)


# --- RFM numbers --------------------------------------------------------------------------------


def test_frequency_counts_distinct_orders_and_member_days_without_order_id() -> None:
    rows = [
        purchase("a", NOW - timedelta(days=5), order="o1"),
        purchase("a", NOW - timedelta(days=5), order="o1"),  # second line of order o1
        purchase("a", NOW - timedelta(days=5), order="o2"),
        purchase("a", NOW - timedelta(days=3, hours=2)),  # same day without order id: one order
        purchase("a", NOW - timedelta(days=3, hours=1)),
        purchase("a", NOW - timedelta(days=1)),
        view("a", NOW),  # views are not orders
    ]
    assert profile_of(compute_member_profiles(interactions(rows)), "a")[FREQUENCY] == 4


def test_monetary_sums_quantity_times_price_of_purchases_with_missing_price_as_zero() -> None:
    rows = [
        ("a", "purchase", NOW, 3.0, 2.5, "o1"),
        ("a", "purchase", NOW, 2.0, None, "o1"),
        ("a", "cart", NOW, 5.0, 100.0, None),
    ]
    assert profile_of(compute_member_profiles(interactions(rows)), "a")[MONETARY] == 7.5


def test_recency_counts_from_last_purchase_even_when_later_views_exist() -> None:
    rows = [purchase("a", NOW - timedelta(days=10)), view("a", NOW - timedelta(days=2))]
    profile = profile_of(compute_member_profiles(interactions(rows), reference_time=NOW), "a")
    assert profile[RECENCY_DAYS] == 10.0


def test_recency_falls_back_to_last_event_without_purchases() -> None:
    rows = [view("a", NOW - timedelta(days=4)), view("a", NOW - timedelta(days=2, hours=12))]
    profile = profile_of(compute_member_profiles(interactions(rows), reference_time=NOW), "a")
    assert profile[RECENCY_DAYS] == 2.5
    assert profile[LAST_PURCHASE] is None


def test_reference_time_defaults_to_the_latest_event() -> None:
    rows = [view("a", NOW - timedelta(days=3)), view("b", NOW)]
    profiles = compute_member_profiles(interactions(rows))
    assert profiles.get_column(RECENCY_DAYS).to_list() == [3.0, 0.0]


def test_events_after_the_reference_time_are_ignored() -> None:
    rows = [
        purchase("a", NOW - timedelta(days=1), price=2.0),
        purchase("a", NOW + timedelta(days=1)),
    ]
    profile = profile_of(compute_member_profiles(interactions(rows), reference_time=NOW), "a")
    assert (profile[MONETARY], profile[FREQUENCY], profile[RECENCY_DAYS]) == (2.0, 1, 1.0)


def test_members_who_only_browsed_by_the_reference_time_have_no_orders_and_no_spend() -> None:
    rows = [
        view("a", NOW - timedelta(days=2)),
        purchase("a", NOW + timedelta(days=1), price=5.0),  # after the reference time
        purchase("b", NOW - timedelta(days=1), price=3.0),
    ]
    profiles = compute_member_profiles(interactions(rows), reference_time=NOW)
    browsed = profile_of(profiles, "a")
    assert (browsed[FREQUENCY], browsed[MONETARY], browsed[LAST_PURCHASE]) == (0, 0.0, None)
    assert browsed[RECENCY_DAYS] == 2.0
    assert (profile_of(profiles, "b")[FREQUENCY], profile_of(profiles, "b")[MONETARY]) == (1, 3.0)


# --- scores -------------------------------------------------------------------------------------


def test_scores_are_quintiles_with_five_for_the_best() -> None:
    rows = [purchase(f"m{n}", NOW - timedelta(days=n), price=float(n)) for n in range(10)]
    profiles = compute_member_profiles(interactions(rows), reference_time=NOW)
    assert profiles.get_column(M_SCORE).to_list() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert profiles.get_column(R_SCORE).to_list() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert profile_of(profiles, "m9")[RFM_SCORE] == "115"  # all tie on frequency 1


def test_tied_members_share_the_lower_score() -> None:
    rows = [purchase(f"m{n}", NOW, price=1.0 if n < 4 else 9.0) for n in range(5)]
    profiles = compute_member_profiles(interactions(rows))
    assert profiles.get_column(M_SCORE).to_list() == [1, 1, 1, 1, 5]


# --- segments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_since_purchase", "segment"),
    [
        (timedelta(days=90), ACTIVE),
        (timedelta(days=90) + MICROSECOND, AT_RISK),
        (timedelta(days=180), AT_RISK),
        (timedelta(days=180) + MICROSECOND, SLEEPING),
        (timedelta(days=365), SLEEPING),
        (timedelta(days=365) + MICROSECOND, CHURNED),
    ],
)
def test_segment_boundaries_fall_exactly_at_the_thresholds(
    days_since_purchase: timedelta, segment: str
) -> None:
    rows = [view("a", LONG_AGO), purchase("a", NOW - days_since_purchase)]
    profiles = compute_member_profiles(interactions(rows), reference_time=NOW)
    assert profile_of(profiles, "a")[SEGMENT] == segment


@pytest.mark.parametrize(
    ("first_seen_ago", "segment"),
    [(timedelta(days=30), NEW), (timedelta(days=30) + MICROSECOND, ACTIVE)],
)
def test_member_first_seen_within_new_days_is_new(first_seen_ago: timedelta, segment: str) -> None:
    rows = [view("a", NOW - first_seen_ago), purchase("a", NOW)]
    profiles = compute_member_profiles(interactions(rows), reference_time=NOW)
    assert profile_of(profiles, "a")[SEGMENT] == segment


def test_member_who_joined_long_ago_is_not_new_despite_a_recent_first_event() -> None:
    members = pl.DataFrame({MEMBER_ID: ["a"], JOINED_AT: [LONG_AGO]})
    profiles = compute_member_profiles(interactions([purchase("a", NOW)]), members=members)
    assert profile_of(profiles, "a")[SEGMENT] == ACTIVE


def test_members_without_interactions_appear_with_joining_as_their_activity() -> None:
    members = pl.DataFrame(
        {
            MEMBER_ID: ["a", "fresh", "dormant", "unknown"],
            JOINED_AT: [LONG_AGO, NOW - timedelta(days=3), NOW - timedelta(days=200), None],
            TIER: ["gold", None, "silver", None],
        }
    )
    profiles = compute_member_profiles(interactions([purchase("a", NOW)]), members=members)
    assert profiles.get_column(MEMBER_ID).to_list() == ["a", "dormant", "fresh", "unknown"]
    assert profiles.get_column(SEGMENT).to_list() == [ACTIVE, SLEEPING, NEW, CHURNED]
    assert profiles.get_column(FREQUENCY).to_list() == [1, 0, 0, 0]
    assert profiles.get_column(MONETARY).to_list() == [1.0, 0.0, 0.0, 0.0]
    assert profiles.get_column(TIER).to_list() == ["gold", "silver", None, None]


def test_profiles_without_members_table_have_no_declared_tier() -> None:
    assert TIER not in compute_member_profiles(interactions([view("a", NOW)])).columns


def test_custom_thresholds_move_the_boundaries() -> None:
    rows = [view("a", LONG_AGO), purchase("a", NOW - timedelta(days=20))]
    config = SegmentConfig(active_days=14, at_risk_days=21, sleeping_days=60)
    profiles = compute_member_profiles(interactions(rows), reference_time=NOW, config=config)
    assert profile_of(profiles, "a")[SEGMENT] == AT_RISK


# --- value tiers --------------------------------------------------------------------------------


def test_value_tiers_cut_spend_at_quantiles_of_buying_members() -> None:
    rows = [purchase(f"m{n:03d}", NOW, price=float(n)) for n in range(1, 101)]
    rows.append(view("browser", NOW))
    profiles = compute_member_profiles(interactions(rows))
    tiers = dict(profiles.group_by(VALUE_TIER).len().iter_rows())
    assert tiers == {"bronze": 51, "silver": 30, "gold": 15, "platinum": 5}
    assert profile_of(profiles, "browser")[VALUE_TIER] == "bronze"
    assert profile_of(profiles, "m096")[VALUE_TIER] == "platinum"


def test_without_any_purchase_everyone_is_bronze() -> None:
    profiles = compute_member_profiles(interactions([view("a", NOW), view("b", NOW)]))
    assert profiles.get_column(VALUE_TIER).to_list() == ["bronze", "bronze"]


# --- configuration and input errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "thresholds",
    [
        {"active_days": 200},
        {"sleeping_days": 180},
        {"new_days": 0},
        {"active_days": -5, "at_risk_days": 10},
    ],
)
def test_segment_config_requires_positive_increasing_thresholds(
    thresholds: dict[str, float],
) -> None:
    with pytest.raises(ConfigError, match="segment thresholds"):
        SegmentConfig(**thresholds)


@pytest.mark.parametrize(
    "quantiles", [(0.8, 0.5, 0.95), (0.5, 0.5, 0.9), (0.5, 0.8), (0.0, 0.5, 0.9), (0.5, 0.8, 1.0)]
)
def test_segment_config_requires_three_increasing_tier_quantiles(
    quantiles: tuple[float, ...],
) -> None:
    with pytest.raises(ConfigError, match="tier_quantiles"):
        SegmentConfig(tier_quantiles=quantiles)


def test_profiles_name_missing_interaction_columns() -> None:
    with pytest.raises(MissingColumnError, match="order_id"):
        compute_member_profiles(interactions([view("a", NOW)]).drop(ORDER_ID))


def test_profiles_without_any_date_need_an_explicit_reference_time() -> None:
    members = pl.DataFrame({MEMBER_ID: ["a"]})
    with pytest.raises(DataError, match="reference_time"):
        compute_member_profiles(interactions([]), members=members)
    profiles = compute_member_profiles(interactions([]), reference_time=NOW, members=members)
    assert profiles.get_column(SEGMENT).to_list() == [CHURNED]


# --- summary ------------------------------------------------------------------------------------


def test_segment_summary_counts_shares_and_mean_spend_in_canonical_order() -> None:
    rows = [
        purchase("a", NOW, price=10.0),
        purchase("b", NOW, price=30.0),
        view("b", LONG_AGO),
        view("c", LONG_AGO),
        purchase("d", NOW - timedelta(days=100), price=4.0),
        view("d", LONG_AGO),
    ]
    members = pl.DataFrame({MEMBER_ID: ["a", "b"], TIER: ["gold", "gold"]})
    summary = segment_summary(compute_member_profiles(interactions(rows), members=members))
    segments = summary.filter(pl.col("group") == SEGMENT)
    assert segments.get_column("name").to_list() == list(SEGMENTS)
    assert segments.get_column("members").to_list() == [1, 1, 1, 0, 1]
    assert segments.get_column("share").to_list() == [0.25, 0.25, 0.25, 0.0, 0.25]
    assert segments.get_column("mean_monetary").to_list() == [10.0, 30.0, 4.0, None, 0.0]
    tiers = summary.filter(pl.col("group") == VALUE_TIER)
    assert tiers.get_column("name").to_list() == list(VALUE_TIERS)
    declared = summary.filter(pl.col("group") == TIER)
    assert declared.select("name", "members", "mean_monetary").rows() == [
        (None, 2, 2.0),
        ("gold", 2, 20.0),
    ]


# --- properties ---------------------------------------------------------------------------------


profile_rows = st.lists(
    st.tuples(
        st.sampled_from(["m0", "m1", "m2", "m3", "m4", "m5", "m6"]),
        st.sampled_from(EVENTS),
        st.datetimes(min_value=NOW - timedelta(days=800), max_value=NOW),
        st.floats(min_value=1.0, max_value=5.0),
        st.one_of(st.none(), st.floats(min_value=0.0, max_value=50.0)),
        st.one_of(st.none(), st.sampled_from(["o1", "o2", "o3"])),
    ),
    min_size=1,
    max_size=40,
)


def expected_segment(first_seen_days: float, recency_days: float, config: SegmentConfig) -> str:
    if first_seen_days <= config.new_days:
        return NEW
    thresholds = [
        (config.active_days, ACTIVE),
        (config.at_risk_days, AT_RISK),
        (config.sleeping_days, SLEEPING),
    ]
    return next((name for limit, name in thresholds if recency_days <= limit), CHURNED)


@settings(max_examples=60, deadline=None)
@given(rows=profile_rows)
def test_profiles_have_one_row_per_member_scores_in_range_and_segments_by_rule(
    rows: list[Row],
) -> None:
    frame = interactions(rows)
    profiles = compute_member_profiles(frame, reference_time=NOW)
    assert sorted(profiles.get_column(MEMBER_ID).to_list()) == sorted(
        frame.get_column(MEMBER_ID).unique().to_list()
    )
    for column in (R_SCORE, "f_score", M_SCORE):
        assert profiles.get_column(column).is_between(1, 5).all()
    assert profiles.get_column(VALUE_TIER).is_in(VALUE_TIERS).all()
    config = SegmentConfig()
    for profile in profiles.iter_rows(named=True):
        first_seen_days = (NOW - profile["first_seen"]) / timedelta(days=1)
        assert profile[SEGMENT] == expected_segment(first_seen_days, profile[RECENCY_DAYS], config)
        scores = (profile[R_SCORE], profile["f_score"], profile[M_SCORE])
        assert profile[RFM_SCORE] == "".join(map(str, scores))
