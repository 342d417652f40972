"""Answering "what should these members see?" from a loaded bundle, for any caller.

The CLI (`recsys recommend`), campaign exports and the API all answer through
:class:`BundleRecommender`, so that the rules are the same everywhere:

* a member the bundle knows is scored by the requested model (default: the chosen one);
* what a caller knows beyond the bundle (:class:`MemberContext`: events since it was built,
  declared preferences, a segment) joins the member's history and exclusions, so that fresh
  behaviour counts without retraining and a member the bundle lacks but who has events gets a
  personal answer from the model;
* a member with nothing to go on gets popularity (of their segment when known), flagged
  ``fallback``; so is a member answered from declared preferences (by the content model);
* exclusions (items already purchased), the category filter and unavailable catalog items
  are applied before the top-n cut, never after, and a list that a model could not fill is
  completed from popularity, so every list holds exactly ``n`` distinct items whenever the
  filtered catalog has that many; an optional cap per category diversifies it.

Requests from the API are one member at a time, so the per-call work is kept proportional to
the members asked for: ids are looked up in the id map's dict, and history and exclusion rows
are assembled from the bundle's CSR arrays directly rather than by sparse fancy indexing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from training.artifact import MemberLists, ModelArtifact
from training.models.base import Recommender, popularity_tie_breaker, top_n

__all__ = [
    "DECLARED_MODEL",
    "FALLBACK_MODEL",
    "ArtifactRecommender",
    "ItemList",
    "MemberContext",
    "RankedLists",
    "Recommendation",
    "catalog_flag",
]

#: The name reported for lists that popularity answered alone (members the bundle lacks).
FALLBACK_MODEL = "popular"

#: The model that answers from declared preferences when the bundle has it: it needs no
#: behaviour, only what the liked items look like.
DECLARED_MODEL = "content"

#: With a cap per category, the model ranks this many times ``n`` candidates to choose from.
_DIVERSIFY_DEPTH = 10


@dataclass(frozen=True)
class ItemList:
    """A ranked list of items, best first, and what answered it."""

    item_ids: list[str]
    scores: list[float]
    model: str
    #: True when popularity answered instead of the model (nothing known of the member), or
    #: filled the slots the model left empty, or the content model answered from declared
    #: preferences.
    fallback: bool
    #: The bundle's internal indices of ``item_ids`` (callers look items up by them).
    item_indices: list[int] = field(default_factory=list, kw_only=True)


@dataclass(frozen=True)
class Recommendation(ItemList):
    """One member's list."""

    member_id: str = field(kw_only=True)


@dataclass(frozen=True)
class RankedLists:
    """Ranked lists of many members as arrays, one row per member."""

    #: Internal item indices, best first; -1 where the filtered catalog ran out.
    items: np.ndarray
    scores: np.ndarray
    #: The model that answered each row (:data:`FALLBACK_MODEL` for popularity alone).
    models: list[str]
    #: Per row: popularity answered or completed it (see :attr:`ItemList.fallback`).
    fallback: np.ndarray
    #: Per row: the member's internal index (-1: a member the bundle does not know).
    members: np.ndarray
    #: Per row: how many leading items the answering model ranked before popularity completed
    #: the row (0 when popularity or declared preferences answered), so that a list cut from
    #: the row is flagged by what it shows, not by how deep the row went.
    from_model: np.ndarray


@dataclass(frozen=True)
class MemberContext:
    """What a caller knows about one member that the bundle does not.

    ``items`` and ``weights``: interactions since the bundle was built, as internal item indices
    and event weights (repeats allowed, they add up); they join the member's history row, from
    which ALS folds the member in and item-item and content models score. ``purchased``: items
    bought since; they join the exclusions. ``declared``: the items are preferences the member
    declared (a sign-up form), not behaviour. ``segment``: a segment code for a member the
    bundle does not know (segment popularity).
    """

    items: Sequence[int] = ()
    weights: Sequence[float] = ()
    purchased: Sequence[int] = ()
    segment: int | None = None
    declared: bool = False

    @property
    def adds_nothing(self) -> bool:
        """True when the member's answer is the bundle's alone (a segment only matters to
        members the bundle does not know)."""
        return not len(self.items) and not len(self.purchased) and not self.declared


_NO_CONTEXT = MemberContext()


def catalog_flag(
    catalog: pl.DataFrame | None, column: str, n_items: int, default: bool
) -> np.ndarray:
    """A boolean catalog column per item (``available``, ``repeatable``), ``default`` where
    the catalog or the column is missing or the value is null."""
    if catalog is None or column not in catalog.columns:
        return np.full(n_items, default)
    return catalog.get_column(column).fill_null(default).to_numpy().astype(bool)


class ArtifactRecommender:
    """Recommendations from a bundle, with filters, live context and popularity fallback."""

    def __init__(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self._n_items = len(artifact.item_ids)
        self._available = catalog_flag(artifact.catalog, col.AVAILABLE, self._n_items, True)
        self._tie_breaker = popularity_tie_breaker(artifact.popularity)
        self._category_names, self._category_codes = self._category_index(
            artifact.catalog, self._n_items
        )
        self._code_of = {name: code for code, name in enumerate(self._category_names)}
        self._allowed_tie_breaker = self._masked(self._tie_breaker, self._available)
        self._history_dtypes = (artifact.histories.data.dtype, artifact.histories.indices.dtype)

    @staticmethod
    def _category_index(catalog: pl.DataFrame | None, n_items: int) -> tuple[list[str], np.ndarray]:
        """Category names and one code per item (-1: no category), for fast masks and caps."""
        if catalog is None or col.CATEGORY not in catalog.columns:
            return [], np.full(n_items, -1, dtype=np.int32)
        categories = catalog.get_column(col.CATEGORY).cast(pl.Utf8)
        names = sorted(categories.drop_nulls().unique().to_list())
        codes = categories.replace_strict(
            names, list(range(len(names))), default=-1, return_dtype=pl.Int32
        )
        return names, codes.to_numpy()

    @staticmethod
    def _masked(tie_breaker: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The tie-breaker with ``-inf`` on items that may not be shown: adding it to the scores
        applies the popularity order and the filter in one vector operation per request."""
        return np.where(allowed, tie_breaker, -np.inf).astype(np.float32)

    @property
    def categories(self) -> list[str]:
        """Every category of the catalog, sorted."""
        return self._category_names

    @property
    def category_codes(self) -> np.ndarray:
        """Each item's position in :attr:`categories` (-1: the item has no category)."""
        return self._category_codes

    def allowed_items(self, category: str | None = None) -> np.ndarray:
        """Boolean mask of items that may be recommended (available, in ``category``)."""
        if category is None:
            return self._available
        code = self._code_of.get(category)
        if code is None:
            return np.zeros_like(self._available)
        return self._available & (self._category_codes == code)

    def recommend(
        self,
        member_ids: Sequence[str],
        n: int,
        *,
        model: str | None = None,
        category: str | None = None,
        exclude_purchased: bool = True,
        contexts: Sequence[MemberContext | None] | None = None,
        max_per_category: int | None = None,
    ) -> list[Recommendation]:
        """Top-``n`` lists for ``member_ids`` (in the same order).

        ``contexts`` (one per member, or None) adds what the bundle does not know of each
        member. ``max_per_category`` caps the items of one category in a list (storefront
        carousels); the cap gives way only when the candidates cannot fill ``n`` otherwise.
        A member the bundle knows, with nothing in their context, is answered from the
        bundle's precomputed lists when they hold the answer (:meth:`_precomputed`); this path
        reads row slices directly, since it is what a storefront request takes.
        """
        name, contexts, indices = self._request(member_ids, model, contexts)
        depth = n if max_per_category is None else min(self._n_items, n * _DIVERSIFY_DEPTH)
        lists = self._precomputed(name, category, exclude_purchased, depth)
        answers: list[Recommendation | None] = [None] * len(member_ids)
        scored = []
        for row, (index, context) in enumerate(zip(indices, contexts, strict=True)):
            if lists is not None and index >= 0 and context.adds_nothing:
                answers[row] = self._recommendation(
                    member_ids[row], lists.items[index, :depth], lists.scores[index, :depth],
                    name, from_model=int(lists.from_model[index]), n=n,
                    max_per_category=max_per_category,
                )  # fmt: skip
            else:
                scored.append(row)
        if scored:
            ranked = self._scored(
                name, indices[scored], [contexts[row] for row in scored], depth,
                category=category, exclude_purchased=exclude_purchased,
            )  # fmt: skip
            for position, row in enumerate(scored):
                answers[row] = self._recommendation(
                    member_ids[row], ranked.items[position], ranked.scores[position],
                    ranked.models[position], from_model=int(ranked.from_model[position]), n=n,
                    max_per_category=max_per_category,
                )  # fmt: skip
        return [answer for answer in answers if answer is not None]

    def ranked(
        self,
        member_ids: Sequence[str],
        depth: int,
        *,
        model: str | None = None,
        category: str | None = None,
        exclude_purchased: bool = True,
        contexts: Sequence[MemberContext | None] | None = None,
    ) -> RankedLists:
        """Every member's top ``depth`` as arrays (one row per member, in order): what
        :meth:`recommend` lists, for callers that work on many members at once (campaign
        exports, bundles for a batch of members). Members answered from the precomputed
        lists are gathered in one array operation; everyone else is scored."""
        name, contexts, indices = self._request(member_ids, model, contexts)
        items = np.full((len(member_ids), depth), -1, dtype=np.int64)
        scores = np.full((len(member_ids), depth), -np.inf, dtype=np.float32)
        fallback = np.zeros(len(member_ids), dtype=bool)
        from_model = np.zeros(len(member_ids), dtype=np.int64)
        models = [name] * len(member_ids)
        lists = self._precomputed(name, category, exclude_purchased, depth)
        listed = np.zeros(len(member_ids), dtype=bool)
        if lists is not None:
            listed = (indices >= 0) & np.array([c.adds_nothing for c in contexts], dtype=bool)
            rows = indices[listed]
            items[listed] = lists.items[rows, :depth]
            scores[listed] = lists.scores[rows, :depth]
            fallback[listed] = lists.from_model[rows] < depth
            from_model[listed] = np.minimum(lists.from_model[rows], depth)
        scored = np.flatnonzero(~listed).tolist()
        if scored:
            found = self._scored(
                name, indices[scored], [contexts[row] for row in scored], depth,
                category=category, exclude_purchased=exclude_purchased,
            )  # fmt: skip
            items[scored], scores[scored], fallback[scored], from_model[scored] = (
                found.items,
                found.scores,
                found.fallback,
                found.from_model,
            )
            for position, row in enumerate(scored):
                models[row] = found.models[position]
        return RankedLists(
            items=items, scores=scores, models=models, fallback=fallback, members=indices,
            from_model=from_model,
        )  # fmt: skip

    def _request(
        self,
        member_ids: Sequence[str],
        model: str | None,
        contexts: Sequence[MemberContext | None] | None,
    ) -> tuple[str, list[MemberContext], np.ndarray]:
        """The answering model's name (an unknown name fails here, listing the models there
        are), one context per member, and the members' internal indices (-1: unknown)."""
        name = model or self.artifact.chosen
        self.artifact.model(name)
        contexts = [context or _NO_CONTEXT for context in contexts or [None] * len(member_ids)]
        return name, contexts, self.member_indices(member_ids)

    def _precomputed(
        self, name: str, category: str | None, exclude_purchased: bool, depth: int
    ) -> MemberLists | None:
        """The bundle's precomputed lists when they hold the answer to such a request (same
        model, no category filter, purchases excluded, deep enough), else None."""
        lists = self.artifact.lists
        if (
            lists is None
            or lists.model != name
            or category is not None
            or not exclude_purchased
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
        exclude_purchased: bool,
    ) -> RankedLists:
        """Top ``depth`` of members (``indices``, -1 when unknown) scored by their answering
        model, completed from popularity."""
        items = np.full((len(indices), depth), -1, dtype=np.int64)
        scores = np.full((len(indices), depth), -np.inf, dtype=np.float32)
        padded = np.zeros(len(indices), dtype=bool)
        from_model = np.zeros(len(indices), dtype=np.int64)
        self._score_rows(
            name, indices, contexts, items, scores, padded, from_model,
            category=category, exclude_purchased=exclude_purchased,
        )  # fmt: skip
        models, fallback = [], np.zeros(len(indices), dtype=bool)
        for row, (index, context) in enumerate(zip(indices, contexts, strict=True)):
            answered_by = self._answering_model(name, index, context)
            models.append(answered_by or FALLBACK_MODEL)
            fallback[row] = answered_by is None or bool(padded[row]) or context.declared
            if answered_by is None or context.declared:
                from_model[row] = 0
        return RankedLists(
            items=items, scores=scores, models=models, fallback=fallback, members=indices,
            from_model=from_model,
        )  # fmt: skip

    def _recommendation(
        self,
        member_id: str,
        ids: np.ndarray,
        scores: np.ndarray,
        model: str,
        *,
        from_model: int,
        n: int,
        max_per_category: int | None,
    ) -> Recommendation:
        """One member's answer from their ranked candidates (-1: none), capped per category
        when asked. The first ``from_model`` candidates are the model's, the rest
        popularity's: the list is flagged fallback when it shows one of the rest (or is
        empty and the model ranked nothing), whatever deeper candidates the cap looked at."""
        if max_per_category is None:
            shown = np.flatnonzero(ids >= 0)[:n]
        else:
            shown = self._cap_per_category(ids, n, max_per_category)
        kept = ids[shown]
        return Recommendation(
            member_id=member_id,
            item_ids=self.artifact.item_ids.external_ids[kept].tolist(),
            scores=scores[shown].tolist(),
            model=model,
            fallback=bool((shown >= from_model).any()) if len(shown) else from_model == 0,
            item_indices=kept.tolist(),
        )

    def _score_rows(
        self,
        name: str,
        indices: np.ndarray,
        contexts: Sequence[MemberContext],
        ids: np.ndarray,
        scores: np.ndarray,
        padded: np.ndarray,
        from_model: np.ndarray,
        *,
        category: str | None,
        exclude_purchased: bool,
    ) -> None:
        """Score members (``indices``, -1 when unknown, with their ``contexts``) by their
        answering model, then complete every row the model could not fill from popularity;
        writes into ``ids``, ``scores``, ``padded`` and ``from_model`` (the model's items
        before the completion), one row per member."""
        depth = ids.shape[1]
        rows = range(len(indices))
        allowed = self.allowed_items(category)
        excluded = {
            row: self._excluded(indices[row], contexts[row], exclude_purchased) for row in rows
        }
        by_model: dict[str | None, list[int]] = {}
        for row in rows:
            answering = self._answering_model(name, indices[row], contexts[row])
            by_model.setdefault(answering, []).append(row)
        for model_name, group in by_model.items():
            if model_name is None:
                continue  # popularity alone: every slot is completed below
            histories = self._rows([self._history(indices[row], contexts[row]) for row in group])
            ids[group], scores[group] = self._ranked(
                model_name, indices[group], histories, [excluded[row] for row in group], depth,
                category,
            )  # fmt: skip
        for row in rows:
            from_model[row] = int((ids[row] >= 0).sum())
            if (ids[row] < 0).any():
                padded[row] = True
                ids[row], scores[row] = self._fill_from_popularity(
                    ids[row], scores[row], self._popularity(indices[row], contexts[row]),
                    excluded[row], allowed,
                )  # fmt: skip

    def _ranked(
        self,
        name: str,
        members: np.ndarray,
        histories: sp.csr_matrix,
        excluded: Sequence[np.ndarray],
        depth: int,
        category: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Model ``name``'s top ``depth`` allowed items per member, -1 where it has none:
        from its FAISS index when it can (no category: an index cannot filter one), else by
        scoring the catalog with the popularity tie-breaker."""
        found = None
        if category is None:
            found = self._retrieve(name, members, histories, excluded, depth)
        if found is not None:
            return found
        tie_breaker = (
            self._allowed_tie_breaker
            if category is None
            else self._masked(self._tie_breaker, self.allowed_items(category))
        )
        return self.artifact.model(name).recommend(
            members,
            histories,
            depth,
            exclude=self._rows([(items, None) for items in excluded]),
            tie_breaker=tie_breaker,
        )

    def member_lists(
        self,
        depth: int,
        *,
        model: str | None = None,
        batch: int = 4096,
        progress: Callable[[int], None] | None = None,
    ) -> MemberLists:
        """Every known member's top ``depth`` by ``model`` (default: the chosen one), purchases
        excluded, in batches of ``batch`` members: the precomputed lists that
        :func:`training.bundle.add_member_lists` stores. ``progress`` gets the members done."""
        name = model or self.artifact.chosen
        self.artifact.model(name)
        depth = min(depth, self._n_items)
        n_members = len(self.artifact.member_ids)
        items = np.full((n_members, depth), -1, dtype=np.int32)
        scores = np.full((n_members, depth), -np.inf, dtype=np.float32)
        from_model = np.zeros(n_members, dtype=np.int32)
        for start in range(0, n_members, batch):
            members = np.arange(start, min(start + batch, n_members), dtype=np.int64)
            bought = self.artifact.purchases[members[0] : members[-1] + 1]
            excluded = np.split(bought.indices.astype(np.int64), bought.indptr[1:-1])
            histories = self.artifact.histories[members[0] : members[-1] + 1]
            ids, found = self._ranked(name, members, histories, excluded, depth)
            from_model[members] = (ids >= 0).sum(axis=1)
            for row in np.flatnonzero(from_model[members] < depth):
                ids[row], found[row] = self._fill_from_popularity(
                    ids[row], found[row], self.popularity_of(int(members[row])),
                    excluded[row], self._available,
                )  # fmt: skip
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
        else the first in the bundle that can; None when only popularity can."""
        names = [self.artifact.chosen, *self.artifact.models]
        return next((name for name in names if self.supports_similarity(name)), None)

    def similar_items(self, item_index: int, n: int, *, model: str | None = None) -> ItemList:
        """The ``n`` items most similar to item ``item_index``, available and distinct, by
        ``model`` (default :meth:`similarity_model`); completed from popularity (flagged) when
        the model knows fewer, so that the list holds ``n`` items when the catalog does."""
        name = model or self.similarity_model()
        allowed = self._available.copy()
        allowed[item_index] = False
        ids = np.full(n, -1, dtype=np.int64)
        scores = np.full(n, -np.inf, dtype=np.float32)
        if name is not None:
            # Over-fetch by the unavailable items, which the model does not know to skip.
            depth = min(self._n_items, n + int((~self._available).sum()))
            found, found_scores = self.artifact.model(name).similar_items(
                np.array([item_index]), depth
            )
            keep = (found[0] >= 0) & allowed[np.maximum(found[0], 0)]
            kept = found[0][keep][:n]
            ids[: len(kept)], scores[: len(kept)] = kept, found_scores[0][keep][:n]
        padded = bool((ids < 0).any())
        if padded:
            ids, scores = self._fill_from_popularity(
                ids, scores, self.popularity_of(-1), np.empty(0, np.int64), allowed
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
        """Internal indices, -1 for members the bundle does not know (dict lookups: O(members))."""
        lookup = self.artifact.member_ids.get
        found = [lookup(member_id) for member_id in member_ids]
        return np.array([-1 if index is None else index for index in found], dtype=np.int64)

    def _retrieve(
        self,
        name: str,
        members: np.ndarray,
        histories: sp.csr_matrix,
        excluded: Sequence[np.ndarray],
        depth: int,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The top ``depth`` available, unexcluded items from the model's FAISS index (exact
        search below 50,000 items): one fused scan instead of scoring the whole catalog and
        sorting it, which is what keeps a serving request within milliseconds.

        The index holds the model's item vectors, so inner products with its member vectors
        are its scores. Excluded and unavailable items are dropped from an over-fetch; None
        (the caller then scores exactly) when the model has no inner-product index, when a
        member vector is all zeros (every item would tie: the popularity tie-breaker must
        order them), or when the over-fetch cannot fill a row that the catalog could.
        """
        index = self.artifact.indexes.get(name)
        if index is None or index.metric != "ip":
            return None
        vectors = self.artifact.model(name).member_vectors(members, histories)
        if vectors is None or not np.abs(vectors).max(axis=1).all():
            return None
        fetch = min(self._n_items, 2 * depth + max(len(items) for items in excluded))
        found, found_scores = index.search(vectors, fetch)
        ids = np.full((len(members), depth), -1, dtype=np.int64)
        scores = np.full((len(members), depth), -np.inf, dtype=np.float32)
        for row, (row_ids, row_excluded) in enumerate(zip(found, excluded, strict=True)):
            keep = (row_ids >= 0) & self._available[row_ids] & ~np.isin(row_ids, row_excluded)
            kept = np.flatnonzero(keep)[:depth]
            if len(kept) < min(depth, self._n_items - len(row_excluded)):
                return None
            ids[row, : len(kept)] = row_ids[kept]
            scores[row, : len(kept)] = found_scores[row, kept]
        return ids, scores

    def _answering_model(self, name: str, index: int, context: MemberContext) -> str | None:
        """The model that scores this member, or None when only popularity can answer."""
        if context.declared and len(context.items):
            return DECLARED_MODEL if DECLARED_MODEL in self.artifact.models else name
        if index >= 0 or len(context.items):
            return name
        return None

    def _history(self, index: int, context: MemberContext) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, weights) of the member's bundle history row plus the context's items."""
        items, weights = self._history_row(self.artifact.histories, index)
        if not len(context.items):
            return items, weights
        data_type, index_type = self._history_dtypes
        return (
            np.concatenate([items, np.asarray(context.items, dtype=index_type)]),
            np.concatenate([weights, np.asarray(context.weights, dtype=data_type)]),
        )

    def _excluded(self, index: int, context: MemberContext, exclude_purchased: bool) -> np.ndarray:
        """Item indices never to show this member: purchases in the bundle and since."""
        if not exclude_purchased:
            return np.empty(0, dtype=np.int64)
        bought, _ = self._history_row(self.artifact.purchases, index)
        if not len(context.purchased):
            return bought.astype(np.int64)
        return np.union1d(bought, np.asarray(context.purchased, dtype=np.int64))

    def _history_row(self, matrix: sp.csr_matrix, index: int) -> tuple[np.ndarray, np.ndarray]:
        """A member's row of a bundle matrix as (indices, data); empty for unknown members."""
        if index < 0:
            return matrix.indices[:0], matrix.data[:0]
        cells = slice(matrix.indptr[index], matrix.indptr[index + 1])
        return matrix.indices[cells], matrix.data[cells]

    def _rows(self, rows: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> sp.csr_matrix:
        """A CSR matrix over the catalog from per-row (indices, data); data None means ones.
        Repeated items in a row are summed (a fold-in must see one cell per item)."""
        lengths = np.fromiter((len(items) for items, _ in rows), dtype=np.int64, count=len(rows))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        indices = np.concatenate([items for items, _ in rows]) if rows else np.empty(0, np.int32)
        data = (
            np.concatenate([values for _, values in rows])
            if rows and rows[0][1] is not None
            else np.ones(len(indices), dtype=np.float32)
        )
        matrix = sp.csr_matrix((data, indices, indptr), shape=(len(rows), self._n_items))
        matrix.sum_duplicates()
        return matrix

    def _popularity(self, member_index: int, context: MemberContext) -> np.ndarray:
        """Popularity of the member's segment (from the bundle, else the context), else global."""
        segments = self.artifact.member_segments
        code = context.segment
        if member_index >= 0 and segments is not None:
            code = int(segments[member_index])
        if code is not None and code >= 0 and self.artifact.segment_popularity is not None:
            return np.asarray(self.artifact.segment_popularity[code], dtype=np.float32)
        return np.asarray(self.artifact.popularity, dtype=np.float32)

    def purchased(self, member_index: int, context: MemberContext | None = None) -> np.ndarray:
        """Item indices the member bought: in the bundle (when known) and since (context)."""
        return self._excluded(member_index, context or _NO_CONTEXT, exclude_purchased=True)

    def popularity_of(self, member_index: int) -> np.ndarray:
        """Segment popularity for a known member with a segment, else global popularity."""
        return self._popularity(member_index, _NO_CONTEXT)

    def _fill_from_popularity(
        self,
        row_ids: np.ndarray,
        row_scores: np.ndarray,
        popularity: np.ndarray,
        excluded: np.ndarray,
        allowed: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Complete a list's empty slots with the most popular allowed, unseen, unlisted items.

        Popularity scores are offset below the model's lowest score so the list stays sorted.
        """
        n = len(row_ids)
        kept = row_ids[row_ids >= 0]
        candidates = popularity + self._tie_breaker  # items a segment never bought: by global
        candidates[~allowed] = -np.inf
        candidates[excluded] = -np.inf
        candidates[kept] = -np.inf
        fill_ids, fill_scores = top_n(candidates[None, :], n - len(kept))
        fill_ids, fill_scores = fill_ids[0], fill_scores[0]
        found = np.isfinite(fill_scores)
        if len(kept) and found.any():
            floor = float(row_scores[: len(kept)].min())
            fill_scores[found] = floor - 1.0 - (fill_scores[found].max() - fill_scores[found])
        ids = np.concatenate([kept, fill_ids])
        scores = np.concatenate([row_scores[: len(kept)], fill_scores]).astype(np.float32)
        return ids, scores

    def _cap_per_category(self, ids: np.ndarray, n: int, cap: int) -> np.ndarray:
        """Positions of the first ``n`` of a ranked list with at most ``cap`` items per
        category, in rank order; items without a category are not capped. When the list
        cannot fill ``n`` within the cap, the best of the items passed over complete it
        (exactly ``n`` comes first)."""
        taken: dict[int, int] = {}
        chosen: list[int] = []
        passed_over: list[int] = []
        codes = self._category_codes[np.maximum(ids, 0)].tolist()
        for position, (item, code) in enumerate(zip(ids.tolist(), codes, strict=True)):
            if item < 0 or len(chosen) == n:
                break
            if code >= 0 and taken.get(code, 0) >= cap:
                passed_over.append(position)
                continue
            taken[code] = taken.get(code, 0) + 1
            chosen.append(position)
        return np.array(chosen + passed_over[: n - len(chosen)], dtype=np.int64)
