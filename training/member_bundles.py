"""Bundles for members: each member's top recommendations paired with what goes with them.

A member's bundle is an anchor (one of the member's top recommendations) and a complement: the
consequent of the anchor's strongest frequently-bought-together rule that the member may be
offered, or, when the anchor has no such rule, a stand-in from its category (an item similar to
it, else the category's best seller), flagged and scored as independence (lift 1). A bundle
scores its complement's lift over its anchor's rank, and a member gets the best ``n`` bundles
with no item twice. A bundle whose anchor and complement are together the antecedents of a rule
gets that rule's consequent as a third item (the strongest the member may be offered that is in
none of their bundles).

The same code answers one member (``GET /v1/members/{id}/bundles``) and a million (the
campaign export): everything runs on arrays of shape (members, anchors, candidates), so a batch
costs a few vector operations per anchor rank, not a Python loop per member. Per-item tables
make that possible: the strongest complements of every item (from the rules, once per artifact)
and its stand-ins (computed the first time an item is an anchor, then kept).

"May be offered": available in the catalog, and not bought by the member (in the artifact's
history or since), unless members buy the item again (groceries, refills: the data's rebuy rate
or the catalog's ``repeatable`` flag: ``ArtifactRecommender.repeatable``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from features import columns as col
from training.recommend import ArtifactRecommender, MemberContext, RankedLists
from training.recommend.context import row_cells
from training.rules import Complements, ComplementTable

__all__ = ["BundleComposer", "MemberBundles"]

#: Anchors considered per bundle asked for (some have no complement left, some repeat an item).
ANCHORS_PER_BUNDLE = 3
#: Complements kept per item, strongest first: an anchor whose complements the member has all
#: bought gets a stand-in instead.
COMPLEMENTS_PER_ITEM = 16
#: Stand-ins kept per item.
STAND_INS_PER_ITEM = 16
#: Similar items fetched beyond the stand-ins needed, since those of other categories drop out.
_SIMILAR_OVERFETCH = 50
#: Anchors whose similar items are computed at once (a factor model's similarities are a
#: dense anchors x catalog product).
_SIMILAR_CHUNK = 256
#: Marks a stand-in row not computed yet.
_NOT_COMPUTED = -2


@dataclass(frozen=True)
class MemberBundles:
    """The bundles of a batch of members, best first: arrays of shape (members, n).

    A row with fewer than ``n`` bundles is padded with -1 (items) and NaN (measures)."""

    anchors: np.ndarray
    #: The anchor's score in the member's recommendations.
    anchor_scores: np.ndarray
    complements: np.ndarray
    #: True: the complement comes from a rule; False: a same-category stand-in.
    from_rules: np.ndarray
    #: The rule's measures (lift 1 and NaN support and confidence for a stand-in).
    lift: np.ndarray
    confidence: np.ndarray
    support: np.ndarray
    #: Complement lift over anchor rank: the order of a member's bundles.
    scores: np.ndarray
    #: A third item, proposed by a rule whose antecedents are the anchor and the complement
    #: (-1: no such rule the member may be offered), and that rule's measures.
    thirds: np.ndarray
    third_measures: dict[str, np.ndarray]
    #: The prices of the bundle's items added up (NaN when the catalog lacks one).
    total_price: np.ndarray
    #: Per member: the model that ranked the anchors.
    models: list[str]
    #: Per member: popularity ranked the anchors, or a stand-in completed a bundle.
    fallback: np.ndarray

    def counts(self) -> np.ndarray:
        """Bundles found per member."""
        return (self.anchors >= 0).sum(axis=1)


class BundleComposer:
    """Composes member bundles from an artifact's recommender and its association rules."""

    def __init__(self, recommender: ArtifactRecommender, rules: pl.DataFrame | None) -> None:
        self._recommender = recommender
        artifact = recommender.artifact
        self._n_items = len(artifact.item_ids)
        self._available = recommender.allowed_items()
        self._repeatable = recommender.repeatable
        self._codes = recommender.category_codes
        self._prices = _prices(artifact.catalog, self._n_items)
        self._complement_table = ComplementTable.from_rules(
            rules, artifact.item_ids.external_ids, self._available, COMPLEMENTS_PER_ITEM
        )
        self._pair_table = ComplementTable.from_rules(
            rules, artifact.item_ids.external_ids, self._available, COMPLEMENTS_PER_ITEM,
            antecedents=2,
        )  # fmt: skip
        self._stand_in_items = np.full(
            (self._n_items, STAND_INS_PER_ITEM), _NOT_COMPUTED, dtype=np.int64
        )
        popularity = recommender.popularity_of(-1)
        self._best_sellers = np.argsort(-popularity, kind="stable")
        self._best_sellers = self._best_sellers[self._available[self._best_sellers]]
        by_category = np.argsort(self._codes[self._best_sellers], kind="stable")
        self._category_best_sellers = self._best_sellers[by_category]
        self._category_starts = np.searchsorted(
            self._codes[self._category_best_sellers], np.arange(len(recommender.categories) + 1)
        )

    def for_members(
        self,
        member_ids: Sequence[str],
        n: int,
        *,
        contexts: Sequence[MemberContext | None] | None = None,
    ) -> MemberBundles:
        """The best ``n`` bundles of each member (in the order given): anchors from the
        member's recommendations, with what ``contexts`` adds (events since the artifact)."""
        depth = min(ANCHORS_PER_BUNDLE * n, self._n_items)
        ranked = self._recommender.ranked(member_ids, depth, contexts=contexts)
        return self._compose(ranked, self._not_again(ranked.members, contexts), n)

    def stand_ins(
        self,
        anchors: Sequence[int] | np.ndarray,
        count: int,
        taken: Sequence[Collection[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``count`` stand-ins per anchor, as (items, scores) of shape (anchors, count),
        -1 padded: available items of the anchor's category (any category when it has none),
        never the anchor or an item of ``taken`` (one collection per anchor). The items most
        similar to the anchor come first, with the similarity model's scores; the category's
        best sellers complete them, scored below."""
        anchors = np.asarray(anchors, dtype=np.int64)
        items = np.full((len(anchors), count), -1, dtype=np.int64)
        scores = np.full((len(anchors), count), -np.inf, dtype=np.float32)
        extra = max((len(row) for row in taken), default=0) if taken else 0
        similar, similar_scores = self._similar(anchors, count + extra + _SIMILAR_OVERFETCH)
        for row, anchor in enumerate(anchors.tolist()):
            code = int(self._codes[anchor])
            excluded = {anchor, *(taken[row] if taken else ())}
            found: list[int] = []
            found_scores: list[float] = []
            for item, score in zip(
                similar[row].tolist(), similar_scores[row].tolist(), strict=True
            ):
                if len(found) == count:
                    break
                if item < 0 or item in excluded or not self._available[item]:
                    continue
                if code >= 0 and self._codes[item] != code:
                    continue
                excluded.add(item)
                found.append(item)
                found_scores.append(score)
            floor = min([*found_scores, 0.0]) - 1.0
            for item in self._best_sellers_of(code)[: count + len(excluded)].tolist():
                if len(found) == count:
                    break
                if item not in excluded:
                    found.append(item)
                    found_scores.append(floor)
            items[row, : len(found)] = found
            scores[row, : len(found)] = found_scores
        return items, scores

    def _similar(self, anchors: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        """The similarity model's nearest items per anchor (none without such a model)."""
        name = self._recommender.similarity_model()
        fetch = min(fetch, self._n_items - 1)
        if name is None or fetch <= 0:
            return np.empty((len(anchors), 0), np.int64), np.empty((len(anchors), 0), np.float32)
        model = self._recommender.artifact.model(name)
        parts = [
            model.similar_items(anchors[start : start + _SIMILAR_CHUNK], fetch)
            for start in range(0, len(anchors), _SIMILAR_CHUNK)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _best_sellers_of(self, code: int) -> np.ndarray:
        """Available items of category ``code`` by popularity (every category for -1)."""
        if code < 0:
            return self._best_sellers
        start, stop = self._category_starts[code], self._category_starts[code + 1]
        return self._category_best_sellers[start:stop]

    def _not_again(
        self, indices: np.ndarray, contexts: Sequence[MemberContext | None] | None
    ) -> np.ndarray:
        """Sorted keys (row x items + item) of what each member may not be offered: their
        purchases, in the artifact and since, except repeatable items."""
        purchases = self._recommender.artifact.purchases
        rows, cells = row_cells(purchases.indptr, indices)
        items = purchases.indices[cells].astype(np.int64)
        row_parts, item_parts = [rows], [items]
        for row, context in enumerate(contexts or ()):
            if context is not None and len(context.purchased):
                row_parts.append(np.full(len(context.purchased), row, dtype=np.int64))
                item_parts.append(np.asarray(context.purchased, dtype=np.int64))
        rows, items = np.concatenate(row_parts), np.concatenate(item_parts)
        again = self._repeatable[items]
        return np.unique(rows[~again] * self._n_items + items[~again])

    def _stand_in_table(self, anchors: np.ndarray) -> np.ndarray:
        """Stand-ins of ``anchors`` (any shape) from the per-item table, computing the rows
        of items that are anchors for the first time."""
        missing = np.unique(anchors[self._stand_in_items[anchors, 0] == _NOT_COMPUTED])
        if len(missing):
            self._stand_in_items[missing], _ = self.stand_ins(missing, STAND_INS_PER_ITEM)
        return self._stand_in_items[anchors]

    def _compose(self, ranked: RankedLists, not_again: np.ndarray, n: int) -> MemberBundles:
        """Pairs every anchor with its first complement the member may be offered (else its
        first such stand-in), then keeps each member's best ``n`` pairs with no item twice."""
        anchors = ranked.items
        n_members, depth = anchors.shape
        present = anchors >= 0
        safe = np.maximum(anchors, 0)
        keys = np.arange(n_members, dtype=np.int64)[:, None, None] * self._n_items

        def may_offer(candidates: np.ndarray) -> np.ndarray:
            """Candidates (members first) that exist and the member may be offered."""
            return (candidates >= 0) & ~_contains(not_again, keys + np.maximum(candidates, 0))

        def offerable(candidates: np.ndarray) -> np.ndarray:
            return may_offer(candidates) & present[..., None]

        ruled = self._complement_table.gather(safe)
        ok = offerable(ruled.items)
        from_rules = ok.any(axis=2)
        first = ok.argmax(axis=2)[..., None]
        complements = np.take_along_axis(ruled.items, first, axis=2)[..., 0]
        measures = {
            name: np.where(from_rules, np.take_along_axis(values, first, axis=2)[..., 0], np.nan)
            for name, values in ruled.measures.items()
        }
        needs_stand_in = present & ~from_rules
        if needs_stand_in.any():
            stand_ins = np.full((n_members, depth, STAND_INS_PER_ITEM), -1, dtype=np.int64)
            stand_ins[needs_stand_in] = self._stand_in_table(anchors[needs_stand_in])
            usable = offerable(stand_ins)
            picked = np.take_along_axis(stand_ins, usable.argmax(axis=2)[..., None], axis=2)
            complements = np.where(from_rules, complements, picked[..., 0])
            found = from_rules | usable.any(axis=2)
        else:
            found = from_rules
        lift = np.where(from_rules, measures["lift"], 1.0)
        scores = np.where(found, lift / np.arange(1, depth + 1), -np.inf)
        chosen = _distinct_best(anchors, complements, scores, found, n)
        taken = chosen >= 0
        position = np.maximum(chosen, 0)

        def pick(values: np.ndarray, pad: float | int) -> np.ndarray:
            return np.where(taken, np.take_along_axis(values, position, axis=1), pad)

        chosen_anchors, chosen_complements = pick(anchors, -1), pick(complements, -1)
        chosen_from_rules = pick(from_rules, False).astype(bool)
        thirds = self._thirds(chosen_anchors, chosen_complements, may_offer)
        return MemberBundles(
            anchors=chosen_anchors,
            anchor_scores=pick(ranked.scores, np.nan),
            complements=chosen_complements,
            from_rules=chosen_from_rules,
            lift=pick(lift, np.nan),
            confidence=pick(measures["confidence"], np.nan),
            support=pick(measures["support"], np.nan),
            scores=pick(scores, np.nan),
            thirds=thirds.items,
            third_measures=thirds.measures,
            total_price=np.where(
                taken, self._total_prices(chosen_anchors, chosen_complements, thirds.items), np.nan
            ),
            models=ranked.models,
            fallback=ranked.fallback | (taken & ~chosen_from_rules).any(axis=1),
        )

    def _thirds(
        self,
        anchors: np.ndarray,
        complements: np.ndarray,
        offerable: Callable[[np.ndarray], np.ndarray],
    ) -> Complements:
        """A third item for each chosen pair: the strongest consequent of the rules whose
        antecedents are the pair that the member may be offered and that is in none of the
        member's bundles yet (-1 when there is none), one vector step per bundle rank."""
        found = self._pair_table.gather(np.maximum(anchors, 0), np.maximum(complements, 0))
        candidates = found.items
        ok = offerable(candidates) & (anchors >= 0)[..., None]
        in_bundles = np.concatenate([anchors, complements], axis=1)
        ok &= ~(candidates[..., None] == in_bundles[:, None, None, :]).any(axis=-1)
        n_members, n = anchors.shape
        rows = np.arange(n_members)
        items = np.full((n_members, n), -1, dtype=np.int64)
        measures = {name: np.full((n_members, n), np.nan) for name in found.measures}
        for rank in range(n):
            usable = ok[:, rank] & ~(candidates[:, rank, :, None] == items[:, None, :rank]).any(-1)
            first = usable.argmax(axis=1)
            has = usable[rows, first]
            items[has, rank] = candidates[rows, rank, first][has]
            for name, values in found.measures.items():
                measures[name][has, rank] = values[rows, rank, first][has]
        return Complements(items, measures)

    def _total_prices(self, *items: np.ndarray) -> np.ndarray:
        """Sum of the catalog prices of each bundle's items (-1: no item), NaN when one is
        unknown, rounded to 1e-9 so that 25.99 + 27.99 reads 53.98 (not binary floating
        point's 53.980000000000004) in responses and exports."""
        total = np.zeros(items[0].shape)
        for part in items:
            total += np.where(part >= 0, self._prices[np.maximum(part, 0)], 0.0)
        return np.round(total, 9)


def _prices(catalog: pl.DataFrame | None, n_items: int) -> np.ndarray:
    """Each item's catalog price (NaN where unknown)."""
    if catalog is None or col.PRICE not in catalog.columns:
        return np.full(n_items, np.nan)
    return catalog.get_column(col.PRICE).cast(pl.Float64).fill_null(np.nan).to_numpy()


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in ``sorted_keys`` (vectorised set membership)."""
    if not len(sorted_keys):
        return np.zeros(keys.shape, dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[positions] == keys


def _distinct_best(
    anchors: np.ndarray, complements: np.ndarray, scores: np.ndarray, found: np.ndarray, n: int
) -> np.ndarray:
    """Per member, the positions (along the anchor axis) of the best ``n`` pairs, best first,
    such that no item is in two of them; -1 pads. Greedy by score (ties: better-ranked anchor
    first), one vector step per anchor rank for all members at once."""
    n_members, depth = anchors.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    rows = np.arange(n_members)
    used = np.full((n_members, 2 * n), -1, dtype=np.int64)
    chosen = np.full((n_members, n), -1, dtype=np.int64)
    count = np.zeros(n_members, dtype=np.int64)
    for step in range(depth):
        if (count == n).all():
            break
        position = order[:, step]
        anchor, complement = anchors[rows, position], complements[rows, position]
        clash = (used == anchor[:, None]).any(axis=1) | (used == complement[:, None]).any(axis=1)
        take = np.flatnonzero(found[rows, position] & ~clash & (count < n))
        if not len(take):
            continue
        slot = count[take]
        chosen[take, slot] = position[take]
        used[take, 2 * slot] = anchor[take]
        used[take, 2 * slot + 1] = complement[take]
        count[take] += 1
    return chosen
