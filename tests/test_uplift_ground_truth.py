"""The uplift report against a planted campaign effect on small generated stores: its 95%
intervals hold the true uplift, and a real effect is told apart from none."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from features.errors import ConfigError
from features.synthetic import StoreConfig, generate_store
from features.synthetic.campaign import CampaignEffect, plant_campaign_effect, simulate_sends
from training.planted_campaign import plant_store_campaign
from training.uplift import campaign_uplift

SMALL_STORE = StoreConfig(members=1500, items=120, events=12_000, bundles=4)


def _uplift(report: dict, metric: str) -> dict:
    return next(part for part in report["overall"]["uplift"] if part["metric"] == metric)


def _holds(estimate: dict, truth: float) -> bool:
    return estimate["low"] <= truth <= estimate["high"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_intervals_hold_the_planted_uplift(tmp_path: Path, seed: int) -> None:
    store = generate_store(StoreConfig(**{**SMALL_STORE.__dict__, "seed": seed}), tmp_path)
    effect = CampaignEffect(base_rate=0.08, treated_rate=0.16, other_rate=0.1, seed=seed)
    planted = plant_store_campaign(store.out_dir, effect)
    report = campaign_uplift(
        planted.sends, planted.purchases, window_days=effect.window_days,
        attributes=planted.attributes,
    ).as_dict()  # fmt: skip
    for metric, conversion in (
        ("sent_item_conversion", "sent_item"),
        ("conversion", "any_purchase"),
    ):
        truth = effect.truth(conversion)  # type: ignore[arg-type]
        uplift = _uplift(report, metric)
        assert _holds(uplift["absolute"], truth.absolute), (metric, uplift, truth)
        assert _holds(uplift["relative"], truth.relative), (metric, uplift, truth)
    # The store's own history ends before the sends: nothing of it is counted.
    counted = (
        report["overall"]["treatment"]["converted"] + report["overall"]["holdout"]["converted"]
    )
    assert counted <= planted.planted.height
    # A doubled rate on 1,500 members is told apart from no effect.
    assert _uplift(report, "sent_item_conversion")["absolute"]["low"] > 0
    segments = report["breakdowns"]["segment"]
    assert (
        sum(part["treatment"]["members"] for part in segments)
        == (report["overall"]["treatment"]["members"])
    )


def test_no_planted_effect_gives_an_interval_around_zero(tmp_path: Path) -> None:
    store = generate_store(SMALL_STORE, tmp_path)
    effect = CampaignEffect(base_rate=0.1, treated_rate=0.1, seed=5)
    planted = plant_store_campaign(store.out_dir, effect)
    report = campaign_uplift(planted.sends, planted.purchases).as_dict()
    assert _holds(_uplift(report, "sent_item_conversion")["absolute"], 0.0)


def test_planting_is_seeded_and_stays_inside_the_window() -> None:
    items = pl.DataFrame({"item_id": [f"i{n}" for n in range(10)], "price": [2.0] * 10})
    members = [f"m{n}" for n in range(300)]
    sends = simulate_sends(members, items["item_id"].to_list(), sent_at=1e9, seed=4)
    effect = CampaignEffect(base_rate=0.2, treated_rate=0.5, other_rate=0.3, seed=4)
    first = plant_campaign_effect(sends, items, effect)
    assert first.equals(plant_campaign_effect(sends, items, effect))
    seconds = first["timestamp"].dt.epoch("s")
    assert seconds.min() > 1e9 and seconds.max() < 1e9 + effect.window_days * 86_400
    held = sends.filter(pl.col("group") == "holdout").height
    assert 0.4 < held / sends.height < 0.6


def test_an_effect_outside_the_rates_is_refused() -> None:
    with pytest.raises(ConfigError, match="treated_rate must be in"):
        CampaignEffect(treated_rate=1.5)
    with pytest.raises(ConfigError, match="items_per_member"):
        simulate_sends(["m"], ["i"], sent_at=0.0, items_per_member=1)
