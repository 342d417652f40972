"""Purchase cycles on hand-made purchases whose medians, shrinkage and repeatable verdicts are
worked out by hand (features.purchase_cycles)."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from features import columns as col
from features.purchase_cycles import CycleRules, purchase_cycles

START = datetime(2026, 1, 1, 9)


def _rows(*lines: tuple[str, str, float, str | None], event: str = col.PURCHASE) -> pl.DataFrame:
    """(member, item, day, order id) purchase lines."""
    return pl.DataFrame(
        {
            col.MEMBER_ID: [line[0] for line in lines],
            col.ITEM_ID: [line[1] for line in lines],
            col.TIMESTAMP: [START + timedelta(days=line[2]) for line in lines],
            col.EVENT: [event] * len(lines),
            col.ORDER_ID: [line[3] for line in lines],
        },
        schema_overrides={col.TIMESTAMP: pl.Datetime("us"), col.ORDER_ID: pl.Utf8},
    )


#: a buys X on days 0, 10 and 30 (two lines of X in order a1: one occasion); b on days 0 and
#: 20; c once. Y: d once. A view of X by e and a purchase without an order id by f (day 5).
PURCHASES = pl.concat([
    _rows(("a", "X", 0, "a1"), ("a", "X", 0.01, "a1"), ("a", "X", 10, "a2"), ("a", "X", 30, "a3"),
          ("b", "X", 0, "b1"), ("b", "X", 20, "b2"), ("c", "X", 3, "c1"), ("d", "Y", 1, "d1"),
          ("f", "Y", 5, None), ("f", "Y", 5.2, None)),
    _rows(("e", "X", 2, "e1"), ("e", "X", 4, "e2"), event=col.VIEW),
])  # fmt: skip


def _by(frame: pl.DataFrame, **keys: str) -> dict:
    [row] = frame.filter(*(pl.col(name) == value for name, value in keys.items())).to_dicts()
    return row


def test_item_medians_pool_every_interval_and_shrinkage_follows_the_formula() -> None:
    found = purchase_cycles(PURCHASES)
    x = _by(found.items, item_id="X")
    # Intervals 10, 20 (a) and 20 (b): median 20 of 3; buyers a, b, c; rebuyers a and b.
    assert (x["buyers"], x["rebuyers"], x["intervals"]) == (3, 2, 3)
    assert x["median_interval_days"] == pytest.approx(20.0)
    assert x["rebuy_rate"] == pytest.approx(2 / 3)
    a = _by(found.member_items, member_id="a", item_id="X")
    assert a["occasions"] == 3  # the two lines of order a1 are one occasion
    assert a["own_interval_days"] == pytest.approx(15.0)
    assert a["cycle_days"] == pytest.approx((2 * 15 + 2 * 20) / (2 + 2))
    assert (a["first_purchase"], a["last_purchase"]) == (START, START + timedelta(days=30))
    b = _by(found.member_items, member_id="b", item_id="X")
    assert b["cycle_days"] == pytest.approx((1 * 20 + 2 * 20) / 3)
    c = _by(found.member_items, member_id="c", item_id="X")
    assert c["own_interval_days"] is None and c["cycle_days"] == pytest.approx(20.0)
    # Nobody bought Y twice: no cycle at all. f's two lines without an order id on one UTC day
    # are one order (features.baskets.order_key), so one occasion.
    assert _by(found.member_items, member_id="f", item_id="Y")["occasions"] == 1
    assert _by(found.member_items, member_id="d", item_id="Y")["cycle_days"] is None
    assert _by(found.items, item_id="Y")["median_interval_days"] is None
    assert "e" not in found.member_items["member_id"].to_list()  # views are no purchases
    assert found.member_items.select("member_id", "item_id").rows() == sorted(
        found.member_items.select("member_id", "item_id").rows()
    )


def test_the_prior_strength_is_how_many_intervals_the_items_cycle_weighs() -> None:
    strong = purchase_cycles(PURCHASES, rules=CycleRules(prior_strength=8.0))
    a = _by(strong.member_items, member_id="a", item_id="X")
    assert a["cycle_days"] == pytest.approx((2 * 15 + 8 * 20) / 10)


def test_repeatable_by_the_data_or_by_the_catalog() -> None:
    catalog = pl.DataFrame({
        col.ITEM_ID: ["X", "Y", "Z", "Z"], col.REPEATABLE: [False, None, True, False],
    })  # fmt: skip
    rules = CycleRules(min_buyers=3, min_rebuy_rate=0.5)
    found = purchase_cycles(PURCHASES, catalog, rules)
    verdicts = {row["item_id"]: (row["repeatable_by_data"], row["repeatable"])
                for row in found.items.to_dicts()}  # fmt: skip
    # X: 3 buyers, 2/3 rebuy; Y: 2 buyers (too few); Z: never bought, the catalog's first row.
    assert verdicts == {"X": (True, True), "Y": (False, False), "Z": (False, True)}
    assert _by(found.items, item_id="Z")["buyers"] == 0
    fewer = purchase_cycles(PURCHASES, catalog, CycleRules(min_buyers=4, min_rebuy_rate=0.5))
    assert not _by(fewer.items, item_id="X")["repeatable"]
    # The default rules want 20 buyers: without a catalog nothing here is repeatable.
    assert not purchase_cycles(PURCHASES).items["repeatable"].any()
