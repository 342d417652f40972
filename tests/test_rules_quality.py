"""Rule quality on held-out baskets: the vectorised figures against a plain loop, and a case
worked by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from features.baskets import Baskets
from training.config import RuleConfig
from training.rules import association_rules
from training.rules_quality import LISTS, complement_quality


def baskets_of(rows: list[list[str]], names: list[str]) -> Baskets:
    index = {name: position for position, name in enumerate(names)}
    dense = np.zeros((len(rows), len(names)), dtype=bool)
    for row, items in enumerate(rows):
        dense[row, [index[item] for item in items]] = True
    return Baskets(sp.csr_matrix(dense), np.array(names, dtype=object))


def reference(rules: pl.DataFrame, train: Baskets, test: Baskets, n: int) -> dict[str, dict]:
    """The module's definitions, one anchor at a time."""
    counts = np.asarray(train.matrix.sum(axis=0)).ravel()
    names = train.item_names.tolist()
    popular_order = [names[i] for i in np.argsort(-counts, kind="stable")]
    single = rules.filter(pl.col("antecedents").list.len() == 1).sort(
        ["lift", "confidence", "support"], descending=True
    )
    by_anchor: dict[str, list[str]] = {}
    for row in single.iter_rows(named=True):
        by_anchor.setdefault(row["antecedents"][0], []).append(row["consequent"])
    hits = dict.fromkeys(LISTS, 0)
    recalled = dict.fromkeys(LISTS, 0.0)
    anchors = 0
    test_names = test.item_names.tolist()
    for row in range(test.n_baskets):
        basket = {test_names[i] for i in test.matrix[row].indices} & set(names)
        if len(basket) < 2:
            continue
        for anchor in basket:
            anchors += 1
            ruled = by_anchor.get(anchor, [])[:n]
            popular = [item for item in popular_order if item != anchor][:n]
            filled = list(dict.fromkeys([*ruled, *popular]))[:n]
            others = basket - {anchor}
            for name, listed in zip(LISTS, (ruled, filled, popular), strict=True):
                found = others & set(listed)
                hits[name] += bool(found)
                recalled[name] += len(found) / len(others)
    return {
        "hit_rate": {name: hits[name] / anchors for name in LISTS},
        "recall": {name: recalled[name] / anchors for name in LISTS},
    }


def test_a_case_worked_by_hand() -> None:
    names = ["bread", "butter", "jam", "milk"]
    train = baskets_of([["bread", "butter"]] * 4 + [["milk"]] * 8 + [["bread", "jam"]] * 2, names)
    rules = association_rules(train, RuleConfig(min_support=0.1, min_confidence=0.5))
    # Rules: butter => bread and jam => bread (confidence 1), bread => butter (4/6); bread =>
    # jam (2/6) is too weak. Milk is the best seller.
    test = baskets_of([["bread", "butter"], ["milk"], ["jam", "butter"]], names)
    quality = complement_quality(rules, train, test, n=1)
    assert (quality["test_baskets"], quality["anchors"]) == (2, 4)
    # Anchors: bread -> butter (hit), butter -> bread (hit), jam -> bread (miss), butter ->
    # bread (miss).
    assert quality["hit_rate"]["rules"] == pytest.approx(2 / 4)
    assert quality["recall"]["rules"] == pytest.approx(2 / 4)
    assert quality["coverage"] == 1.0
    # Popular at n=1: milk for every anchor: never in these baskets.
    assert quality["hit_rate"]["popular"] == 0.0
    assert quality["hit_rate"]["rules_then_popular"] == pytest.approx(2 / 4)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4))
def test_figures_equal_a_plain_loop(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    names = [f"i{k}" for k in range(8)]
    popularity = rng.uniform(0.05, 0.6, size=8)
    train = Baskets(sp.csr_matrix(rng.random((120, 8)) < popularity), np.array(names, object))
    test_names = [*names[2:], "new-item"]  # another order, and an item training never saw
    test_dense = rng.random((40, 7)) < np.r_[popularity[2:], 0.3]
    test = Baskets(sp.csr_matrix(test_dense), np.array(test_names, dtype=object))
    rules = association_rules(train, RuleConfig(min_support=0.05, min_confidence=0.2))
    quality = complement_quality(rules, train, test, n=n)
    expected = reference(rules, train, test, n)
    for measure in ("hit_rate", "recall"):
        for name in LISTS:
            assert quality[measure][name] == pytest.approx(expected[measure][name]), (
                measure,
                name,
            )
