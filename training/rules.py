"""Association rules ("frequently bought together") from baskets.

Frequent itemsets come from :mod:`training.itemsets`. Rules have a single item as consequent
and the rest of the itemset as antecedent, with the measures of Agrawal et al. and Brin et al.,
as mlxtend and arules define them (N baskets; counts c):

* support = c(A u {b}) / N; confidence = c(A u {b}) / c(A); lift = confidence / support(b);
* leverage = support(A u {b}) - support(A) support(b);
* conviction = (1 - support(b)) / (1 - confidence), infinite when confidence is 1.

An itemset is frequent when its count is at least ``ceil(min_support * N)``, the threshold of
mlxtend's FP-growth, so that the rule sets are identical (tests/test_rules.py); without a
``min_support``, the count threshold scales to the data (:func:`count_threshold`). A rule is
kept when its confidence reaches an absolute ``min_confidence``, or by default when it passes
the association test and reaches popularity's confidence (``RuleConfig`` says why).
:class:`RuleFunnel` counts what each threshold let through, and says why when few rules pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from features.baskets import Baskets
from training.config import RuleConfig
from training.itemsets import FrequentItemsets, frequent_itemsets, item_counts

__all__ = [
    "COMPLEMENT_MEASURES",
    "FEW_RULES",
    "RULE_COLUMNS",
    "Complement",
    "ComplementTable",
    "Complements",
    "MinedRules",
    "RuleFunnel",
    "RuleIndex",
    "association_rules",
    "best_seller",
    "count_threshold",
    "mine_rules",
    "popularity_confidence",
    "rules_of_itemsets",
    "seller_confidence",
    "support_count",
]

#: Columns of a rule table, in order.
RULE_COLUMNS = (
    "antecedents", "consequent", "support", "confidence", "lift", "leverage", "conviction",
    "antecedent_support", "consequent_support", "count",
)  # fmt: skip
_SCHEMA = {
    "antecedents": pl.List(pl.Utf8), "consequent": pl.Utf8, "count": pl.Int64,
    **{name: pl.Float64 for name in RULE_COLUMNS if name not in
       ("antecedents", "consequent", "count")},
}  # fmt: skip

#: Below this many rules, the funnel says why (:meth:`RuleFunnel.why`): most items then have
#: no rule, and the bundle routes fall back for them.
FEW_RULES = 20


def count_threshold(baskets: Baskets, config: RuleConfig) -> int:
    """Baskets an itemset must be in to be frequent: ``ceil(min_support * N)`` when the config
    sets a support; else ``config.min_count``, raised to the least count that at most
    ``config.max_pairs`` pairs reach (one sparse product over the items that reach it)."""
    if config.min_support is not None:
        return support_count(baskets.n_baskets, config.min_support)
    return frequent_itemsets(
        baskets, config.min_count, max_size=2, max_pairs=config.max_pairs
    ).min_count


def support_count(n_baskets: int, min_support: float) -> int:
    """The count a share ``min_support`` of ``n_baskets`` is: ``ceil(min_support * N)``, or 1."""
    return max(1, math.ceil(min_support * n_baskets))


def popularity_confidence(baskets: Baskets, rank: int) -> float:
    """How often the ``rank``-th best seller s (by baskets; 1 the first) is in the basket of
    a buyer of another item: c(i, s) summed over the other items i, over their c(i) summed,
    the pooled confidence of the rules towards s. A list of popular items gets its ``rank``-th
    item right about this often; a rule less sure than that pushes out a better guess."""
    counts = item_counts(baskets)
    seller = best_seller(counts, rank)
    if seller is None:
        return 0.0
    matrix = baskets.matrix
    holding = np.searchsorted(matrix.indptr, np.flatnonzero(matrix.indices == seller), "right")
    together = int((np.diff(matrix.indptr)[holding - 1] - 1).sum())
    return seller_confidence(counts, seller, together)


def best_seller(counts: np.ndarray, rank: int) -> int | None:
    """The item of the ``rank``-th highest basket count (the last item when there are fewer),
    ties to the lower index; None when nothing was bought."""
    if not int(counts.sum()):
        return None
    return int(np.argsort(-counts, kind="stable")[min(rank, len(counts)) - 1])


def seller_confidence(counts: np.ndarray, seller: int, together: int) -> float:
    """:func:`popularity_confidence` of ``seller``, given the items bought with it in its
    baskets (``together``: the sizes of the baskets holding it, less one each, summed)."""
    others = int(counts.sum()) - int(counts[seller])
    return together / others if others else 0.0


@dataclass(frozen=True)
class RuleFunnel:
    """What each threshold let through (``metrics.json``: ``rules.funnel``): the frequent
    items and pairs, the candidate rules (one per item of every frequent itemset of two or
    more), those that failed the association test or the confidence floor, and the rules."""

    baskets: int
    min_count: int
    frequent_items: int
    frequent_pairs: int
    candidates: int
    not_associated: int
    below_confidence: int
    rules: int
    #: The confidence floor applied: ``min_confidence``, or popularity's.
    confidence_floor: float
    #: The highest confidence among the candidates (None: no candidate).
    best_confidence: float | None
    #: The config's thresholds, to name them in :meth:`why`.
    config: RuleConfig

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        del record["config"]
        return record

    def why(self) -> str | None:
        """Why so few rules passed: the threshold that stopped the candidates, in plain
        words, and the options that let more through; None from :data:`FEW_RULES` rules up."""
        if self.rules >= FEW_RULES:
            return None
        config = self.config
        head = f"{self.rules:,} rule{'' if self.rules == 1 else 's'} from {self.baskets:,} baskets"
        if config.min_support is not None:
            support = f"min_support {config.min_support:g}"
        elif self.min_count > config.min_count:
            support = f"min_count {config.min_count}, raised to keep max_pairs {config.max_pairs:,}"
        else:
            support = "min_count"
        if not self.frequent_pairs:
            return (
                f"{head}: no pair of items is in {self.min_count:,} baskets or more ({support}). "
                f"For rules, lower min_count (recsys bundles --min-count) or mine more baskets."
            )
        found = (
            f"{head}: {self.frequent_pairs:,} pairs of items are in {self.min_count:,} baskets "
            f"or more ({support}), which make {self.candidates:,} candidate rules"
        )
        best = f"the most confident candidate is right {self.best_confidence:.1%} of the time"
        if config.min_confidence is not None:
            return (
                f"{found}; {self.below_confidence:,} of them have a confidence under "
                f"{self.confidence_floor:g} (min_confidence) and {best}. For more rules, lower "
                "min_confidence (recsys bundles --min-confidence), or leave it unset for a "
                "floor relative to popularity, which suits small baskets."
            )
        return (
            f"{found}; {self.not_associated:,} of them are bought together no more often than "
            f"by chance (not {config.min_excess_sd:g} standard deviations above independence: "
            f"min_excess_sd) and {self.below_confidence:,} more are right less often than the "
            f"{_ordinal(config.baseline_rank)} best seller in a popular list "
            f"({self.confidence_floor:.1%}: baseline_rank); {best}. For more rules, lower "
            "min_count, min_excess_sd or baseline_rank (recsys bundles --min-count, "
            "--min-excess-sd, --baseline-rank)."
        )


def _ordinal(rank: int) -> str:
    if rank == 1:
        return "first"
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"{rank}{suffix}"


@dataclass(frozen=True)
class MinedRules:
    """The rule table (:data:`RULE_COLUMNS`) and the funnel that led to it."""

    table: pl.DataFrame
    funnel: RuleFunnel


@dataclass(frozen=True)
class _Candidates:
    """Candidate rules with as many antecedent items each: indices and counts."""

    antecedents: np.ndarray
    consequents: np.ndarray
    counts: np.ndarray
    antecedent_counts: np.ndarray


def association_rules(baskets: Baskets, config: RuleConfig) -> pl.DataFrame:
    """Every single-consequent rule of the frequent itemsets that the config keeps, strongest
    lift first (then confidence, support, names)."""
    return mine_rules(baskets, config).table


def mine_rules(baskets: Baskets, config: RuleConfig) -> MinedRules:
    """The rules :func:`association_rules` gives, and what each threshold let through."""
    if config.min_support is not None:
        found = frequent_itemsets(
            baskets, support_count(baskets.n_baskets, config.min_support), config.max_size
        )
    else:
        found = frequent_itemsets(
            baskets, config.min_count, config.max_size, max_pairs=config.max_pairs
        )
    floor = (
        config.min_confidence
        if config.min_confidence is not None
        else popularity_confidence(baskets, config.baseline_rank)
    )
    return rules_of_itemsets(found, baskets.item_names, config, floor)


def rules_of_itemsets(
    found: FrequentItemsets, item_names: np.ndarray, config: RuleConfig, floor: float
) -> MinedRules:
    """The rules the config keeps of itemsets counted elsewhere (:func:`mine_rules` counts them
    here, the Spark engine in Spark), ``floor`` the confidence floor: ``min_confidence``, or
    :func:`popularity_confidence`. ``item_names``: the name of each item index of ``found``."""
    n = found.n_baskets
    kept: list[_Candidates] = []
    candidates = not_associated = below_confidence = 0
    best: float | None = None
    for candidate in _candidate_rules(found):
        confidence = candidate.counts / candidate.antecedent_counts
        candidates += len(confidence)
        best = max(best or 0.0, float(confidence.max()))
        confident = confidence >= floor
        if config.min_confidence is None:
            consequent_counts = found.item_counts[candidate.consequents]
            expected = candidate.antecedent_counts * consequent_counts / n
            associated = candidate.counts - expected > config.min_excess_sd * np.sqrt(expected)
            not_associated += int((~associated).sum())
            below_confidence += int((associated & ~confident).sum())
            confident &= associated
        else:
            below_confidence += int((~confident).sum())
        kept.append(
            _Candidates(
                candidate.antecedents[confident], candidate.consequents[confident],
                candidate.counts[confident], candidate.antecedent_counts[confident],
            )
        )  # fmt: skip
    table = _rule_table(kept, found, item_names)
    funnel = RuleFunnel(
        baskets=n,
        min_count=found.min_count,
        frequent_items=len(found.levels[0].counts),
        frequent_pairs=len(found.levels[1].counts) if len(found.levels) > 1 else 0,
        candidates=candidates,
        not_associated=not_associated,
        below_confidence=below_confidence,
        rules=table.height,
        confidence_floor=floor,
        best_confidence=best,
        config=config,
    )
    return MinedRules(table, funnel)


def _candidate_rules(found: FrequentItemsets) -> list[_Candidates]:
    """Every itemset of two or more items, once per item as the consequent."""
    rules = []
    for level in found.levels[1:]:
        for position in range(level.items.shape[1]):
            antecedents = np.delete(level.items, position, axis=1)
            rules.append(
                _Candidates(antecedents, level.items[:, position], level.counts,
                            found.counts_of(antecedents))
            )  # fmt: skip
    return rules


def _rule_table(
    kept: list[_Candidates], found: FrequentItemsets, names: np.ndarray
) -> pl.DataFrame:
    """The rule table of the kept candidates, strongest lift first (then confidence,
    support, consequent); each antecedent list sorted by name."""
    kept = [rules for rules in kept if len(rules.counts)]
    if not kept:
        return pl.DataFrame(schema=_SCHEMA).select(RULE_COLUMNS)
    # Names of the items in rules only: a store's catalog can be far larger.
    used = np.unique(np.concatenate([np.r_[r.antecedents.ravel(), r.consequents] for r in kept]))
    by_name = np.empty(len(used), dtype=np.int64)
    by_name[np.argsort(names[used], kind="stable")] = np.arange(len(used))
    used_names = pl.Series(names[used], dtype=pl.Utf8)
    n = found.n_baskets
    parts = []
    for rules in kept:
        antecedents = np.searchsorted(used, rules.antecedents)
        order = np.argsort(by_name[antecedents], axis=1, kind="stable")
        antecedents = np.take_along_axis(antecedents, order, axis=1)
        support = rules.counts / n
        antecedent_support = rules.antecedent_counts / n
        consequent_support = found.item_counts[rules.consequents] / n
        confidence = rules.counts / rules.antecedent_counts
        with np.errstate(divide="ignore", invalid="ignore"):
            conviction = np.where(
                rules.counts < rules.antecedent_counts,
                (1 - consequent_support) / (1 - confidence),
                math.inf,
            )
        parts.append(
            pl.DataFrame({
                "antecedents": used_names.gather(antecedents.ravel())
                .reshape(antecedents.shape)
                .cast(pl.List(pl.Utf8)),
                "consequent": used_names.gather(np.searchsorted(used, rules.consequents)),
                "support": support,
                "confidence": confidence,
                "lift": confidence / consequent_support,
                "leverage": support - antecedent_support * consequent_support,
                "conviction": conviction,
                "antecedent_support": antecedent_support,
                "consequent_support": consequent_support,
                "count": rules.counts,
            })
        )  # fmt: skip
    # Stable, so that ties keep the order of the itemsets (by item index): the same table
    # from the same baskets.
    return pl.concat(parts).sort(
        ["lift", "confidence", "support", "consequent"],
        descending=[True, True, True, False],
        maintain_order=True,
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
