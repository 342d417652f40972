"""The member profile frame (``training.member_profiles``), its tags (``features.member_tags``),
the tier rules (``features.tier_rules``) and the live folding of served profiles
(``serving.profiles``), on tables small enough to check by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from features.errors import ConfigError, DataError
from features.ids import IdMap
from features.member_tags import TagRules, preference_tags, purchase_lines
from features.members import compute_member_profiles
from features.tier_rules import TIER_RULES_FILE, TierRules, load_tier_rules, write_tier_rules
from features.validate import load_members
from serving.profiles import LiveActivity, ProfileRows, fold_live, summarise_live
from training.member_profiles import PROFILE_FRAME_COLUMNS, build_member_profiles

REFERENCE = datetime(2025, 6, 30)
ITEMS = pl.DataFrame({
    "item_id": ["I1", "I2", "I3", "I4", "I5", "I6"],
    "category": ["Tea", "Tea", "Coffee", "Coffee", "Snacks", "Gifts"],
    "brand": ["Leaf", "Leaf", "Bean", "Bean", "Crunch", "Box"],
    "price": [10.0, 20.0, 10.0, 40.0, 5.0, 400.0],
    "released_at": [datetime(2025, 1, 1), None, None, None, datetime(2025, 6, 1), None],
})  # fmt: skip


def _line(member: str, item: str, when: str, order: str, price: float, quantity: int = 1) -> dict:
    return {"member_id": member, "item_id": item, "event": "purchase",
            "timestamp": datetime.fromisoformat(when), "quantity": quantity, "price": price,
            "order_id": order}  # fmt: skip


def _store() -> pl.DataFrame:
    """A: weekend orders of several items (Tea); B: the dear coffee; C: the cheap coffee, daily;
    D: a new snack on promotion; E: a little of two categories; F: one big gift."""
    rows = [
        _line("A", "I1", "2025-06-07T10:00", "a1", 10.0),  # Saturday
        _line("A", "I2", "2025-06-07T10:00", "a1", 20.0),
        _line("A", "I1", "2025-06-08T10:00", "a2", 8.0),  # Sunday, on promotion
        _line("A", "I1", "2025-06-16T10:00", "a3", 10.0),  # Monday
        _line("A", "I2", "2025-06-16T10:00", "a3", 20.0),
        _line("A", "I4", "2025-07-05T10:00", "a4", 1000.0),  # after the reference: ignored
        *(_line("B", "I4", f"2025-06-0{day}T12:00", f"b{day}", 40.0) for day in (2, 3, 4)),
        *(_line("C", "I3", f"2025-05-0{day}T08:00", f"c{day}", 10.0) for day in range(1, 10)),
        _line("C", "I3", "2024-01-01T08:00", "c0", 10.0),  # outside the tier window
        *(_line("D", "I5", f"2025-06-{day}T18:00", f"d{day}", 4.0) for day in (10, 12, 20)),
        _line("E", "I2", "2025-06-10T09:00", "e1", 20.0),
        _line("E", "I3", "2025-06-10T09:00", "e1", 10.0),
        _line("E", "I2", "2025-06-11T09:00", "e2", 20.0),
        _line("F", "I6", "2025-06-25T09:00", "f1", 400.0),
        {**_line("G", "I1", "2025-06-29T09:00", "", 10.0), "event": "view", "order_id": None},
    ]
    return pl.DataFrame(rows)


MEMBERS = pl.DataFrame({
    "member_id": ["A", "B", "H"],
    "joined_at": [datetime(2024, 8, 15), datetime(2025, 1, 1), datetime(2025, 6, 1)],
    "region": ["North", None, "South"],
    "birth_date": [datetime(1990, 3, 10), datetime(2010, 5, 1), None],
})  # fmt: skip


@pytest.fixture(scope="module")
def profiles() -> pl.DataFrame:
    scores = pl.DataFrame({
        "member_id": ["A", "B", "Z"], "churn_risk": [0.1, 0.9, 0.5],
        "churn_band": ["low", "high", "medium"], "expected_purchases": [2.0, 0.1, 1.0],
        "expected_spend": [50.0, 4.0, 10.0],
    })  # fmt: skip
    return build_member_profiles(
        _store(), REFERENCE, members=MEMBERS, items=ITEMS, scores=scores,
        scores_as_of=datetime(2025, 7, 1, tzinfo=UTC),
    )  # fmt: skip


def _by_member(profiles: pl.DataFrame, column: str) -> dict:
    return dict(zip(profiles["member_id"], profiles[column].to_list(), strict=True))


def test_one_row_per_member_with_the_rfm_of_compute_member_profiles(profiles: pl.DataFrame) -> None:
    assert profiles.columns == list(PROFILE_FRAME_COLUMNS)
    assert profiles["member_id"].to_list() == ["A", "B", "C", "D", "E", "F", "G", "H"]  # not Z
    expected = compute_member_profiles(_store(), REFERENCE, MEMBERS)
    shared = [name for name in expected.columns if name in profiles.columns]
    assert profiles.select(shared).equals(expected.select(shared))
    assert _by_member(profiles, "monetary")["A"] == 68.0  # the July purchase is not seen


def test_preference_tags_are_shares_over_the_stores_share(profiles: pl.DataFrame) -> None:
    # Store lines with a category: Tea 7, Coffee 14, Snacks 3, Gifts 1 (25).
    tags = _by_member(profiles, "preference_tags")
    assert tags["A"] == [
        {"kind": "category", "name": "Tea", "affinity": pytest.approx(25 / 7)},
        {"kind": "brand", "name": "Leaf", "affinity": pytest.approx(25 / 7)},
    ]
    # E: Tea (2 of 3 lines) qualifies; Coffee has 1 line (< min support 2) and affinity < 1.
    assert [(t["name"], t["affinity"]) for t in tags["E"]] == [
        ("Tea", pytest.approx((2 / 3) / (7 / 25))), ("Leaf", pytest.approx((2 / 3) / (7 / 25))),
    ]  # fmt: skip
    assert tags["D"][0]["affinity"] == pytest.approx(25 / 3)
    assert tags["F"] == [] and tags["G"] == [] and tags["H"] == []  # one line; none bought


def test_top_k_keeps_the_highest_affinities_per_kind() -> None:
    lines = purchase_lines(_store(), REFERENCE, ITEMS)
    loose = TagRules(min_support=1, min_affinity=0.0, top_k=1)
    tags = preference_tags(lines, loose).collect()
    [e_tags] = tags.filter(pl.col("member_id") == "E")["preference_tags"].to_list()
    assert [(t["kind"], t["name"]) for t in e_tags] == [("category", "Tea"), ("brand", "Leaf")]
    both = preference_tags(lines, loose.model_copy(update={"top_k": 2})).collect()
    [e_both] = both.filter(pl.col("member_id") == "E")["preference_tags"].to_list()
    assert [t["name"] for t in e_both] == ["Tea", "Coffee", "Leaf", "Bean"]


def test_behaviour_tags_each_by_its_definition(profiles: pl.DataFrame) -> None:
    tags = _by_member(profiles, "behaviour_tags")
    assert tags["A"] == ["weekend-shopper", "bundle-buyer"]  # 2 of 3 orders each
    assert tags["B"] == ["high-price-buyer"]  # 40 > the coffee lines' 75th percentile (10)
    assert tags["D"] == ["new-arrival-buyer", "deal-seeker"]  # within 30 days; 20% off list
    assert tags["C"] == tags["E"] == tags["F"] == []  # E: 2 orders only; F: one line
    assert tags["H"] == []


def test_new_arrivals_without_release_dates_count_from_an_items_first_event() -> None:
    rows = [
        _line("P", "old", "2025-01-01T10:00", "p0", 5.0),  # the data's start
        *(_line("Q", "old", f"2025-0{month}-03T10:00", f"q{month}", 5.0) for month in (2, 3, 4)),
        *(_line("R", "new", f"2025-05-{day}T10:00", f"r{day}", 5.0) for day in (10, 15, 20)),
        *(_line("S", "old", f"2025-01-0{day}T10:00", f"s{day}", 5.0) for day in (2, 3, 4)),
    ]  # fmt: skip
    profiles = build_member_profiles(pl.DataFrame(rows), REFERENCE)
    tags = _by_member(profiles, "behaviour_tags")
    # R bought "new" in its first month on sale; S's January lines are too near the data's
    # start to be judged (every item looks new there); Q bought an old item.
    assert tags["R"] == ["new-arrival-buyer"] and tags["S"] == [] and tags["Q"] == []
    assert _by_member(profiles, "preference_tags")["R"] == []  # no categories, no brands


def test_purchase_cycle_is_the_median_gap_between_orders(profiles: pl.DataFrame) -> None:
    cycle = _by_member(profiles, "purchase_cycle_days")
    assert (cycle["A"], cycle["D"], cycle["E"]) == (4.5, 5.0, 1.0)  # gaps 1+8, 2+8, 1
    assert cycle["F"] is None and cycle["G"] is None  # one order; none


def test_tier_progress_over_the_trailing_window(profiles: pl.DataFrame) -> None:
    spend, earned = _by_member(profiles, "tier_spend"), _by_member(profiles, "earned_tier")
    following, more = _by_member(profiles, "next_tier"), _by_member(profiles, "spend_to_next_tier")
    assert (spend["A"], earned["A"], following["A"], more["A"]) == (68.0, "silver", "gold", 32.0)
    # C's 2024 order is outside the 365 days: 90 counts of a monetary 100.
    assert (spend["C"], _by_member(profiles, "monetary")["C"]) == (90.0, 100.0)
    assert (earned["C"], more["C"]) == ("silver", 10.0)
    assert (earned["F"], following["F"], more["F"]) == ("platinum", None, None)
    assert (earned["H"], following["H"], more["H"]) == ("bronze", "silver", 25.0)
    narrow = build_member_profiles(_store(), REFERENCE, tier_rules=TierRules(window_days=15))
    assert _by_member(narrow, "tier_spend")["A"] == 30.0  # only the order of June 16


def test_scores_pass_through_and_are_null_without_them(profiles: pl.DataFrame) -> None:
    assert _by_member(profiles, "churn_risk") == {
        "A": 0.1, "B": 0.9, "C": None, "D": None, "E": None, "F": None, "G": None, "H": None,
    }  # fmt: skip
    assert _by_member(profiles, "churn_band")["B"] == "high"
    assert set(profiles["scores_as_of"].to_list()) == {datetime(2025, 7, 1)}  # naive UTC
    unscored = build_member_profiles(_store(), REFERENCE)
    for column in ("churn_risk", "churn_band", "expected_purchases", "expected_spend",
                   "scores_as_of"):  # fmt: skip
        assert unscored[column].null_count() == unscored.height, column


def test_attribute_segments_from_the_members_file(profiles: pl.DataFrame) -> None:
    assert _by_member(profiles, "region") == {
        "A": "North", "B": None, "C": None, "D": None, "E": None, "F": None, "G": None,
        "H": "South",
    }  # fmt: skip
    age_band, cohort = _by_member(profiles, "age_band"), _by_member(profiles, "join_cohort")
    assert (age_band["A"], age_band["B"], age_band["H"]) == ("35-44", "under-18", None)
    assert (cohort["A"], cohort["B"], cohort["C"]) == ("2024-Q3", "2025-Q1", None)


def test_age_is_from_the_birth_date_as_of_the_reference(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(
        "member_id,birth_date\nx,1990-07-15\ny,1990-06-30\nz,2030-01-01\nw,1900-01-01\n"
    )
    loaded = load_members(path).frame  # the loader parses the text into datetimes
    bands = _by_member(build_member_profiles(_store(), REFERENCE, members=loaded), "age_band")
    # 34 the day before the birthday, 35 on it; not born yet and 125 are unknown ages
    assert bands == {**dict.fromkeys("ABCDEFG"), "x": "25-34", "y": "35-44", "z": None, "w": None}
    dates = loaded.with_columns(pl.col("birth_date").cast(pl.Date))
    by_date = _by_member(build_member_profiles(_store(), REFERENCE, members=dates), "age_band")
    assert by_date == bands
    text = pl.DataFrame({"member_id": ["x"], "birth_date": ["1990-07-15"]})
    with pytest.raises(DataError, match=r"'birth_date' is String, not a date.*load_members"):
        build_member_profiles(_store(), REFERENCE, members=text)


def test_tier_rules_load_from_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text(
        'window_days = 90\ntiers = [{name = "a", min_spend = 0}, {name = "b", min_spend = 10}]\n'
    )
    (tmp_path / "rules.json").write_text(
        '{"window_days": 90, "tiers": [{"name": "a", "min_spend": 0}, '
        '{"name": "b", "min_spend": 10}]}'
    )
    from_toml = load_tier_rules(tmp_path / "rules.toml")
    assert from_toml == load_tier_rules(tmp_path / "rules.json")
    assert (from_toml.names, from_toml.thresholds) == (("a", "b"), (0.0, 10.0))
    written = write_tier_rules(from_toml, tmp_path)
    assert written.name == TIER_RULES_FILE and load_tier_rules(written) == from_toml


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"tiers": [{"name": "a", "min_spend": 5}]}', "first (lowest) tier must have min_spend 0"),
        ('{"tiers": [{"name": "a", "min_spend": 0}, {"name": "b", "min_spend": -1}]}',
         "tiers.1.min_spend"),
        ('{"tiers": [{"name": "a", "min_spend": 0}, {"name": "b", "min_spend": 0}]}',
         "must increase strictly"),
        ('{"window": 30}', "window: Extra inputs are not permitted"),
        ('{"window_days": 0}', "window_days"),
        ("{not json", "not valid JSON"),
    ],
)  # fmt: skip
def test_bad_tier_rules_name_the_file_and_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "tiers.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"tiers\.json") as raised:
        load_tier_rules(path)
    assert named in str(raised.value)


def test_tier_rules_must_be_json_or_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rules\.yaml.*\.json or \.toml"):
        load_tier_rules(tmp_path / "rules.yaml")


def test_profile_rows_are_found_by_member_index_or_by_id() -> None:
    frame = pl.DataFrame({"member_id": ["a", "b", "c"], "orders": [1, 2, 3]})
    rows = ProfileRows.build(frame, IdMap.from_values(["c", "x", "a"]))
    assert rows.row("a") == {"member_id": "a", "orders": 1}
    assert rows.row("b") == {"member_id": "b", "orders": 2}  # no events: not indexed
    assert rows.row("x") is None and rows.row("nobody") is None


def test_live_events_fold_into_last_purchase_orders_and_recency() -> None:
    data_end = datetime(2025, 6, 30, tzinfo=UTC)
    at = data_end.timestamp()
    row = {"last_purchase": datetime(2025, 6, 20), "frequency": 4, "recency_days": 10.0}
    untouched = fold_live(row, summarise_live([]), data_end)
    assert untouched == {"as_of": data_end, "last_purchase": datetime(2025, 6, 20, tzinfo=UTC),
                         "orders": 4, "recency_days": 10.0}  # fmt: skip
    day, hour = 86_400.0, 3_600.0
    live = summarise_live([("purchase", at + day), ("purchase", at + day + hour),
                           ("purchase", at + 3 * day), ("view", at + 4 * day)])  # fmt: skip
    assert (live.events, live.purchase_days) == (4, 2)
    folded = fold_live(row, live, data_end)
    assert folded["orders"] == 6 and folded["as_of"] == data_end + timedelta(days=4)
    assert folded["last_purchase"] == data_end + timedelta(days=3)
    assert folded["recency_days"] == pytest.approx(1.0)
    # A member who never bought: recency runs from the latest event, trained or live.
    browser = {"last_purchase": None, "frequency": 0, "recency_days": 5.0}
    viewed = LiveActivity(events=1, last_event=data_end + timedelta(days=2), last_purchase=None,
                          purchase_days=0)  # fmt: skip
    assert fold_live(browser, viewed, data_end)["recency_days"] == pytest.approx(0.0)
    assert fold_live(browser, viewed, data_end)["orders"] == 0
