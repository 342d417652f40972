"""Association rules: the published Groceries figures, mlxtend's and pyfim's exact rule sets,
and the pair counts whatever the memory bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from features.baskets import Baskets, baskets_from_interactions, read_basket_file
from features.presets import get_preset
from features.synthetic import BUNDLES_FILE, StoreConfig, generate_store
from features.validate import load_interactions
from tests.cli import run_recsys
from tests.rules_reference import (
    basket_frame,
    mlxtend_rules,
    planted_pair_recall,
    pyfim_arules,
    pyfim_rule_set,
    rule_set,
    same_rules,
    transactions,
)
from training.config import RuleConfig
from training.itemsets import _frequent_pairs, _largest_baskets, _restricted
from training.rules import RULE_COLUMNS, RuleIndex, association_rules, count_threshold


def assert_same_rules(baskets: Baskets, config: RuleConfig) -> int:
    """Our rules equal mlxtend's and pyfim's (keys and measures to 1e-9); returns how many
    there are."""
    ours = rule_set(association_rules(baskets, config))
    reference = mlxtend_rules(basket_frame(baskets), config)
    problems = same_rules(ours, reference)
    assert not problems, problems[:5]
    found = pyfim_arules(transactions(baskets), count_threshold(baskets, config), config)
    problems = same_rules(ours, pyfim_rule_set(found, baskets.n_baskets))
    assert not problems, ("pyfim", problems[:5])
    return len(reference)


@pytest.mark.parametrize(
    ("min_support", "min_confidence", "expected"),
    [(0.001, 0.5, 5668), (0.001, 0.8, 410), (0.005, 0.5, 120)],
)
def test_groceries_rule_counts_match_the_published_figures(
    groceries_path: Path, min_support: float, min_confidence: float, expected: int
) -> None:
    baskets = read_basket_file(groceries_path)
    assert (baskets.n_baskets, baskets.n_items) == (9835, 169)
    config = RuleConfig(min_support=min_support, min_confidence=min_confidence, max_size=10)
    assert len(association_rules(baskets, config)) == expected


def test_groceries_strongest_rules_by_lift(groceries_path: Path) -> None:
    config = RuleConfig(min_support=0.001, min_confidence=0.5, max_size=10)
    top = association_rules(read_basket_file(groceries_path), config).head(3)
    assert top.select("antecedents", "consequent").rows() == [
        (["Instant food products", "soda"], "hamburger meat"),
        (["popcorn", "soda"], "salty snack"),
        (["baking powder", "flour"], "sugar"),
    ]
    assert top["lift"].round(3).to_list() == [18.996, 16.698, 16.408]


def test_groceries_rules_equal_mlxtend_to_1e9(groceries_path: Path) -> None:
    config = RuleConfig(min_support=0.002, min_confidence=0.3, max_size=10)
    assert assert_same_rules(read_basket_file(groceries_path), config) > 1000


def test_online_retail_rules_equal_pyfim(online_retail_path: Path) -> None:
    """The issue's settings: the 2,036 rules of pyfim (benchmarks/bundles.py times both)."""
    frame = load_interactions(online_retail_path, preset=get_preset("online-retail")).frame
    baskets = baskets_from_interactions(frame)
    config = RuleConfig(min_support=0.005, min_confidence=0.5, max_size=3)
    found = pyfim_arules(transactions(baskets), count_threshold(baskets, config), config)
    reference = pyfim_rule_set(found, baskets.n_baskets)
    assert len(reference) == 2036
    assert not same_rules(rule_set(association_rules(baskets, config)), reference)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    min_count=st.integers(1, 6),
    max_bins=st.sampled_from([1, 7, 10**6]),
    max_keys=st.sampled_from([1, 3, 10**6]),
)
def test_pair_counts_do_not_depend_on_the_memory_bounds(
    seed: int, min_count: int, max_bins: int, max_keys: int
) -> None:
    """Blocks of first items, chunks of keys, counting by bins or by sorting: the pairs and
    counts of the upper triangle of B^T B."""
    rng = np.random.default_rng(seed)
    dense = rng.random((50, 12)) < rng.uniform(0.02, 0.7, size=12)
    baskets = Baskets(sp.csr_matrix(dense), np.array([f"i{k}" for k in range(12)], dtype=object))
    items = np.flatnonzero(dense.sum(axis=0) >= min_count)
    together = dense[:, items].T.astype(np.int64) @ dense[:, items].astype(np.int64)
    first, second = np.triu_indices(len(items), k=1)
    kept = together[first, second] >= min_count
    rows = _restricted(baskets.matrix, items, 2)
    pairs = _frequent_pairs(rows, items, 12, min_count, max_bins=max_bins, max_keys=max_keys)
    assert pairs.items.tolist() == np.column_stack([items[first], items[second]])[kept].tolist()
    assert pairs.counts.tolist() == together[first, second][kept].tolist()


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=60), most=st.integers(1, 80))
def test_the_largest_baskets_hold_at_most_half_the_pair_keys(sizes: list[int], most: int) -> None:
    sizes_array = np.array(sizes)
    keys = sizes_array * (sizes_array - 1) // 2
    large = _largest_baskets(sizes_array, most)
    assert keys[large].sum() <= keys.sum() / 2
    assert large.sum() <= most
    if large.any() and (~large).any():
        assert sizes_array[large].min() >= sizes_array[~large].max()
    if large.sum() < most and (~large).any() and sizes_array[~large].max() >= 2:
        # One size more would pass half.
        next_size = sizes_array[~large].max()
        assert keys[large | (sizes_array == next_size)].sum() > keys.sum() / 2


def test_item_names_are_canonicalised(tmp_path: Path) -> None:
    path = tmp_path / "baskets.csv"
    path.write_text("milk ,bread\nmilk,bread,eggs\n bread\n")
    baskets = read_basket_file(path)
    assert sorted(baskets.item_names) == ["bread", "eggs", "milk"]
    assert baskets.n_baskets == 3


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    min_support=st.sampled_from([0.05, 0.1, 0.2]),
    min_confidence=st.sampled_from([0.0, 0.4, 0.8]),
    max_size=st.integers(2, 4),
)
def test_random_baskets_give_mlxtend_rules(
    seed: int, min_support: float, min_confidence: float, max_size: int
) -> None:
    rng = np.random.default_rng(seed)
    dense = rng.random((60, 9)) < rng.uniform(0.1, 0.6, size=9)  # items of varied popularity
    baskets = Baskets(sp.csr_matrix(dense), np.array([f"i{k}" for k in range(9)], dtype=object))
    config = RuleConfig(min_support=min_support, min_confidence=min_confidence,
                        max_size=max_size)  # fmt: skip
    assert_same_rules(baskets, config)


def test_rule_table_columns_and_order() -> None:
    dense = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 1], [0, 1, 1]], dtype=bool)
    baskets = Baskets(sp.csr_matrix(dense), np.array(["a", "b", "c"], dtype=object))
    table = association_rules(baskets, RuleConfig(min_support=0.5, min_confidence=0.5))
    assert table.columns == list(RULE_COLUMNS)
    assert table["lift"].to_list() == sorted(table["lift"].to_list(), reverse=True)
    assert table.schema["antecedents"] == pl.List(pl.Utf8)


def test_cli_mines_a_basket_file_into_csv_or_parquet(tmp_path: Path) -> None:
    basket_file = tmp_path / "baskets.csv"
    basket_file.write_text("milk,bread\nmilk,bread,eggs\nbread,eggs\nmilk,bread\n")
    csv_out, parquet_out = tmp_path / "rules.csv", tmp_path / "rules.parquet"
    for out in (csv_out, parquet_out):
        result = run_recsys(
            "bundles", "--baskets", basket_file, "--min-support", 0.5, "--min-confidence", 0.6,
            "--out", out,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    table = pl.read_parquet(parquet_out)
    rules = {(tuple(row["antecedents"]), row["consequent"]) for row in table.iter_rows(named=True)}
    # milk => bread 3/3, bread => milk 3/4, eggs => bread 2/2; bread => eggs is 2/4 < 0.6
    assert rules == {(("milk",), "bread"), (("bread",), "milk"), (("eggs",), "bread")}
    assert pl.read_csv(csv_out).columns == list(RULE_COLUMNS)
    printed = " ".join(result.stdout.split())
    assert "Few rules: 3 rules from 4 baskets" in printed
    assert "have a confidence under 0.6 (min_confidence)" in printed


def test_cli_mines_purchase_orders_of_an_interactions_file(tmp_path: Path) -> None:
    interactions = tmp_path / "interactions.csv"
    interactions.write_text(
        "member_id,item_id,event,timestamp,order_id\n"
        "m1,milk,purchase,2024-01-01,o1\nm1,bread,purchase,2024-01-01,o1\n"
        "m2,milk,purchase,2024-01-02,o2\nm2,bread,purchase,2024-01-02,o2\n"
        "m3,milk,view,2024-01-02,\nm3,eggs,purchase,2024-01-03,o3\n"
    )
    out = tmp_path / "rules.parquet"
    result = run_recsys(
        "bundles", "-i", interactions, "--min-support", 0.5, "--min-confidence", 0.9,
        "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "from 3 baskets" in result.stdout.replace("\n", " ")
    assert pl.read_parquet(out).height == 2  # milk <=> bread; the view is not a purchase


def test_cli_needs_exactly_one_source_of_baskets(tmp_path: Path) -> None:
    result = run_recsys("bundles", "--out", tmp_path / "rules.csv")
    assert result.returncode == 2
    assert "either --interactions or --baskets" in result.stderr


def test_cli_groceries_at_support_0005_gives_120_rules(
    groceries_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rules.csv"
    result = run_recsys(
        "bundles", "--baskets", groceries_path, "--min-support", 0.005, "--min-confidence", 0.5,
        "--max-size", 10, "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pl.read_csv(out).height == 120


@pytest.mark.parametrize(
    "config",
    [RuleConfig(min_support=0.002, min_confidence=0.2, max_size=2), RuleConfig()],
    ids=["support-0.002", "training-default"],
)
def test_planted_bundles_of_the_synthetic_store_are_found(
    tmp_path: Path, config: RuleConfig
) -> None:
    """Every planted pair should be among the strongest rules mined from the store's orders:
    recall of planted pairs in the top rules by lift (as many rules as planted pairs x 2)."""
    store = StoreConfig(members=3000, items=600, events=150_000, seed=11, bundles=12)
    generate_store(store, tmp_path / "store")
    interactions = load_interactions(tmp_path / "store" / "interactions.parquet").frame
    planted = pl.read_csv(tmp_path / "store" / BUNDLES_FILE)
    rules = association_rules(baskets_from_interactions(interactions), config)
    found, total = planted_pair_recall(rules, planted)
    recall = found / total
    assert recall >= 0.9, f"planted pairs recalled among the top rules: {recall:.0%}"


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), floor=st.integers(1, 8), max_pairs=st.integers(1, 40))
def test_default_count_threshold_is_the_least_that_bounds_the_pairs(
    seed: int, floor: int, max_pairs: int
) -> None:
    rng = np.random.default_rng(seed)
    dense = rng.random((80, 12)) < rng.uniform(0.05, 0.6, size=12)
    baskets = Baskets(sp.csr_matrix(dense), np.array([f"i{k}" for k in range(12)], dtype=object))
    together = dense.T.astype(np.int64) @ dense.astype(np.int64)
    pair_counts = together[np.triu_indices(12, k=1)]

    def passing(count: int) -> int:
        return int((pair_counts >= count).sum())

    threshold = count_threshold(baskets, RuleConfig(min_count=floor, max_pairs=max_pairs))
    assert threshold >= floor and passing(threshold) <= max_pairs
    assert threshold == floor or passing(threshold - 1) > max_pairs
    explicit = RuleConfig(min_support=0.1, min_count=floor, max_pairs=max_pairs)
    assert count_threshold(baskets, explicit) == 8  # ceil(0.1 x 80): the support wins


def test_rule_index_proposes_consequents_of_rules_inside_the_cart() -> None:
    rules = pl.DataFrame(
        {
            "antecedents": [["a"], ["a"], ["a", "b"], ["c"], ["a"], ["ghost"]],
            "consequent": ["c", "d", "d", "a", "b", "a"],
            "support": [0.1, 0.1, 0.05, 0.1, 0.2, 0.1],
            "confidence": [0.5, 0.4, 0.9, 0.5, 0.6, 0.9],
            "lift": [2.0, 1.5, 6.0, 2.0, 1.2, 9.0],
        }
    )
    index_of = {"a": 0, "b": 1, "c": 2, "d": 3}
    rule_index = RuleIndex(rules, index_of.get)
    assert len(rule_index) == 5  # the rule naming an unindexed item is left out
    found = rule_index.complements([0, 1], n=5)
    # d: its strongest rule is {a, b} => d (lift 6), not a => d; b is in the cart.
    assert [(c.item, c.lift, c.antecedents) for c in found] == [
        (3, 6.0, ("a", "b")),
        (2, 2.0, ("a",)),
    ]
    assert [c.item for c in rule_index.complements([0], n=5)] == [2, 3, 1]
    allowed = np.array([True, True, False, True])
    assert [c.item for c in rule_index.complements([0], n=1, allowed=allowed)] == [3]
