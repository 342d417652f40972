"""The uplift report on hand-made ledgers: what counts in a window, the figures per group and
breakdown, and the intervals against published worked examples."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from features.errors import ConfigError
from training.campaigns.ledger import CampaignSend
from training.uplift import campaign_uplift
from training.uplift_intervals import (
    difference_of_means,
    difference_of_proportions,
    ratio_of_means,
    ratio_of_proportions,
)

DAY = 86_400.0
SENT = 1_750_000_000.0


def _send(member: str, group: str, *, offer: str | None = None, at: float = SENT) -> CampaignSend:
    return CampaignSend("c-1", "winback", member, group, ("i-sent", "i-also"), offer, at)  # type: ignore[arg-type]


def _purchases(rows: list[tuple[str, str, float, float]], event: str = "purchase") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "member_id": [row[0] for row in rows],
            "item_id": [row[1] for row in rows],
            "event": [event] * len(rows),
            "timestamp": [row[2] for row in rows],
            "price": [row[3] for row in rows],
        }
    )


def _figures(report_slice: dict, group: str) -> tuple[int, int, int, float]:
    outcome = report_slice[group]
    return (
        outcome["members"],
        outcome["converted"],
        outcome["sent_item_converted"],
        outcome["revenue"],
    )


def test_only_purchases_inside_each_members_window_count() -> None:
    sends = [
        _send("t1", "treatment", offer="o-10"),
        _send("t2", "treatment", offer="o-10"),
        _send("t3", "treatment"),
        _send("h1", "holdout"),
        _send("h2", "holdout"),
        _send("late", "treatment", at=SENT + 5 * DAY),  # its own window starts later
    ]
    purchases = pl.concat(
        [
            _purchases(
                [
                    ("t1", "i-sent", SENT + DAY, 10.0),  # sent item: converts, redeems
                    ("t2", "i-other", SENT + 2 * DAY, 4.0),  # converts, not a sent item
                    ("t3", "i-sent", SENT - 1.0, 99.0),  # before the send
                    ("t3", "i-sent", SENT + 15 * DAY, 99.0),  # after the 14-day window
                    ("h1", "i-also", SENT + 13 * DAY, 6.0),  # would-be item
                    ("late", "i-sent", SENT + 3 * DAY, 50.0),  # before its own send
                    ("stranger", "i-sent", SENT + DAY, 7.0),  # not in the campaign
                ]
            ),
            _purchases([("h2", "i-sent", SENT + DAY, 0.0)], event="view"),
        ]
    )
    report = campaign_uplift(sends, purchases, window_days=14).as_dict()
    overall = report["overall"]
    assert _figures(overall, "treatment") == (4, 2, 1, 14.0)
    assert _figures(overall, "holdout") == (2, 1, 1, 6.0)
    assert overall["treatment"]["offers"] == 2
    assert overall["treatment"]["redeemed"] == 1
    assert overall["treatment"]["revenue_per_member"] == pytest.approx(3.5)
    conversion = overall["uplift"][0]
    assert conversion["metric"] == "conversion"
    assert conversion["absolute"]["value"] == pytest.approx(2 / 4 - 1 / 2)
    assert report["first_sent_at"] == SENT
    assert report["last_sent_at"] == SENT + 5 * DAY
    # A longer window takes t3's late purchase in.
    longer = campaign_uplift(sends, purchases, window_days=16).as_dict()["overall"]
    assert _figures(longer, "treatment") == (4, 3, 2, 113.0)


def test_breakdowns_by_segment_and_tier_cover_every_member() -> None:
    sends = [_send(f"t{i}", "treatment") for i in range(4)] + [
        _send(f"h{i}", "holdout") for i in range(4)
    ]
    purchases = _purchases([("t0", "i-sent", SENT + DAY, 5.0), ("h3", "i-sent", SENT + DAY, 5.0)])
    attributes = pl.DataFrame(
        {
            "member_id": ["t0", "t1", "h0", "h1", "t2", "h2"],
            "segment": ["active", "active", "active", "active", "at-risk", "at-risk"],
            "tier": ["gold", "silver", "gold", "silver", None, None],
        }
    )
    report = campaign_uplift(sends, purchases, attributes=attributes).as_dict()
    segments = {part["key"]: part for part in report["breakdowns"]["segment"]}
    assert sorted(segments) == ["active", "at-risk", "unknown"]
    assert _figures(segments["active"], "treatment") == (2, 1, 1, 5.0)
    assert _figures(segments["unknown"], "holdout") == (1, 1, 1, 5.0)
    tiers = {part["key"]: part["treatment"]["members"] for part in report["breakdowns"]["tier"]}
    assert tiers == {"gold": 1, "silver": 1, "unknown": 2}
    assert sum(tiers.values()) == report["overall"]["treatment"]["members"]


def test_purchases_without_prices_leave_revenue_out() -> None:
    sends = [_send("t", "treatment"), _send("h", "holdout")]
    purchases = _purchases([("t", "i-sent", SENT + DAY, 1.0)]).drop("price")
    overall = campaign_uplift(sends, purchases).as_dict()["overall"]
    assert overall["treatment"]["revenue"] is None
    assert [part["metric"] for part in overall["uplift"]] == ["conversion", "sent_item_conversion"]


def test_a_report_needs_one_campaign_and_the_purchase_columns() -> None:
    purchases = _purchases([])
    with pytest.raises(ConfigError, match="no sends"):
        campaign_uplift([], purchases)
    other = CampaignSend("c-2", "winback", "x", "holdout", (), None, SENT)
    with pytest.raises(ConfigError, match="one campaign"):
        campaign_uplift([_send("t", "treatment"), other], purchases)
    with pytest.raises(ConfigError, match=r"lack the columns \['timestamp'\]"):
        campaign_uplift([_send("t", "treatment")], purchases.drop("timestamp"))
    with pytest.raises(ConfigError, match="window-days"):
        campaign_uplift([_send("t", "treatment")], purchases, window_days=0)


def test_newcombe_interval_matches_his_worked_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 - 48/80,
    # method 10 (hybrid score): 0.0524 to 0.3339.
    estimate = difference_of_proportions(56, 70, 48, 80)
    assert estimate.value == pytest.approx(0.2)
    assert (estimate.low, estimate.high) == pytest.approx((0.0524, 0.3339), abs=5e-5)


def test_katz_interval_of_the_ratio_is_the_log_normal_one() -> None:
    estimate = ratio_of_proportions(10, 100, 5, 100)
    spread = 1.959964 * math.sqrt(1 / 10 - 1 / 100 + 1 / 5 - 1 / 100)
    assert estimate.value == pytest.approx(1.0)
    assert estimate.low == pytest.approx(2 * math.exp(-spread) - 1, rel=1e-5)
    assert estimate.high == pytest.approx(2 * math.exp(spread) - 1, rel=1e-5)
    # No holdout conversion: the ratio has no finite bound, so no interval at all.
    assert ratio_of_proportions(3, 100, 0, 100).value is None


def test_mean_intervals_hold_the_true_difference_on_most_seeds() -> None:
    """Revenue is skewed (most members spend nothing): Welch and the delta method still cover
    the truth of a zero-inflated lognormal about 95% of the time."""
    rng = np.random.default_rng(7)

    def revenue(rate: float, size: int) -> np.ndarray:
        return (rng.random(size) < rate) * rng.lognormal(3.0, 0.8, size)

    mean_spend = math.exp(3.0 + 0.8**2 / 2)
    true_difference = (0.12 - 0.08) * mean_spend
    difference_hits = ratio_hits = 0
    trials = 200
    for _ in range(trials):
        treated, held = revenue(0.12, 2000), revenue(0.08, 2000)
        difference = difference_of_means(treated, held)
        ratio = ratio_of_means(treated, held)
        difference_hits += difference.low <= true_difference <= difference.high
        ratio_hits += ratio.low <= 0.12 / 0.08 - 1 <= ratio.high
    assert difference_hits / trials >= 0.9
    assert ratio_hits / trials >= 0.9
