"""The recommender: a loaded model artifact's answers to "what should these members see?".

The path of one list, in four hops: ``recommend`` (or ``ranked``, for arrays) asks
``_ranked_rows`` for each member's row; a member the artifact knows with nothing new is a row
read from the precomputed lists, anyone else goes to ``_scored``, which folds their context
into their history and exclusions (``context.py``), has the answering model rank the allowed
items (``Candidates.top`` in ``candidates.py``: FAISS index or exact scoring) and completes
the row from popularity (``fallback.py``). ``recommend`` cuts each row into a list (with the
cap per category); ``ranked`` stacks the rows into arrays (``RankedRows`` in ``answers.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
import polars as pl

from features import columns as col
from features.purchase_cycles import REPEATABLE_BY_DATA
from training.artifact import MemberLists, ModelArtifact
from training.artifact.layout import ITEM_CYCLES_FILE
from training.models.base import Recommender
from training.recommend.answers import (
    DECLARED_MODEL,
    FALLBACK_MODEL,
    ItemList,
    RankedLists,
    RankedRow,
    RankedRows,
    Recommendation,
)
from training.recommend.candidates import Candidates, catalog_flag
from training.recommend.context import NO_CONTEXT, MemberContext, MemberHistory
from training.recommend.fallback import PopularityFallback

__all__ = ["ArtifactRecommender", "repeatable_items"]

#: With a cap per category, the model ranks this many times ``n`` candidates to choose from.
_DIVERSIFY_DEPTH = 10
#: The training target whose lists are for the member's next basket, repeats included (the
#: manifest's ``metrics["target"]``, ``training.config.TARGETS``; absent: "new-items").
NEXT_BASKET: Final = "next-basket"


def repeatable_items(artifact: ModelArtifact) -> np.ndarray:
    """Per item, whether members buy it again (:mod:`features.purchase_cycles`): the catalog's
    ``repeatable`` flag, or the data's rebuy rate (the item cycles' ``repeatable_by_data``;
    an artifact trained before them has the flag alone). The one mask of what may be offered
    again after a purchase: member bundles and the next-basket default of "exclude purchased"
    both read it from the recommender."""
    flagged = catalog_flag(artifact.catalog, col.REPEATABLE, len(artifact.item_ids), False)
    path = artifact.extra_files.get(ITEM_CYCLES_FILE)
    if path is None:
        return flagged
    by_data = pl.read_parquet(path, columns=[REPEATABLE_BY_DATA]).to_series().to_numpy()
    return flagged | by_data.astype(bool)


class ArtifactRecommender:
    """Recommendations from a model artifact, with filters, live context and popularity
    fallback."""

    def __init__(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self._n_items = len(artifact.item_ids)
        self._candidates = Candidates(artifact)
        #: Items that stay recommendable after a purchase (:func:`repeatable_items`).
        self.repeatable = repeatable_items(artifact)
        self.target = str(artifact.manifest.get("metrics", {}).get("target", "new-items"))
        self._history = MemberHistory(
            artifact, self.repeatable if self.target == NEXT_BASKET else None
        )
        self._popularity = PopularityFallback(artifact, self._candidates.tie_breaker)

    @property
    def categories(self) -> list[str]:
        """Every category of the catalog, sorted."""
        return self._candidates.categories

    @property
    def category_codes(self) -> np.ndarray:
        """Each item's position in :attr:`categories` (-1: the item has no category)."""
        return self._candidates.category_codes

    def allowed_items(self, category: str | None = None) -> np.ndarray:
        """Boolean mask of items that may be recommended (available, in ``category``)."""
        return self._candidates.allowed(category)

    def recommend(
        self,
        member_ids: Sequence[str],
        n: int,
        *,
        model: str | None = None,
        category: str | None = None,
        exclude_purchased: bool | None = None,
        contexts: Sequence[MemberContext | None] | None = None,
        max_per_category: int | None = None,
    ) -> list[Recommendation]:
        """Top-``n`` lists for ``member_ids`` (in the same order).

        ``contexts`` (one per member, or None) adds what the artifact does not know of each
        member. ``exclude_purchased``: True leaves out every purchase, False none, None the
        artifact's default (every purchase; for a next-basket artifact, every purchase of an
        item members do not buy again). ``max_per_category`` caps the items of one category
        in a list (storefront carousels); the cap gives way only when the candidates cannot
        fill ``n`` otherwise.
        """
        depth = n if max_per_category is None else min(self._n_items, n * _DIVERSIFY_DEPTH)
        rows = self._ranked_rows(member_ids, depth, model, category, exclude_purchased, contexts)
        return [
            self._recommendation(member_id, row, n, max_per_category)
            for member_id, row in zip(member_ids, rows.each(), strict=True)
        ]

    def ranked(
        self,
        member_ids: Sequence[str],
        depth: int,
        *,
        model: str | None = None,
        category: str | None = None,
        exclude_purchased: bool | None = None,
        contexts: Sequence[MemberContext | None] | None = None,
    ) -> RankedLists:
        """Every member's top ``depth`` as arrays (one row per member, in order): what
        :meth:`recommend` lists, for callers that work on many members at once (campaign
        exports, bundles for a batch of members)."""
        rows = self._ranked_rows(member_ids, depth, model, category, exclude_purchased, contexts)
        return rows.stacked()

    def _ranked_rows(
        self,
        member_ids: Sequence[str],
        depth: int,
        model: str | None,
        category: str | None,
        exclude_purchased: bool | None,
        contexts: Sequence[MemberContext | None] | None,
    ) -> RankedRows:
        """Each member's ranked row: a member the artifact knows, with nothing in their
        context, is read from the artifact's precomputed lists when they hold the answer
        (:meth:`_precomputed`); everyone else is scored (:meth:`_scored`)."""
        name = self._model_name(model)
        contexts = [context or NO_CONTEXT for context in contexts or [None] * len(member_ids)]
        indices = self.member_indices(member_ids)
        lists = self._precomputed(name, category, exclude_purchased, depth)
        listed = [
            lists is not None and index >= 0 and context.adds_nothing
            for index, context in zip(indices.tolist(), contexts, strict=True)
        ]
        scored = None
        if lists is None or not all(listed):
            unlisted = [row for row, done in enumerate(listed) if not done]
            scored = self._scored(
                name, indices[unlisted], [contexts[row] for row in unlisted], depth,
                category=category, exclude_purchased=exclude_purchased,
            )  # fmt: skip
        return RankedRows(depth=depth, indices=indices, listed=listed, lists=lists, scored=scored)

    def member_lists(
        self,
        depth: int,
        *,
        model: str | None = None,
        batch: int = 4096,
        progress: Callable[[int], None] | None = None,
    ) -> MemberLists:
        """Every known member's top ``depth`` by ``model`` (default: the chosen one), purchases
        excluded as by default, in batches of ``batch`` members: the precomputed lists that
        :func:`training.artifact.add_member_lists` stores. ``progress`` gets the members done.

        What :meth:`_scored` answers a member with no context, read from the artifact's row
        slices for a whole batch at once."""
        name = self._model_name(model)
        depth = min(depth, self._n_items)
        n_members = len(self.artifact.member_ids)
        items = np.full((n_members, depth), -1, dtype=np.int32)
        scores = np.full((n_members, depth), -np.inf, dtype=np.float32)
        from_model = np.zeros(n_members, dtype=np.int32)
        for start in range(0, n_members, batch):
            members = np.arange(start, min(start + batch, n_members), dtype=np.int64)
            excluded = self._history.excluded_range(start, start + len(members))
            histories = self.artifact.histories[members[0] : members[-1] + 1]
            ids, found = self._candidates.top(name, members, histories, excluded, depth)
            from_model[members] = self._popularity.complete(
                ids, found, members, None, excluded, self._candidates.available
            )
            items[members], scores[members] = ids, found
            if progress is not None:
                progress(len(members))
        return MemberLists(model=name, items=items, scores=scores, from_model=from_model)

    def supports_similarity(self, name: str) -> bool:
        """Whether model ``name`` knows item similarity (its own, or through item vectors)."""
        model = type(self.artifact.model(name))
        return (
            model.similar_items is not Recommender.similar_items
            or model.item_vectors is not Recommender.item_vectors
        )

    def similarity_model(self) -> str | None:
        """The model that answers "similar items" by default: the chosen one when it can,
        else the first in the artifact that can; None when only popularity can."""
        names = [self.artifact.chosen, *self.artifact.models]
        return next((name for name in names if self.supports_similarity(name)), None)

    def similar_items(self, item_index: int, n: int, *, model: str | None = None) -> ItemList:
        """The ``n`` items most similar to item ``item_index``, available and distinct, by
        ``model`` (default :meth:`similarity_model`); completed from popularity (flagged) when
        the model knows fewer, so that the list holds ``n`` items when the catalog does."""
        name = model or self.similarity_model()
        available = self._candidates.available
        allowed = available.copy()
        allowed[item_index] = False
        ids = np.full(n, -1, dtype=np.int64)
        scores = np.full(n, -np.inf, dtype=np.float32)
        if name is not None:
            # Over-fetch by the unavailable items, which the model does not know to skip.
            depth = min(self._n_items, n + int((~available).sum()))
            found, found_scores = self.artifact.model(name).similar_items(
                np.array([item_index]), depth
            )
            keep = (found[0] >= 0) & allowed[np.maximum(found[0], 0)]
            kept = found[0][keep][:n]
            ids[: len(kept)], scores[: len(kept)] = kept, found_scores[0][keep][:n]
        padded = bool((ids < 0).any())
        if padded:
            ids, scores = self._popularity.fill(
                ids, scores, self._popularity.of(-1), np.empty(0, np.int64), allowed
            )
        found_mask = ids >= 0
        return ItemList(
            item_ids=self.artifact.item_ids.external_ids[ids[found_mask]].tolist(),
            scores=scores[found_mask].tolist(),
            model=name if name is not None else FALLBACK_MODEL,
            fallback=padded,
            item_indices=ids[found_mask].tolist(),
        )

    def member_indices(self, member_ids: Sequence[str]) -> np.ndarray:
        """Internal indices, -1 for members the artifact does not know (dict lookups:
        O(members))."""
        lookup = self.artifact.member_ids.get
        found = [lookup(member_id) for member_id in member_ids]
        return np.array([-1 if index is None else index for index in found], dtype=np.int64)

    def purchased(self, member_index: int, context: MemberContext | None = None) -> np.ndarray:
        """Item indices the member bought: in the artifact (when known) and since (context)."""
        return self._history.excluded(member_index, context or NO_CONTEXT, True)

    def popularity_of(self, member_index: int) -> np.ndarray:
        """Segment popularity for a known member with a segment, else global popularity."""
        return self._popularity.of(member_index)

    def _model_name(self, model: str | None) -> str:
        """The answering model's name (default: the chosen one); an unknown name fails here,
        listing the models there are."""
        name = model or self.artifact.chosen
        self.artifact.model(name)
        return name

    def _precomputed(
        self, name: str, category: str | None, exclude_purchased: bool | None, depth: int
    ) -> MemberLists | None:
        """The artifact's precomputed lists when they hold the answer to such a request (same
        model, no category filter, purchases excluded as by default, deep enough), else None."""
        lists = self.artifact.lists
        if (
            lists is None
            or lists.model != name
            or category is not None
            or not self._history.is_default(exclude_purchased)
            or depth > lists.depth
        ):
            return None
        return lists

    def _scored(
        self,
        name: str,
        indices: np.ndarray,
        contexts: Sequence[MemberContext],
        depth: int,
        *,
        category: str | None,
        exclude_purchased: bool | None,
    ) -> RankedLists:
        """Top ``depth`` of members (``indices``, -1 when unknown) scored by their answering
        model (one batch per model), each row the model could not fill completed from the
        member's popularity."""
        items = np.full((len(indices), depth), -1, dtype=np.int64)
        scores = np.full((len(indices), depth), -np.inf, dtype=np.float32)
        excluded = [
            self._history.excluded(index, context, exclude_purchased)
            for index, context in zip(indices, contexts, strict=True)
        ]
        answering = [
            self._answering_model(name, index, context)
            for index, context in zip(indices, contexts, strict=True)
        ]
        by_model: dict[str, list[int]] = {}
        for row, answered_by in enumerate(answering):
            if answered_by is not None:  # None: popularity alone completes every slot below
                by_model.setdefault(answered_by, []).append(row)
        for model_name, group in by_model.items():
            histories = self._history.histories(indices[group], [contexts[row] for row in group])
            items[group], scores[group] = self._candidates.top(
                model_name, indices[group], histories, [excluded[row] for row in group], depth,
                category,
            )  # fmt: skip
        from_model = self._popularity.complete(
            items, scores, indices, contexts, excluded, self._candidates.allowed(category)
        )
        personal = np.array(
            [answered_by is not None and not context.declared
             for answered_by, context in zip(answering, contexts, strict=True)],
            dtype=bool,
        )  # fmt: skip
        return RankedLists(
            items=items,
            scores=scores,
            models=[answered_by or FALLBACK_MODEL for answered_by in answering],
            fallback=~personal | (from_model < depth),
            members=indices,
            from_model=np.where(personal, from_model, 0),
        )

    def _answering_model(self, name: str, index: int, context: MemberContext) -> str | None:
        """The model that scores this member, or None when only popularity can answer."""
        if context.declared and len(context.items):
            return DECLARED_MODEL if DECLARED_MODEL in self.artifact.models else name
        if index >= 0 or len(context.items):
            return name
        return None

    def _recommendation(
        self, member_id: str, row: RankedRow, n: int, max_per_category: int | None
    ) -> Recommendation:
        """One member's answer from their ranked row (-1: no item), capped per category when
        asked. The row's first ``from_model`` items are the model's, the rest popularity's:
        the list is flagged fallback when it shows one of the rest (or is empty and the model
        ranked nothing), whatever deeper items the cap looked at."""
        if max_per_category is None:
            shown = np.flatnonzero(row.items >= 0)[:n]
        else:
            shown = self._candidates.capped(row.items, n, max_per_category)
        kept = row.items[shown]
        return Recommendation(
            member_id=member_id,
            item_ids=self.artifact.item_ids.external_ids[kept].tolist(),
            scores=row.scores[shown].tolist(),
            model=row.model,
            fallback=bool((shown >= row.from_model).any()) if len(shown) else row.from_model == 0,
            item_indices=kept.tolist(),
        )
