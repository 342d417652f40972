"""The references rules are checked against, shared by tests/test_rules.py and
benchmarks/bundles.py: mlxtend's rules (the same rule keys, the same measures, compared to
1e-9) and the planted bundles of a generated store."""

from __future__ import annotations

import math
import warnings
from itertools import combinations

import pandas as pd
import polars as pl

from features.baskets import Baskets
from training.config import RuleConfig

__all__ = [
    "MEASURES",
    "RuleSet",
    "basket_frame",
    "mlxtend_rules",
    "planted_pair_recall",
    "rule_set",
    "same_rules",
]

MEASURES = ("support", "confidence", "lift", "leverage", "conviction")

#: (sorted antecedent names, consequent) -> measures.
RuleSet = dict[tuple[tuple[str, ...], str], dict[str, float]]


def basket_frame(baskets: Baskets) -> pd.DataFrame:
    """The one-hot basket table mlxtend mines."""
    return pd.DataFrame(baskets.matrix.toarray(), columns=list(baskets.item_names))


def mlxtend_rules(frame: pd.DataFrame, config: RuleConfig) -> RuleSet:
    """mlxtend's FP-growth and association_rules, single consequents only."""
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    itemsets = fpgrowth(frame, min_support=config.min_support, use_colnames=True,
                        max_len=config.max_size)  # fmt: skip
    if itemsets.empty:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # conviction divides by zero at conf 1
        rules = association_rules(itemsets, len(frame), metric="confidence",
                                  min_threshold=config.min_confidence)  # fmt: skip
    rules = rules[rules["consequents"].apply(len) == 1]
    return {
        (tuple(sorted(row.antecedents)), next(iter(row.consequents))): {
            name: float(getattr(row, name)) for name in MEASURES
        }
        for row in rules.itertuples()
    }


def rule_set(table: pl.DataFrame) -> RuleSet:
    """Our rule table keyed like :func:`mlxtend_rules`."""
    return {
        (tuple(row["antecedents"]), row["consequent"]): {name: row[name] for name in MEASURES}
        for row in table.iter_rows(named=True)
    }


def same_rules(ours: RuleSet, reference: RuleSet) -> list[str]:
    """What differs (missing or extra rules, measures beyond 1e-9); empty when identical."""
    problems = [f"only ours: {key}" for key in ours.keys() - reference.keys()]
    problems += [f"only mlxtend: {key}" for key in reference.keys() - ours.keys()]
    for key in ours.keys() & reference.keys():
        for name in MEASURES:
            value, expected = ours[key][name], reference[key][name]
            if math.isinf(value) or math.isinf(expected):
                equal = value == expected
            else:
                equal = math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9)
            if not equal:
                problems.append(f"{key} {name}: ours {value!r}, mlxtend {expected!r}")
    return problems


def planted_pair_recall(rules: pl.DataFrame, planted: pl.DataFrame) -> tuple[int, int]:
    """(found, planted): how many item pairs of a generated store's planted bundles
    (``planted_bundles.csv``) are among the strongest single-antecedent rules, taking twice as
    many rules as there are planted pairs (either direction counts)."""
    pairs = {
        frozenset(pair)
        for items in planted.get_column("item_ids").str.split("|").to_list()
        for pair in combinations(items, 2)
    }
    single = rules.filter(pl.col("antecedents").list.len() == 1).head(2 * len(pairs))
    found = {
        frozenset([*row["antecedents"], row["consequent"]]) for row in single.iter_rows(named=True)
    }
    return len(pairs & found), len(pairs)
