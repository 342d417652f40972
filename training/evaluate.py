"""The offline evaluation protocol: whom to evaluate, what counts as a hit, what is never shown.

A model is judged on a train/test split the way it would be used: it sees each member's training
history, must not recommend what the member already bought (``exclude``), and scores a hit when
a recommended item is one the member went on to buy in the test period. Fixing all of that in
one :class:`EvaluationTask` means every model of a run, a reranker and every member segment are
measured on exactly the same members and the same relevant items. Metric formulas live in
:mod:`training.metrics`; the protocol is written up in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Final

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features.catalog import aligned_catalog, category_codes
from features.errors import ConfigError, DataError
from features.frames import require_columns
from features.ids import IdMap
from features.members import SEGMENT
from training.dataset import TrainingData
from training.metrics import DEFAULT_KS, calc_metrics, item_popularity, next_basket_metrics
from training.models.base import Recommender

__all__ = [
    "ENGAGED_EVENTS",
    "UNKNOWN_SEGMENT",
    "EvaluationTask",
    "evaluate_by_segment",
    "evaluate_model",
    "evaluate_recommended",
    "item_category_codes",
    "recommended_lists",
]

#: Events that count as engagement for the CTR proxy: a click or anything stronger.
ENGAGED_EVENTS: Final[tuple[str, ...]] = col.EVENTS[col.EVENTS.index(col.CLICK) :]
_PURCHASE_EVENTS: Final[tuple[str, ...]] = (col.PURCHASE,)
#: Segment of evaluated members that the segment table does not know.
UNKNOWN_SEGMENT: Final = "unknown"
_INDEX: Final = "__member_index"
_COUNT: Final = "__n_relevant"


@dataclass(frozen=True, eq=False)
class EvaluationTask:
    """The members to evaluate and, row by row, everything needed to score their lists.

    Row i of every matrix and per-member array belongs to ``members[i]`` (an internal member
    index of the training maps); columns are the training item indices. ``n_relevant`` is
    |relevant| per member counted *before* items unknown to the training maps were dropped, so
    those items stay in the denominators of recall, MAP and NDCG: they are misses a model with
    that catalog cannot avoid, and leaving them out would flatter every model.
    """

    members: np.ndarray
    histories: sp.csr_matrix
    exclude: sp.csr_matrix
    relevant: sp.csr_matrix
    n_relevant: np.ndarray
    engaged: sp.csr_matrix
    purchased: sp.csr_matrix
    item_popularity: np.ndarray
    item_categories: np.ndarray | None = None
    member_segment_names: np.ndarray | None = None
    #: Added to every score row before selection, as serving does
    #: (:func:`~training.models.base.popularity_tie_breaker`), so that the lists evaluated are
    #: the lists served; None: ties fall to the lowest index.
    tie_breaker: np.ndarray | None = None
    #: The relevant cells the member had bought in train (a subset of ``relevant``), when
    #: repeat purchases count: the figures are then also split into repeat and explore parts
    #: (:func:`~training.metrics.next_basket_metrics`). None when only new items are relevant.
    repeats: sp.csr_matrix | None = None

    @property
    def n_members(self) -> int:
        return len(self.members)

    @classmethod
    def from_split(
        cls,
        train: TrainingData,
        test: pl.DataFrame,
        relevant_events: Sequence[str] = _PURCHASE_EVENTS,
        new_items_only: bool = True,
        exclude_events: Sequence[str] = _PURCHASE_EVENTS,
        exclude_purchased: bool = True,
        item_categories: np.ndarray | None = None,
        member_segment_of: pl.DataFrame | None = None,
        max_members: int | None = None,
        seed: int = 0,
        tie_breaker: np.ndarray | None = None,
    ) -> EvaluationTask:
        """Build the task of a train/test split.

        Relevant: per member, the distinct test items with one of ``relevant_events``; with
        ``new_items_only``, minus the items the member had an ``exclude_events`` event on in
        train (re-buying a staple is not a discovery). ``exclude``: those training items, never
        recommended, unless ``exclude_purchased`` is False (the next-basket protocol, where a
        member's own staples are the best guess); without ``new_items_only``, ``repeats`` marks
        the relevant items the member had before. Evaluated: test members known in train with
        at least one relevant item, ordered by member index; ``max_members`` draws a seeded
        sample of them for big data.
        ``item_categories``: a code per training item (see :func:`item_category_codes`);
        ``tie_breaker``: a small score per training item that serving adds to every row.
        Segments come from ``member_segment_of`` (columns ``member_id``, ``segment``), else
        from ``train``'s own segments, else are absent.
        """
        require_columns(test, (col.MEMBER_ID, col.ITEM_ID, col.EVENT), "test interactions")
        for name, per_item in (("item_categories", item_categories), ("tie_breaker", tie_breaker)):
            if per_item is not None and len(per_item) != train.n_items:
                raise ValueError(
                    f"{name} must hold one value per training item ({train.n_items}), "
                    f"got {len(per_item)}"
                )
        already_had = _distinct_pairs(train.interactions, exclude_events)
        relevant_pairs = _relevant_pairs(train, test, relevant_events, new_items_only, already_had)
        evaluated, members, n_relevant = _sampled(
            *_evaluated_members(train, relevant_pairs), max_members, seed
        )
        had = _indicator(already_had, evaluated, train.item_ids)
        relevant = _indicator(relevant_pairs, evaluated, train.item_ids)
        return cls(
            members=members,
            histories=train.matrix[members],
            exclude=had if exclude_purchased else sp.csr_matrix(had.shape, dtype=np.float32),
            relevant=relevant,
            n_relevant=n_relevant,
            engaged=_indicator(_distinct_pairs(test, ENGAGED_EVENTS), evaluated, train.item_ids),
            purchased=_indicator(
                _distinct_pairs(test, _PURCHASE_EVENTS), evaluated, train.item_ids
            ),
            item_popularity=item_popularity(train.matrix),
            item_categories=item_categories,
            member_segment_names=_segment_names(train, member_segment_of, evaluated, members),
            tie_breaker=tie_breaker,
            repeats=None if new_items_only else relevant.multiply(had).tocsr(),
        )

    def subset(self, rows: np.ndarray) -> EvaluationTask:
        """The same task restricted to the given rows (positions, not member indices)."""
        per_member = {
            field.name: getattr(self, field.name)[rows]
            for field in fields(self)
            if field.name not in _PER_ITEM_FIELDS and getattr(self, field.name) is not None
        }
        return replace(self, **per_member)


#: Fields of :class:`EvaluationTask` indexed by item, not by evaluated member.
_PER_ITEM_FIELDS: Final = frozenset({"item_popularity", "item_categories", "tie_breaker"})


def evaluate_model(
    model: Recommender, task: EvaluationTask, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Every metric of the model's top-max(ks) lists on the task (see :func:`calc_metrics`)."""
    return evaluate_recommended(recommended_lists(model, task, max(ks)), task, ks)


def evaluate_recommended(
    recommended: np.ndarray, task: EvaluationTask, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Every metric of lists produced elsewhere (a reranker, a blend), row i for member i; with
    the task's ``repeats``, the next-basket figures split into repeat and explore parts too."""
    metrics = calc_metrics(
        recommended,
        task.relevant,
        ks,
        n_relevant=task.n_relevant,
        item_popularity=task.item_popularity,
        item_categories=task.item_categories,
        engaged=task.engaged,
        purchased=task.purchased,
    )
    if task.repeats is not None:
        metrics.update(
            next_basket_metrics(
                recommended, task.relevant, task.repeats, ks, n_relevant=task.n_relevant
            )
        )
    return metrics


def evaluate_by_segment(
    model_or_recommended: Recommender | np.ndarray,
    task: EvaluationTask,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, dict[str, float]]:
    """The metrics of each member segment, segments in name order.

    Coverage is measured against the whole catalog within each segment, so a segment's
    coverage is naturally lower than the overall one.
    """
    if task.member_segment_names is None:
        raise ValueError(
            "the task has no member segments; build it with member_segment_of or from "
            "training data that has segments"
        )
    recommended = (
        recommended_lists(model_or_recommended, task, max(ks))
        if isinstance(model_or_recommended, Recommender)
        else model_or_recommended
    )
    by_segment = {}
    for segment in np.unique(task.member_segment_names):
        rows = np.flatnonzero(task.member_segment_names == segment)
        by_segment[str(segment)] = evaluate_recommended(recommended[rows], task.subset(rows), ks)
    return by_segment


def item_category_codes(items: pl.DataFrame, item_ids: IdMap) -> np.ndarray:
    """A category code per item of ``item_ids`` from a catalog (-1: no category known).

    Codes follow the sorted category names; the first catalog row of an item wins.
    """
    require_columns(items, (col.ITEM_ID, col.CATEGORY), "items")
    categories = aligned_catalog(items, item_ids, (col.CATEGORY,)).get_column(col.CATEGORY)
    _, codes = category_codes(categories)
    return codes.astype(np.int64)


def recommended_lists(model: Recommender, task: EvaluationTask, n: int) -> np.ndarray:
    """Top-``n`` item ids per evaluated member, best first, training purchases excluded.

    The lists :meth:`~training.models.base.Recommender.recommend` gives (with the task's tie
    breaker), the selection on one thread: an evaluation scores every catalog item for every
    sampled member, and the scoring wants the cores to itself (see ``selection_threads``).
    """
    ids, _ = model.recommend(
        task.members,
        task.histories,
        n,
        exclude=task.exclude,
        tie_breaker=task.tie_breaker,
        selection_threads=1,
    )
    return ids


def _distinct_pairs(interactions: pl.DataFrame, events: Sequence[str]) -> pl.DataFrame:
    """Distinct (member_id, item_id) pairs of the rows with one of ``events``."""
    return (
        interactions.filter(pl.col(col.EVENT).is_in(list(events)))
        .select(col.MEMBER_ID, col.ITEM_ID)
        .unique(maintain_order=True)
    )


def _relevant_pairs(
    train: TrainingData,
    test: pl.DataFrame,
    relevant_events: Sequence[str],
    new_items_only: bool,
    already_had: pl.DataFrame,
) -> pl.DataFrame:
    """Distinct relevant test pairs of members known in train, items known or not."""
    known_members = pl.Series(train.member_ids.external_ids, dtype=pl.Utf8)
    pairs = _distinct_pairs(test, relevant_events).filter(
        pl.col(col.MEMBER_ID).is_in(known_members.implode())
    )
    if new_items_only:
        pairs = pairs.join(already_had, on=[col.MEMBER_ID, col.ITEM_ID], how="anti")
    return pairs


def _evaluated_members(
    train: TrainingData, relevant_pairs: pl.DataFrame
) -> tuple[IdMap, np.ndarray, np.ndarray]:
    """The members with a relevant item in training-index order: their map, indices, |relevant|."""
    counts = relevant_pairs.group_by(col.MEMBER_ID).len(name=_COUNT)
    if counts.is_empty():
        raise DataError(
            "no test member known in train has a relevant test item; check the split date, "
            "the relevant events and whether test members appear in train"
        )
    indexed = counts.with_columns(
        pl.Series(_INDEX, train.member_ids.to_internal(counts.get_column(col.MEMBER_ID)))
    ).sort(_INDEX)
    return (
        IdMap(indexed.get_column(col.MEMBER_ID).to_numpy()),
        indexed.get_column(_INDEX).to_numpy(),
        indexed.get_column(_COUNT).to_numpy().astype(np.int64),
    )


def _sampled(
    evaluated: IdMap,
    members: np.ndarray,
    n_relevant: np.ndarray,
    max_members: int | None,
    seed: int,
) -> tuple[IdMap, np.ndarray, np.ndarray]:
    """At most ``max_members`` evaluated members, drawn without replacement and kept in member
    order; drawn before any per-member matrix is built, so that a sample costs what it holds."""
    if max_members is None or max_members >= len(members):
        return evaluated, members, n_relevant
    if max_members < 1:
        raise ConfigError(f"max_members must be at least 1, got {max_members}")
    drawn = np.random.default_rng(seed).choice(len(members), size=max_members, replace=False)
    rows = np.sort(drawn)
    return IdMap(evaluated.external_ids[rows]), members[rows], n_relevant[rows]


def _indicator(pairs: pl.DataFrame, member_ids: IdMap, item_ids: IdMap) -> sp.csr_matrix:
    """Binary float32 CSR over the given maps; pairs whose member or item is unmapped drop out."""
    rows = member_ids.to_internal(pairs.get_column(col.MEMBER_ID), strict=False)
    columns = item_ids.to_internal(pairs.get_column(col.ITEM_ID), strict=False)
    mapped = (rows >= 0) & (columns >= 0)
    ones = np.ones(int(mapped.sum()), dtype=np.float32)
    return sp.csr_matrix(
        (ones, (rows[mapped], columns[mapped])), shape=(len(member_ids), len(item_ids))
    )


def _segment_names(
    train: TrainingData,
    member_segment_of: pl.DataFrame | None,
    evaluated: IdMap,
    members: np.ndarray,
) -> np.ndarray | None:
    """The segment name of each evaluated member (:data:`UNKNOWN_SEGMENT` when it has none)."""
    if member_segment_of is not None:
        require_columns(member_segment_of, (col.MEMBER_ID, SEGMENT), "member segments")
        segment_of = member_segment_of.select(
            pl.col(col.MEMBER_ID).cast(pl.Utf8), pl.col(SEGMENT).cast(pl.Utf8)
        ).unique(col.MEMBER_ID, keep="first")
        named = pl.DataFrame({col.MEMBER_ID: evaluated.external_ids}).join(
            segment_of, on=col.MEMBER_ID, how="left", maintain_order="left"
        )
        return named.get_column(SEGMENT).fill_null(UNKNOWN_SEGMENT).to_numpy().astype(np.str_)
    if train.member_segments is not None:
        names = np.array([*train.segment_names, UNKNOWN_SEGMENT], dtype=np.str_)
        return names[train.member_segments[members]]  # code -1 picks the last name, "unknown"
    return None
