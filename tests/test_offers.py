"""The offers file and the choice of offers: loading with errors that name the file, row and
field; at most one offer per member, within each offer's budget and cap, only to eligible
members, for the most expected incremental value; a reason for every member."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.errors import DataError, MissingColumnError
from features.offers import OFFER_COLUMNS, load_offers
from training.offers import (
    BUDGET_SPENT,
    CHOSEN,
    EXPECTED_INCREMENTAL_VALUE,
    NO_POSITIVE_VALUE,
    NOT_ELIGIBLE,
    NOT_SCORED,
    REASON,
    REASONS,
    OfferPolicy,
    choose_offers,
)

AS_OF = datetime(2026, 7, 1)
HEADER = "offer_id,kind,value,tiers,segments,categories,min_basket,budget,max_redemptions,"
HEADER += "valid_from,valid_to"


def _offers_file(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "offers.csv"
    path.write_text("\n".join((header, *rows)) + "\n")
    return path


def _offers(tmp_path: Path, *rows: str) -> pl.DataFrame:
    return load_offers(_offers_file(tmp_path, *rows))


def _members(**columns: list) -> pl.DataFrame:
    """Members at risk by default: churn risk 0.8, usual basket 40, tier gold, segment at-risk."""
    n = len(next(iter(columns.values())))
    defaults = {
        "member_id": [f"M{i}" for i in range(n)],
        "tier": ["gold"] * n,
        "segment": ["at-risk"] * n,
        "churn_risk": [0.8] * n,
        "expected_value": [40.0] * n,
    }
    return pl.DataFrame({**defaults, **columns})


def _chosen(answer: pl.DataFrame) -> dict[str, str | None]:
    return dict(answer.select("member_id", "offer_id").iter_rows())


def _reasons(answer: pl.DataFrame) -> dict[str, str]:
    return dict(answer.select("member_id", REASON).iter_rows())


# -- loading --------------------------------------------------------------------------------


def test_a_valid_file_loads_typed_with_lists_caps_and_validity(tmp_path: Path) -> None:
    offers = _offers(
        tmp_path,
        "TEN,percent_off,10,,at-risk|sleeping,,30,500,,2026-01-01,2026-12-31",
        "FIVE,Amount_Off,5,gold | platinum,,Snacks,,,100,,",
    )
    assert offers.columns == list(OFFER_COLUMNS)
    ten, five = offers.iter_rows(named=True)
    assert ten["kind"] == "percent_off" and ten["value"] == 10.0
    assert ten["tiers"] == [] and ten["segments"] == ["at-risk", "sleeping"]
    assert ten["budget"] == 500.0 and ten["max_redemptions"] is None
    assert ten["valid_from"] == datetime(2026, 1, 1) and ten["valid_to"] == datetime(2026, 12, 31)
    assert five["kind"] == "amount_off" and five["tiers"] == ["gold", "platinum"]
    assert five["categories"] == ["Snacks"] and five["min_basket"] == 0.0
    assert five["max_redemptions"] == 100 and five["budget"] is None
    assert five["valid_from"] is None and five["valid_to"] is None


def test_a_parquet_file_with_list_columns_loads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "offers.parquet"
    pl.DataFrame(
        {"offer_id": ["GIFT"], "kind": ["free_gift"], "value": [3.0], "tiers": [["gold"]],
         "max_redemptions": [10]}
    ).write_parquet(path)  # fmt: skip
    (gift,) = load_offers(path).iter_rows(named=True)
    assert gift["tiers"] == ["gold"] and gift["segments"] == [] and gift["max_redemptions"] == 10


def test_every_bad_row_and_field_is_named_in_one_error(tmp_path: Path) -> None:
    path = _offers_file(
        tmp_path,
        "OK,amount_off,5,,,,,50,,,",
        "BAD,percentage,10,,,,-1,,,soon,",
        "OK,points_multiplier,1,,,,,,2.5,,",
        "LATE,free_gift,2,,,,,20,,2026-08-01,2026-07-01",
        "PCT,percent_off,150,,,,,20,,,",
    )
    with pytest.raises(DataError) as error:
        load_offers(path)
    message = str(error.value)
    assert message.startswith(f"{path}: 9 problem(s)")
    for expected in (
        "row 2, field 'kind': kind must be one of percent_off, amount_off, free_gift, "
        "points_multiplier (got 'percentage')",
        "row 2, field 'min_basket': must not be negative (got '-1')",
        "row 2, field 'budget': set a budget or max_redemptions (or both)",
        "row 2, field 'valid_from': unparseable time (got 'soon')",
        "row 3, field 'offer_id': repeats an earlier row's offer_id (got 'OK')",
        "row 3, field 'value': for points_multiplier the value is the points multiplier, above 1",
        "row 3, field 'max_redemptions': must be a whole number of at least 1 (got '2.5')",
        "row 4, field 'valid_to': valid_to is before valid_from (got '2026-07-01')",
        "row 5, field 'value': for percent_off the value is the percent off, above 0 and at "
        "most 100 (got '150')",
    ):
        assert expected in message


def test_a_missing_required_column_or_an_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MissingColumnError, match="required column 'kind' is missing"):
        load_offers(_offers_file(tmp_path, "A,5", header="offer_id,value"))
    with pytest.raises(DataError, match="no offers in the file"):
        load_offers(_offers_file(tmp_path))


# -- choosing -------------------------------------------------------------------------------


def test_the_value_follows_the_documented_rule(tmp_path: Path) -> None:
    """Basket 40 below a threshold of 50: p = 0.2 x 40/50 = 0.16; gain = 0.3 x (0.8 x 50 +
    0.2 x 10) = 12.6; a gift costs 3; value = 0.16 x (12.6 - 3) = 1.536."""
    offers = _offers(tmp_path, "GIFT,free_gift,3,,,,50,100,,,")
    answer = choose_offers(_members(churn_risk=[0.8]), offers, as_of=AS_OF)
    assert answer[EXPECTED_INCREMENTAL_VALUE].item() == pytest.approx(1.536)
    assert answer[REASON].item() == f"{CHOSEN}: best of 1 offer(s) worth giving"


def test_each_member_gets_the_offer_worth_most_to_them(tmp_path: Path) -> None:
    offers = _offers(
        tmp_path, "SMALL,amount_off,2,,,,,1000,,,", "BIG,amount_off,8,,,,,1000,,,",
        "PCT,percent_off,10,,,,,1000,,,",
    )  # fmt: skip
    answer = choose_offers(_members(churn_risk=[0.8, 0.8]), offers, as_of=AS_OF)
    assert _chosen(answer) == {"M0": "SMALL", "M1": "SMALL"}  # the same gain, the least cost
    assert answer["member_id"].to_list() == ["M0", "M1"]


def test_no_offer_is_given_beyond_a_budget_or_cap(tmp_path: Path) -> None:
    offers = _offers(tmp_path, "FIVE,amount_off,5,,,,,12,,,", "GIFT,free_gift,3,,,,,,2,,")
    risks = [0.9, 0.5, 0.7, 0.3, 0.8, 0.6]
    answer = choose_offers(_members(churn_risk=risks), offers, as_of=AS_OF)
    given = answer.group_by("offer_id").len()
    counts = dict(given.iter_rows())
    assert counts["GIFT"] <= 2 and counts["FIVE"] * 5 <= 12
    assert counts["GIFT"] == 2 and counts["FIVE"] == 2 and counts[None] == 2
    # the members most at risk get an offer; the rest are told both budgets are spent
    assert set(answer.filter(pl.col("offer_id").is_null())["member_id"]) == {"M1", "M3"}
    assert _reasons(answer)["M1"] == f"{BUDGET_SPENT}: FIVE, GIFT"
    assert _reasons(answer)["M3"] == f"{BUDGET_SPENT}: GIFT"  # FIVE is not worth it to M3


def test_a_member_turned_away_gets_their_next_best_offer(tmp_path: Path) -> None:
    """Both prefer the gift; it has room for one, the member it is worth more per cost to."""
    offers = _offers(tmp_path, "GIFT,free_gift,1,,,,,,1,,", "FIVE,amount_off,5,,,,,100,,,")
    answer = choose_offers(_members(churn_risk=[0.5, 0.9]), offers, as_of=AS_OF)
    assert _chosen(answer) == {"M0": "FIVE", "M1": "GIFT"}
    assert (
        _reasons(answer)["M0"]
        == f"{CHOSEN}: best of 2 offer(s) worth giving; passed over spent GIFT"
    )


def test_offers_go_only_to_the_tiers_segments_and_categories_they_name(tmp_path: Path) -> None:
    offers = _offers(
        tmp_path, "GOLD,amount_off,5,gold,,,,100,,,", "LAPSED,amount_off,5,,sleeping,,,100,,,",
        "SNACKS,amount_off,5,,,Snacks,,100,,,",
    )  # fmt: skip
    members = _members(
        tier=["gold", "silver", None, "silver"],
        segment=["active", "sleeping", "at-risk", "active"],
        member_categories=[[], [], ["Snacks", "Tea"], ["Tea"]],
    )
    answer = choose_offers(members, offers, as_of=AS_OF)
    assert _chosen(answer) == {"M0": "GOLD", "M1": "LAPSED", "M2": "SNACKS", "M3": None}
    assert _reasons(answer)["M3"] == (
        f"{NOT_ELIGIBLE}: no offer valid on 2026-07-01 is open to tier silver, segment active"
    )
    without_categories = choose_offers(members.drop("member_categories"), offers, as_of=AS_OF)
    assert _chosen(without_categories)["M2"] is None  # a category offer needs member categories


def test_offers_outside_their_validity_are_not_given(tmp_path: Path) -> None:
    offers = _offers(tmp_path, "SUMMER,amount_off,5,,,,,100,,2026-06-01,2026-08-31")
    members = _members(churn_risk=[0.8])
    assert _chosen(choose_offers(members, offers, as_of=AS_OF)) == {"M0": "SUMMER"}
    late = choose_offers(members, offers, as_of=datetime(2026, 9, 1))
    assert _reasons(late) == {"M0": f"{NOT_ELIGIBLE}: no offer is valid on 2026-09-01"}


def test_loyal_and_unscored_members_get_no_offer_with_the_reason(tmp_path: Path) -> None:
    offers = _offers(tmp_path, "FIVE,amount_off,5,,,,,100,,,")
    members = _members(churn_risk=[0.0, None], expected_value=[80.0, 50.0])
    answer = choose_offers(members, offers, as_of=AS_OF)
    assert answer["offer_id"].to_list() == [None, None]
    assert answer[EXPECTED_INCREMENTAL_VALUE].to_list() == [None, None]
    reasons = _reasons(answer)
    # a member sure to buy anyway: p 0.2 x (0 gain - 5 cost) = -1
    assert reasons["M0"] == f"{NO_POSITIVE_VALUE}: the best, FIVE, is worth -1.0"
    assert reasons["M1"].startswith(f"{NOT_SCORED}: ")


def test_propensity_and_policy_change_the_value(tmp_path: Path) -> None:
    offers = _offers(tmp_path, "FIVE,amount_off,5,,,,,100,,,")
    members = _members(churn_risk=[0.8, 0.8], propensity=[0.5, 0.1])
    answer = choose_offers(members, offers, as_of=AS_OF, policy=OfferPolicy(margin=0.5))
    # gain = 0.5 x 0.8 x 40 = 16, minus 5: 11 per redemption
    assert answer[EXPECTED_INCREMENTAL_VALUE].to_list() == pytest.approx([5.5, 1.1])


def test_every_reason_starts_with_a_known_word_and_members_are_unique(tmp_path: Path) -> None:
    offers = _offers(tmp_path, "FIVE,amount_off,5,gold,,,,10,,,")
    members = _members(tier=["gold", "gold", "gold", "silver"], churn_risk=[0.9, 0.8, 0.0, 0.9])
    answer = choose_offers(members, offers, as_of=AS_OF)
    assert {reason.split(":")[0] for reason in answer[REASON]} <= set(REASONS)
    assert answer.height == members.height
    with pytest.raises(DataError, match="repeat member_id 'M0'"):
        choose_offers(pl.concat([members, members.head(1)]), offers, as_of=AS_OF)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_campaigns_fill_but_never_exceed_budgets_caps_or_eligibility(
    tmp_path: Path, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    members = _members(
        tier=rng.choice(["silver", "gold"], n).tolist(),
        churn_risk=rng.uniform(0, 1, n).tolist(),
        expected_value=rng.gamma(2, 20, n).tolist(),
        propensity=rng.uniform(0, 0.6, n).tolist(),
    )
    offers = _offers(
        tmp_path, "A,amount_off,4,gold,,,,60,,,", "B,amount_off,2,,,,,,25,,",
        "G,free_gift,3,,,,20,45,10,,",
    )  # fmt: skip
    answer = choose_offers(members, offers, as_of=AS_OF).join(members, on="member_id")
    counts = dict(answer.group_by("offer_id").len().iter_rows())
    # more members are worth an offer than the offers have room for: each is used up, no more
    assert counts["A"] * 4 == 60 and counts["B"] == 25 and counts["G"] == 10
    assert (answer.filter(pl.col("offer_id") == "A")["tier"] == "gold").all()
    given = answer.filter(pl.col("offer_id").is_not_null())
    assert (given[EXPECTED_INCREMENTAL_VALUE] > 0).all()
    assert (given[REASON].str.starts_with(CHOSEN)).all() and given.height > 0
