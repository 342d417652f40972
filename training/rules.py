"""Association rules ("frequently bought together") from baskets.

Frequent itemsets are found level by level. Pairs come from one sparse product (the item x
item co-occurrence counts ``B^T B`` of the frequent items). Larger itemsets are candidates
whose every subset is frequent (Apriori's pruning), counted on packed bitsets: each frequent
item keeps one bit per basket, and an itemset's count is the popcount of its items' AND. Rules
have a single item as consequent and the rest of the itemset as antecedent, with the measures
of Agrawal et al. and Brin et al., as mlxtend and arules define them (N baskets; counts c):

* support = c(A u {b}) / N; confidence = c(A u {b}) / c(A); lift = confidence / support(b);
* leverage = support(A u {b}) - support(A) support(b);
* conviction = (1 - support(b)) / (1 - confidence), infinite when confidence is 1.

An itemset is frequent when its count is at least ``ceil(min_support * N)``, the threshold of
mlxtend's FP-growth, so that the rule sets are identical (tests/test_rules.py); without a
``min_support``, the count threshold scales to the data (:func:`count_threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.baskets import Baskets
from training.config import RuleConfig

__all__ = [
    "COMPLEMENT_MEASURES",
    "RULE_COLUMNS",
    "Complement",
    "ComplementTable",
    "Complements",
    "RuleIndex",
    "association_rules",
    "count_threshold",
    "frequent_itemsets",
]

#: Columns of a rule table, in order.
RULE_COLUMNS = (
    "antecedents", "consequent", "support", "confidence", "lift", "leverage", "conviction",
    "antecedent_support", "consequent_support", "count",
)  # fmt: skip

#: Candidate itemsets whose bitsets are ANDed at once (bounds the temporary memory).
_CANDIDATE_WORDS_PER_CHUNK = 1 << 24


@dataclass(frozen=True)
class Itemsets:
    """Frequent itemsets of one size: sorted item indices per row and their basket counts."""

    items: np.ndarray
    counts: np.ndarray


def count_threshold(baskets: Baskets, config: RuleConfig) -> int:
    """Baskets an itemset must be in to be frequent: ``ceil(min_support * N)`` when the config
    sets a support; else ``config.min_count``, raised to the least count that at most
    ``config.max_pairs`` pairs reach (one sparse product over the items that reach it)."""
    if config.min_support is not None:
        return max(1, math.ceil(config.min_support * baskets.n_baskets))
    matrix, item_counts = _columns(baskets)
    frequent = np.flatnonzero(item_counts >= config.min_count)
    pair_counts = _frequent_pairs(matrix[:, frequent], frequent, config.min_count).counts
    if len(pair_counts) <= config.max_pairs:
        return config.min_count
    return int(np.sort(pair_counts)[::-1][config.max_pairs]) + 1


def _columns(baskets: Baskets) -> tuple[sp.csc_matrix, np.ndarray]:
    """The basket x item matrix by columns, and the baskets each item is in."""
    matrix = sp.csc_matrix(baskets.matrix, dtype=np.float32)
    return matrix, np.asarray(matrix.sum(axis=0)).ravel().astype(np.int64)


def frequent_itemsets(baskets: Baskets, min_count: int, max_size: int) -> list[Itemsets]:
    """Itemsets in at least ``min_count`` baskets, by size, from single items (index 0) up to
    ``max_size`` items."""
    matrix, item_counts = _columns(baskets)
    frequent = np.flatnonzero(item_counts >= min_count)
    levels = [Itemsets(frequent[:, None], item_counts[frequent])]
    if max_size < 2 or len(frequent) < 2:
        return levels
    levels.append(_frequent_pairs(matrix[:, frequent], frequent, min_count))
    if max_size > 2 and len(levels[-1].items):
        # Larger itemsets are made of items of frequent pairs: only those need basket bits.
        paired = np.unique(levels[-1].items)
        bits = _bitsets(matrix[:, paired])
        position = np.full(baskets.n_items, -1, dtype=np.int64)
        position[paired] = np.arange(len(paired))
        while len(levels) < max_size and len(levels[-1].items):
            candidates = _candidates(levels[-1].items)
            counts = _count(bits, position[candidates]) if len(candidates) else np.empty(0)
            keep = counts >= min_count
            levels.append(Itemsets(candidates[keep], counts[keep].astype(np.int64)))
    return [level for level in levels if len(level.items)]


def _frequent_pairs(matrix: sp.csc_matrix, items: np.ndarray, min_count: int) -> Itemsets:
    """Pairs (i < j) of frequent items bought together in at least ``min_count`` baskets."""
    co_counts = sp.triu(matrix.T @ matrix, k=1).tocoo()
    keep = co_counts.data >= min_count
    pairs = np.column_stack([items[co_counts.row[keep]], items[co_counts.col[keep]]])
    counts = np.rint(co_counts.data[keep]).astype(np.int64)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return Itemsets(pairs[order], counts[order])


def _bitsets(matrix: sp.csc_matrix) -> np.ndarray:
    """One row of packed basket bits per column of ``matrix`` (uint64 words), set straight
    from the nonzeros: memory is the packed words only (items x baskets / 8 bytes)."""
    n_baskets, n_items = matrix.shape
    n_words = max(1, math.ceil(n_baskets / 64))
    coo = matrix.tocoo()
    bits = np.zeros(n_items * n_words, dtype=np.uint64)
    baskets = coo.row.astype(np.uint64)
    words = coo.col.astype(np.int64) * n_words + (baskets // np.uint64(64)).astype(np.int64)
    np.bitwise_or.at(bits, words, np.left_shift(np.uint64(1), baskets % np.uint64(64)))
    return bits.reshape(n_items, n_words)


def _candidates(itemsets: np.ndarray) -> np.ndarray:
    """Itemsets one item larger whose every subset is frequent: joins of two frequent
    itemsets that share all but their last item (rows sorted, so joins come in order)."""
    size = itemsets.shape[1]
    known = {tuple(row) for row in itemsets.tolist()}
    joined: list[tuple[int, ...]] = []
    for prefix_rows in _same_prefix_groups(itemsets):
        lasts = itemsets[prefix_rows, -1].tolist()
        prefix = tuple(itemsets[prefix_rows[0], :-1].tolist())
        for first, second in combinations(lasts, 2):
            candidate = (*prefix, first, second)
            if all(
                subset in known for subset in combinations(candidate, size) if subset[-1] == second
            ):
                joined.append(candidate)
    return np.array(joined, dtype=np.int64).reshape(-1, size + 1)


def _same_prefix_groups(itemsets: np.ndarray) -> Iterator[np.ndarray]:
    """Row positions of consecutive itemsets that share everything but their last item."""
    if itemsets.shape[1] == 1:
        yield np.arange(len(itemsets))
        return
    prefixes = itemsets[:, :-1]
    starts = np.flatnonzero(np.r_[True, (prefixes[1:] != prefixes[:-1]).any(axis=1)])
    for start, stop in zip(starts, np.r_[starts[1:], len(itemsets)], strict=True):
        if stop - start > 1:
            yield np.arange(start, stop)


def _count(bits: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Baskets holding every item of each candidate (rows of positions into ``bits``)."""
    per_chunk = max(1, _CANDIDATE_WORDS_PER_CHUNK // (bits.shape[1] * candidates.shape[1]))
    counts = np.empty(len(candidates), dtype=np.int64)
    for start in range(0, len(candidates), per_chunk):
        chunk = candidates[start : start + per_chunk]
        common = bits[chunk[:, 0]]
        for column in range(1, chunk.shape[1]):
            common = common & bits[chunk[:, column]]
        counts[start : start + per_chunk] = np.bitwise_count(common).sum(axis=1)
    return counts


def association_rules(baskets: Baskets, config: RuleConfig) -> pl.DataFrame:
    """Every single-consequent rule with confidence at least ``config.min_confidence`` among
    the frequent itemsets, strongest lift first (then confidence, support, names)."""
    levels = frequent_itemsets(baskets, count_threshold(baskets, config), config.max_size)
    count_of = {
        tuple(items): int(count)
        for level in levels
        for items, count in zip(level.items.tolist(), level.counts.tolist(), strict=True)
    }
    n = baskets.n_baskets
    names = baskets.item_names
    rows: dict[str, list] = {name: [] for name in RULE_COLUMNS}
    for level in levels[1:]:
        for items, count in zip(level.items.tolist(), level.counts.tolist(), strict=True):
            for position, consequent in enumerate(items):
                antecedent = (*items[:position], *items[position + 1 :])
                confidence = count / count_of[antecedent]
                if confidence < config.min_confidence:
                    continue
                consequent_support = count_of[(consequent,)] / n
                support, antecedent_support = count / n, count_of[antecedent] / n
                rows["antecedents"].append(sorted(names[item] for item in antecedent))
                rows["consequent"].append(names[consequent])
                rows["support"].append(support)
                rows["confidence"].append(confidence)
                rows["lift"].append(confidence / consequent_support)
                rows["leverage"].append(support - antecedent_support * consequent_support)
                rows["conviction"].append(
                    (1 - consequent_support) / (1 - confidence) if confidence < 1 else math.inf
                )
                rows["antecedent_support"].append(antecedent_support)
                rows["consequent_support"].append(consequent_support)
                rows["count"].append(count)
    schema = {
        "antecedents": pl.List(pl.Utf8), "consequent": pl.Utf8, "count": pl.Int64,
        **{name: pl.Float64 for name in RULE_COLUMNS if name not in
           ("antecedents", "consequent", "count")},
    }  # fmt: skip
    table = pl.DataFrame(rows, schema=schema).select(RULE_COLUMNS)
    return table.sort(
        ["lift", "confidence", "support", "consequent"],
        descending=[True, True, True, False],
    )


@dataclass(frozen=True)
class Complements:
    """Candidates per anchor: items (anchors' shape + one axis), -1 padded, and measures."""

    items: np.ndarray
    measures: dict[str, np.ndarray]


#: The rule measures a complement carries.
COMPLEMENT_MEASURES = ("lift", "confidence", "support")


@dataclass(frozen=True)
class ComplementTable:
    """The rules with one (or two) antecedent items grouped by antecedent set, to look up the
    complements of many items (or pairs) at once: ``keys`` are the sorted antecedent sets (an
    item's index, or ``low x n_items + high`` for a pair) and rules ``starts[k]:starts[k + 1]``
    are those of ``keys[k]``, strongest first (lift, confidence, support, then the lower item
    index), at most ``depth`` each, consequents among ``available`` items only."""

    depth: int
    n_items: int
    keys: np.ndarray
    starts: np.ndarray
    items: np.ndarray
    measures: dict[str, np.ndarray]

    @classmethod
    def from_rules(
        cls,
        rules: pl.DataFrame | None,
        item_ids: np.ndarray,
        available: np.ndarray,
        depth: int,
        *,
        antecedents: int = 1,
    ) -> ComplementTable:
        """The table over ``item_ids`` (index i names item i) of the rules with
        ``antecedents`` antecedent items (1 or 2) of a rule table (None: empty)."""
        n_items = len(item_ids)
        index = pl.DataFrame(
            {"name": pl.Series(item_ids, dtype=pl.Utf8), "index": np.arange(n_items)}
        )
        table = (
            pl.DataFrame(schema={"antecedents": pl.List(pl.Utf8), "consequent": pl.Utf8,
                                 **{name: pl.Float64 for name in COMPLEMENT_MEASURES}})
            if rules is None
            else rules
        )  # fmt: skip
        chosen = table.filter(pl.col("antecedents").list.len() == antecedents).with_row_index(
            "rule"
        )
        named = chosen.select("rule", pl.col("antecedents").alias("name")).explode("name")
        positions = (
            named.join(index, on="name")
            .group_by("rule")
            .agg(pl.col("index").min().alias("low"), pl.col("index").max().alias("high"), pl.len())
        )
        key = pl.col("low") if antecedents == 1 else pl.col("low") * n_items + pl.col("high")
        pairs = (
            chosen.select("rule", "consequent", *COMPLEMENT_MEASURES)
            .join(positions.filter(pl.col("len") == antecedents), on="rule")
            .join(index.rename({"name": "consequent", "index": "item"}), on="consequent")
            .filter(pl.col("item").map_batches(lambda items: pl.Series(available[items])))
            .with_columns(key.alias("key"))
            .sort(
                ["key", "lift", "confidence", "support", "item"],
                descending=[False, True, True, True, False],
            )
            .filter(pl.int_range(pl.len()).over("key") < depth)
        )
        keys, starts = np.unique(pairs.get_column("key").to_numpy(), return_index=True)
        return cls(
            depth=depth,
            n_items=n_items,
            keys=keys.astype(np.int64),
            starts=np.append(starts, pairs.height).astype(np.int64),
            items=pairs.get_column("item").to_numpy().astype(np.int64),
            measures={name: pairs.get_column(name).to_numpy() for name in COMPLEMENT_MEASURES},
        )

    def gather(self, first: np.ndarray, second: np.ndarray | None = None) -> Complements:
        """The complements of every antecedent item (or pair ``first[i], second[i]``), as
        arrays of ``first.shape + (depth,)``; -1 and NaN pad."""
        shape = (*first.shape, self.depth)
        if not len(self.items):
            return Complements(
                np.full(shape, -1, dtype=np.int64),
                {name: np.full(shape, np.nan) for name in COMPLEMENT_MEASURES},
            )
        query = (
            first
            if second is None
            else np.minimum(first, second) * self.n_items + np.maximum(first, second)
        )
        slot = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
        known = self.keys[slot] == query
        start = np.where(known, self.starts[slot], 0)
        stop = np.where(known, self.starts[slot + 1], 0)
        positions = start[..., None] + np.arange(self.depth)
        inside = positions < stop[..., None]
        positions = np.where(inside, positions, 0)
        return Complements(
            np.where(inside, self.items[positions], -1),
            {name: np.where(inside, values[positions], np.nan)
             for name, values in self.measures.items()},
        )  # fmt: skip


@dataclass(frozen=True)
class Complement:
    """An item that goes with a cart, by the strongest rule that proposes it."""

    item: int
    antecedents: tuple[str, ...]
    support: float
    confidence: float
    lift: float


class RuleIndex:
    """Rules by antecedent set, to answer "what goes with these items?" in microseconds.

    Built once per loaded model artifact from its rule table, over the artifact's item
    indices (rules naming items the artifact does not index are left out).
    """

    def __init__(self, rules: pl.DataFrame, item_index: Callable[[str], int | None]) -> None:
        self._rules: dict[frozenset[int], list[tuple[int, float, float, float, tuple[str, ...]]]]
        self._rules = {}
        self.max_antecedents = 0
        for row in rules.iter_rows(named=True):
            antecedents = [item_index(name) for name in row["antecedents"]]
            consequent = item_index(row["consequent"])
            if consequent is None or None in antecedents:
                continue
            key = frozenset(index for index in antecedents if index is not None)
            self._rules.setdefault(key, []).append(
                (consequent, row["support"], row["confidence"], row["lift"],
                 tuple(row["antecedents"]))
            )  # fmt: skip
            self.max_antecedents = max(self.max_antecedents, len(key))

    def __len__(self) -> int:
        return sum(len(rules) for rules in self._rules.values())

    def complements(
        self, cart: Collection[int], n: int, allowed: np.ndarray | None = None
    ) -> list[Complement]:
        """The ``n`` best items to add to ``cart``: every rule whose antecedents are all in
        the cart proposes its consequent; an item keeps its strongest rule (lift, then
        confidence, then support); items in the cart, or not ``allowed``, are never proposed."""
        items = sorted(set(cart))
        best: dict[int, Complement] = {}
        for size in range(1, min(len(items), self.max_antecedents) + 1):
            for antecedents in combinations(items, size):
                for item, support, confidence, lift, names in self._rules.get(
                    frozenset(antecedents), ()
                ):
                    if item in cart or (allowed is not None and not allowed[item]):
                        continue
                    found = Complement(item, names, support, confidence, lift)
                    kept = best.get(item)
                    if kept is None or _strength(found) > _strength(kept):
                        best[item] = found
        return sorted(best.values(), key=_strength, reverse=True)[:n]


def _strength(complement: Complement) -> tuple[float, float, float, int]:
    return (complement.lift, complement.confidence, complement.support, -complement.item)
