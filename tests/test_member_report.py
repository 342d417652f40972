"""The member program's distributions in ``kpis.json`` (training/member_kpis.py,
member_distributions.py, member_cohorts.py) on tables worked out by hand, and the HTML member
report drawn from them (training/member_report.py)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from features.presets import get_preset
from features.validate import load_interactions
from training.member_distributions import (
    churn_distribution,
    purchase_frequency,
    rfm_grid,
    value_by_segment,
)
from training.member_kpis import member_kpis
from training.member_profiles import build_member_profiles
from training.member_report import MEMBER_FIGURES, MEMBER_REPORT_FILE, write_member_report

REFERENCE = datetime(2025, 6, 30, 12)


def _purchase(member: str, when: str, order: str, price: float = 10.0) -> dict[str, Any]:
    return {"member_id": member, "item_id": "I1", "event": "purchase",
            "timestamp": datetime.fromisoformat(when), "quantity": 1.0, "price": price,
            "order_id": order}  # fmt: skip


@pytest.fixture
def interactions() -> pl.DataFrame:
    return pl.DataFrame([
        _purchase("A", "2025-02-03T10:00", "a1", 20.0),
        _purchase("A", "2025-04-03T10:00", "a2", 20.0),
        _purchase("A", "2025-04-20T10:00", "a3", 20.0),  # A: 2 orders in April
        _purchase("B", "2025-01-05T10:00", "b1", 10.0),  # the data's first event
        _purchase("B", "2025-03-05T10:00", "b2", 10.0),
        _purchase("C", "2025-02-10T10:00", "c1", 40.0),
        _purchase("C", "2025-06-30T12:00", "c2", 0.0),  # the reference time: last event
    ])  # fmt: skip


@pytest.fixture
def members() -> pl.DataFrame:
    """A joined in January (before buying); D is in the members file only, with no date."""
    return pl.DataFrame({
        "member_id": ["A", "D"],
        "joined_at": [datetime(2025, 1, 15), None],
    })  # fmt: skip


def _scored(profiles: pl.DataFrame, risks: list[float], bands: list[str]) -> pl.DataFrame:
    """Profiles with deterministic score columns, shaped as training.member_models writes them."""
    return profiles.with_columns(
        pl.Series("churn_risk", risks, dtype=pl.Float64),
        pl.Series("churn_band", bands, dtype=pl.Utf8),
        (pl.col("frequency") * 0.5).cast(pl.Float64).alias("expected_purchases"),
        (pl.col("monetary") * 0.25).alias("expected_spend"),
    )


def test_cohort_retention_by_hand(interactions: pl.DataFrame, members: pl.DataFrame) -> None:
    profiles = build_member_profiles(interactions, REFERENCE, members=members)
    cohorts = member_kpis(interactions, profiles, REFERENCE, members=members)["cohorts"]
    assert cohorts["months_after"] == list(range(1, 13))
    by_month = {row["cohort"]: row for row in cohorts["cohorts"]}
    # January: A (joined_at) and B (first purchase). Feb: A; Mar: B; Apr: A; then none, and
    # from July on the data does not reach (null, not 0).
    assert by_month["2025-01"]["members"] == 2
    assert by_month["2025-01"]["retention"] == [0.5, 0.5, 0.5, 0.0, 0.0] + [None] * 7
    # February: C (first purchase); C's June order (k = 4) is on the reference day, and June
    # is complete because the data reaches its last day.
    assert by_month["2025-02"]["retention"] == [0.0, 0.0, 0.0, 1.0] + [None] * 8
    assert list(by_month) == ["2025-01", "2025-02"]
    assert (cohorts["members_by_joined_at"], cohorts["members_by_first_purchase"]) == (1, 2)
    assert cohorts["members_without_cohort"] == 1  # D: no joined_at, no purchase


def test_a_month_the_data_ends_in_is_not_observed(interactions: pl.DataFrame) -> None:
    early = datetime(2025, 6, 20)
    profiles = build_member_profiles(interactions, early)
    kpis = member_kpis(interactions, profiles, early)
    january, february = kpis["cohorts"]["cohorts"]
    assert january["retention"][3] == 0.0 and january["retention"][4] is None  # May; June
    # February: A and C by first purchase (no members file); A bought in April.
    assert february["retention"][:4] == [0.0, 0.5, 0.0, None]


def test_monthly_repurchase_rate_and_segment_sizes_by_hand(interactions: pl.DataFrame) -> None:
    profiles = build_member_profiles(interactions, REFERENCE)
    kpis = member_kpis(interactions, profiles, REFERENCE)
    months = {m["month"]: m for m in kpis["months"]}
    assert months["2025-04"]["repurchase_rate"] == 1.0  # A, 2 orders
    assert months["2025-02"]["repurchase_rate"] == 0.0  # A and C, 1 order each
    sizes = {row["segment"]: row for row in kpis["segment_sizes"]}
    assert list(sizes) == ["new", "active", "at-risk", "sleeping", "churned"]
    # A last bought 2025-04-20 (71 days before): active; B 2025-03-05 (117 days): at-risk;
    # C bought on the reference day: active. Revenue 60 + 20 + 40 = 120.
    assert (sizes["active"]["members"], sizes["at-risk"]["members"]) == (2, 1)
    assert sizes["active"]["revenue_share"] == pytest.approx(100 / 120)
    assert sizes["at-risk"]["member_share"] == pytest.approx(1 / 3)
    assert sizes["churned"] == {"segment": "churned", "members": 0, "member_share": 0.0,
                                "revenue": 0.0, "revenue_share": 0.0}  # fmt: skip


def test_purchase_frequency_bins_and_the_rfm_grid() -> None:
    profiles = pl.DataFrame({
        "frequency": [0, 1, 1, 4, 5, 9, 10, 30],
        "r_score": [1, 1, 2, 3, 4, 5, 5, 5],
        "f_score": [1, 1, 2, 3, 4, 5, 5, 5],
        "monetary": [0.0, 10.0, 20.0, 40.0, 50.0, 90.0, 100.0, 300.0],
    })  # fmt: skip
    bins = {row["label"]: row["members"] for row in purchase_frequency(profiles)}
    assert bins == {"0": 1, "1": 2, "2": 0, "3": 0, "4": 1, "5-9": 2, "10+": 2}
    grid = rfm_grid(profiles)
    cells = {(c["r_score"], c["f_score"]): c for c in grid["cells"]}
    assert len(cells) == 25 and sum(c["members"] for c in cells.values()) == profiles.height
    assert (cells[(1, 1)]["members"], cells[(1, 1)]["mean_monetary"]) == (2, 5.0)
    assert cells[(5, 5)]["mean_monetary"] == pytest.approx(490 / 3)
    assert cells[(1, 5)] == {"r_score": 1, "f_score": 5, "members": 0, "mean_monetary": None}


def test_churn_distribution_counts_tenths_and_bands() -> None:
    profiles = pl.DataFrame({
        "churn_risk": [0.05, 0.15, 0.19, 0.95, 1.0, None],
        "churn_band": ["low", "low", "low", "high", "high", None],
    })  # fmt: skip
    churn = churn_distribution(profiles, 90)
    assert churn["available"] and churn["informative"] and churn["note"] is None
    assert [row["members"] for row in churn["histogram"]] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert churn["histogram"][9] == {"lower": 0.9, "upper": 1.0, "members": 2}  # 1.0 inside
    assert churn["bands"] == [{"band": "low", "members": 3}, {"band": "high", "members": 2}]
    assert churn["scored_members"] == 5 and churn["mean_risk"] == pytest.approx(2.34 / 5)


def test_an_uninformative_or_missing_churn_model_draws_no_distribution() -> None:
    flat = pl.DataFrame({"churn_risk": [0.43] * 4, "churn_band": ["uninformative"] * 4})
    churn = churn_distribution(flat, 90)
    assert churn["available"] and churn["informative"] is False and churn["histogram"] == []
    assert churn["bands"] == [{"band": "uninformative", "members": 4}]
    assert "base rate" in churn["note"] and churn["mean_risk"] == pytest.approx(0.43)
    for unscored in (pl.DataFrame({"x": [1]}), pl.DataFrame({"churn_risk": [None, None]})):
        missing = churn_distribution(unscored, None)
        assert missing["available"] is False and missing["histogram"] == []
        assert "not scored" in missing["note"]


def test_value_by_segment_sums_and_means_by_hand() -> None:
    profiles = pl.DataFrame({
        "segment": ["active", "active", "churned"],
        "expected_purchases": [1.0, 3.0, 0.5],
        "expected_spend": [10.0, 30.0, 2.0],
    })  # fmt: skip
    value = value_by_segment(profiles, 90)
    assert value["spend_available"] and value["note"] is None
    assert value["rows"][0] == {
        "segment": "active", "members": 2, "expected_purchases_sum": 4.0,
        "expected_purchases_mean": 2.0, "expected_spend_sum": 40.0, "expected_spend_mean": 20.0,
    }  # fmt: skip
    no_prices = value_by_segment(profiles.with_columns(pl.lit(None).alias("expected_spend")), 90)
    assert no_prices["rows"][1]["expected_spend_sum"] is None
    assert no_prices["rows"][1]["expected_purchases_sum"] == 0.5
    assert not no_prices["spend_available"] and "no prices" in no_prices["note"]
    assert value_by_segment(profiles.drop("expected_purchases"), 90)["available"] is False


def _images(html: str) -> list[str]:
    return re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)


def test_the_report_draws_every_figure_from_the_kpis(
    interactions: pl.DataFrame, members: pl.DataFrame, tmp_path: Path
) -> None:
    profiles = build_member_profiles(interactions, REFERENCE, members=members)
    scored = _scored(profiles, [0.1, 0.5, 0.9, 0.7], ["low", "medium", "high", "high"])
    kpis = json.loads(json.dumps(member_kpis(interactions, scored, REFERENCE, members=members)))
    path = write_member_report(kpis, tmp_path / MEMBER_REPORT_FILE)
    html = path.read_text()
    assert len(_images(html)) == len(MEMBER_FIGURES) == 8
    # The numbers of kpis.json, as the dashboard shows them.
    sizes = {row["segment"]: row for row in kpis["segment_sizes"]}
    assert f"{100 * sizes['active']['revenue_share']:.1f}%" in html
    assert "<td>2025-01</td><td>2</td><td>50.0%</td>" in html  # the cohort table's row
    assert html.count("Churn risk") == 1 and "not scored" not in html


def test_the_report_says_why_a_figure_is_missing(
    interactions: pl.DataFrame, tmp_path: Path
) -> None:
    profiles = build_member_profiles(interactions, REFERENCE)
    flat = _scored(profiles, [0.4] * 3, ["uninformative"] * 3)
    kpis = member_kpis(interactions, flat, REFERENCE)
    kpis["definitions"] = {**kpis["definitions"], "hostile": "<script>alert(1)</script>"}
    html = write_member_report(kpis, tmp_path / "flat.html").read_text()
    captions = _images(html)
    assert MEMBER_FIGURES["churn"][0] not in captions and len(captions) == 7
    assert "base rate" in html and "<script>" not in html
    # A kpis.json of an artifact trained before these figures existed: the old figures only.
    old = {key: kpis[key] for key in ("reference_time", "data_start", "window_days",
                                      "definitions", "figures", "months")}  # fmt: skip
    old["months"] = [{k: v for k, v in m.items() if k != "repurchase_rate"} for m in old["months"]]
    assert _images(write_member_report(old, tmp_path / "old.html").read_text()) == [
        MEMBER_FIGURES["months"][0]
    ]


def test_cohorts_on_online_retail_agree_with_a_direct_count(online_retail_path: Path) -> None:
    """On the real file: the first cohort's retention, counted here with plain sets."""
    frame = load_interactions(online_retail_path, preset=get_preset("online-retail")).frame
    reference = frame.get_column("timestamp").max()
    profiles = build_member_profiles(frame, reference)
    kpis = member_kpis(frame, profiles, reference)
    buys = frame.filter(pl.col("event") == "purchase").select(
        "member_id", pl.col("timestamp").dt.strftime("%Y-%m").alias("month")
    )
    first = buys.group_by("member_id").agg(pl.col("month").min())
    december = set(first.filter(pl.col("month") == "2010-12").get_column("member_id"))
    january = set(buys.filter(pl.col("month") == "2011-01").get_column("member_id"))
    [cohort] = [row for row in kpis["cohorts"]["cohorts"] if row["cohort"] == "2010-12"]
    assert cohort["members"] == len(december) == 885
    assert cohort["retention"][0] == pytest.approx(len(december & january) / len(december))
    assert cohort["retention"][-1] is None  # 2011-12: the data ends on the 9th
    assert sum(row["members"] for row in kpis["purchase_frequency"]) == profiles.height
    assert sum(row["revenue_share"] for row in kpis["segment_sizes"]) == pytest.approx(1.0)
