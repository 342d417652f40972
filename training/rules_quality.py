"""How well the rules predict what is bought together, on held-out baskets, against popularity.

The task is the one the bundle routes serve: given an item, propose what goes with it. Every
test basket with at least two items that training saw becomes one query per such item (the
anchor); the basket's other items are what should be proposed. Each anchor gets three lists of
``n`` items, never the anchor itself:

* ``rules``: the consequents of the anchor's single-item rules, strongest first (shorter, or
  empty, when it has fewer rules);
* ``rules_then_popular``: the same, completed from the most popular items to ``n``;
* ``popular``: the most popular items alone, the baseline every model here is compared with.

Hit rate@n is the share of anchors whose list holds at least one other item of the basket;
recall@n the share of the basket's other items found, averaged over anchors; coverage the share
of anchors with at least one rule. Popularity is the training baskets' (how many held each item).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from features.baskets import Baskets
from training.rules import ComplementTable

__all__ = ["complement_quality"]

#: The lists each anchor gets, in the order reported.
LISTS = ("rules", "rules_then_popular", "popular")
#: Anchors scored at once (bounds the (anchors x candidates x candidates) temporaries).
_ANCHORS_PER_CHUNK = 100_000


def complement_quality(
    rules: pl.DataFrame, train: Baskets, test: Baskets, n: int = 5
) -> dict[str, Any]:
    """Hit rate and recall at ``n`` of each list on the ``test`` baskets (see the module)."""
    baskets, items = _known_items(train, test)
    sizes = np.bincount(baskets, minlength=test.n_baskets)
    queried = sizes[baskets] >= 2
    anchor_baskets, anchors = baskets[queried], items[queried]
    report: dict[str, Any] = {
        "n": n,
        "test_baskets": int((sizes >= 2).sum()),
        "anchors": len(anchors),
    }
    if not len(anchors):
        return report
    table = ComplementTable.from_rules(rules, train.item_names, np.ones(train.n_items, bool), n)
    popularity = np.asarray(train.matrix.sum(axis=0)).ravel()
    held = np.unique(baskets * train.n_items + items)
    hits = dict.fromkeys(LISTS, 0.0)
    recalled = dict.fromkeys(LISTS, 0.0)
    covered = 0
    for start in range(0, len(anchors), _ANCHORS_PER_CHUNK):
        chunk = slice(start, start + _ANCHORS_PER_CHUNK)
        ruled = table.gather(anchors[chunk]).items
        popular = _popular_without(popularity, anchors[chunk], n)
        lists = {
            "rules": ruled,
            "rules_then_popular": _first_distinct(np.hstack([ruled, popular]), n),
            "popular": popular,
        }
        others = sizes[anchor_baskets[chunk]] - 1
        for name, listed in lists.items():
            keys = anchor_baskets[chunk, None] * train.n_items + np.maximum(listed, 0)
            found = (listed >= 0) & np.isin(keys, held)
            hits[name] += float(found.any(axis=1).sum())
            recalled[name] += float((found.sum(axis=1) / others).sum())
        covered += int((ruled[:, 0] >= 0).sum())
    report["coverage"] = covered / len(anchors)
    report["hit_rate"] = {name: hits[name] / len(anchors) for name in LISTS}
    report["recall"] = {name: recalled[name] / len(anchors) for name in LISTS}
    return report


def _known_items(train: Baskets, test: Baskets) -> tuple[np.ndarray, np.ndarray]:
    """(test basket, train item index) of every test basket item that training saw."""
    index = {name: position for position, name in enumerate(train.item_names.tolist())}
    in_train = np.array([index.get(name, -1) for name in test.item_names.tolist()], dtype=np.int64)
    cells = test.matrix.tocoo()
    items = in_train[cells.col]
    known = items >= 0
    return cells.row[known].astype(np.int64), items[known]


def _popular_without(counts: np.ndarray, anchors: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` most popular items for each anchor, the anchor itself left out."""
    top = np.argsort(-counts, kind="stable")[: n + 1]
    candidates = np.broadcast_to(top, (len(anchors), len(top)))
    return _first_distinct(np.where(candidates == anchors[:, None], -1, candidates), n)


def _first_distinct(candidates: np.ndarray, n: int) -> np.ndarray:
    """Per row, the first ``n`` distinct non-negative entries in order, -1 padded."""
    width = candidates.shape[1]
    earlier = np.tril(np.ones((width, width), dtype=bool), k=-1)
    repeated = ((candidates[:, :, None] == candidates[:, None, :]) & earlier).any(axis=2)
    keep = (candidates >= 0) & ~repeated
    order = np.argsort(~keep, axis=1, kind="stable")[:, :n]
    picked = np.take_along_axis(candidates, order, axis=1)
    return np.where(np.take_along_axis(keep, order, axis=1), picked, -1)
