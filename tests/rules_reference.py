"""The references rules are checked against, shared by tests/test_rules*.py and
benchmarks/bundles.py: mlxtend's and pyfim's rules (the same rule keys, the same measures,
compared to 1e-9), the planted bundles of a generated store, and held-out baskets to measure
rules on: Online Retail before and after a date, and a stand-in for a store of small baskets
cut from the Groceries baskets."""

from __future__ import annotations

import math
import warnings
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.baskets import Baskets, baskets_from_interactions
from features.presets import get_preset
from features.validate import load_interactions
from training.config import RuleConfig

__all__ = [
    "MEASURES",
    "ONLINE_RETAIL_CUTOFF",
    "RuleSet",
    "basket_frame",
    "last_fifth_held_out",
    "mlxtend_rules",
    "online_retail_split",
    "planted_pair_recall",
    "pyfim_arules",
    "pyfim_rule_set",
    "rule_set",
    "same_rules",
    "small_baskets",
    "transactions",
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


def transactions(baskets: Baskets) -> list[list[str]]:
    """The baskets as pyfim reads them: a list of item names per basket."""
    names, matrix = baskets.item_names, baskets.matrix
    return [names[matrix.indices[start:stop]].tolist()
            for start, stop in zip(matrix.indptr[:-1], matrix.indptr[1:], strict=True)]  # fmt: skip


def pyfim_arules(tracts: list[list[str]], min_count: int, config: RuleConfig) -> list[Any]:
    """pyfim's rules (Borgelt's C code) with a single consequent, as it reports them: (head,
    body, itemset count, body count, head count). The support threshold is the same count of
    baskets (a negative ``supp``), mode "o" takes the support of a rule as that of all its items
    (mlxtend's and ours), and ``zmin=2`` leaves out rules without antecedents."""
    import fim

    if config.min_confidence is None:
        raise ValueError("pyfim has only an absolute confidence floor: set min_confidence")
    return fim.arules(
        tracts, supp=-min_count, conf=100 * config.min_confidence, zmin=2,
        zmax=config.max_size, mode="o", report="abh",
    )  # fmt: skip


def pyfim_rule_set(found: list[Any], n_baskets: int) -> RuleSet:
    """:func:`pyfim_arules`'s rules keyed like :func:`mlxtend_rules`, the measures made from
    pyfim's counts with the definitions of training/rules.py."""
    rules: RuleSet = {}
    for head, body, count, body_count, head_count in found:
        support, confidence = count / n_baskets, count / body_count
        head_support = head_count / n_baskets
        rules[(tuple(sorted(body)), head)] = {
            "support": support,
            "confidence": confidence,
            "lift": confidence / head_support,
            "leverage": support - body_count / n_baskets * head_support,
            "conviction": (1 - head_support) / (1 - confidence) if confidence < 1 else math.inf,
        }
    return rules


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


#: The protocol issue's date: Online Retail's history ends here, its test begins.
ONLINE_RETAIL_CUTOFF = datetime(2011, 9, 1)


def online_retail_split(path: Path) -> tuple[Baskets, Baskets]:
    """The Online Retail invoices (``online-retail`` preset) before and from
    :data:`ONLINE_RETAIL_CUTOFF`: training and held-out baskets of a store of large baskets."""
    frame = load_interactions(path, preset=get_preset("online-retail")).frame
    before = pl.col(col.TIMESTAMP) < ONLINE_RETAIL_CUTOFF
    return (
        baskets_from_interactions(frame.filter(before)),
        baskets_from_interactions(frame.filter(~before)),
    )


def last_fifth_held_out(baskets: Baskets) -> tuple[Baskets, Baskets]:
    """The first four fifths of the baskets (in file order) for training, the rest held out."""
    first_held_out = int(0.8 * baskets.n_baskets)
    return (
        Baskets(baskets.matrix[:first_held_out], baskets.item_names),
        Baskets(baskets.matrix[first_held_out:], baskets.item_names),
    )


def small_baskets(baskets: Baskets, seed: int = 0) -> tuple[Baskets, Baskets]:
    """A store of small baskets made from one of larger baskets, as training and held-out
    baskets: every basket of two items or more is cut, its items in a random order, into
    baskets of 2 or 3 items, like the member-day baskets of a grocery chain (2 to 3 items
    each in the public data set of issue 14, which we do not hold). The pieces of the last
    fifth of the baskets are held out, so that no basket is split across the two."""
    rng = np.random.default_rng(seed)
    matrix = baskets.matrix
    pieces: list[np.ndarray] = []
    held_out: list[bool] = []
    first_held_out = int(0.8 * baskets.n_baskets)
    for basket in range(baskets.n_baskets):
        items = rng.permutation(matrix.indices[matrix.indptr[basket] : matrix.indptr[basket + 1]])
        while len(items) >= 2:
            # 2 or 3 items, never leaving 1 behind.
            size = len(items) if len(items) <= 3 else 2 if len(items) == 4 else rng.integers(2, 4)
            pieces.append(items[:size])
            held_out.append(basket >= first_held_out)
            items = items[size:]
    sizes = np.array([len(piece) for piece in pieces])
    cut = sp.csr_matrix(
        (np.ones(sizes.sum(), dtype=bool), np.concatenate(pieces), np.r_[0, np.cumsum(sizes)]),
        shape=(len(pieces), baskets.n_items),
    )
    test = np.array(held_out)
    return Baskets(cut[~test], baskets.item_names), Baskets(cut[test], baskets.item_names)
