"""Two-stage recommendation: base models propose candidates, a LightGBM ranker orders them.

Why two stages: each base model sees one kind of evidence (EASE and item-kNN co-occurrence, ALS
latent factors, popularity), and none of them sees *when* things happened. A ranker trained on
labelled history can weigh the base models per member and add what they miss: how recent a
member's interest is, which items are trending, price fit, whether the member already buys
from the item's product family.

Training (:meth:`RerankRecommender.fit`), on the training data alone:

1. ``windows`` label windows of ``validation_days`` days are carved from the end of the data,
   each ``window_step_days`` earlier than the last. Per window the base models and the item
   and member statistics are fit on the interactions *before* the window, exactly as they
   will be fit on all the data for serving.
2. Candidates per member: the top ``candidates`` items of each base model among the items the
   member has not interacted with, plus every item the member has interacted with.
3. Labels: an item the member purchases in the window and had not purchased before (the
   evaluation protocol's "relevant"); items purchased before are dropped from the groups, since
   they are never recommended. Members without history before the window or without any
   positive candidate carry no ranking signal and are left out.
4. A LightGBM ranker is trained on the groups (member x window), early-stopped on a held-out
   share of the members; its validation NDCG@10 on the held-out members of the latest window,
   beside each base model's, is kept in :attr:`RerankRecommender.validation_report`.
5. The base models and statistics are refit on all the data for serving.

Scoring: candidates get the ranker's score, shifted per member to lie above every other item;
the other items get a score in [-2, -1) ordered by the base model that was best on validation,
so a list always fills up. Base models fit on binarised histories ("interacted or not"): on
UCI Online Retail this lifts item-kNN from P@10 0.079 to 0.099 and ALS from 0.091 to 0.103.

Features, one row per (member, candidate item); NaN means unknown (LightGBM routes missing
values itself, so a member unknown at fit time gets neutral, not invented, values):

* base evidence -- ``ease``, ``als``, ``item_knn`` scores and ranks among all items, and
  ``ease_share`` (score / the member's best EASE score), because raw scores are not comparable
  across members or between the windows and the serving fit;
* recency of interest -- ``recent_ease``/``recent_ease_rank``: EASE scored on only the items the
  member touched in the last ``recent_days`` before their own last event (a member who just
  moved on to new products is served those, not their old habits);
* item popularity and trend -- distinct buyers ever (log and percentile) and in the last 7, 30
  and 90 days, the 7-vs-30 and 30-vs-90 day rate ratios (demand that is rising now keeps
  rising over the next weeks: seasonal ranges), days since first and last sale;
* item habits and price -- median unit price, median quantity per line, repurchase rate (share
  of buyers who bought it in two or more orders), and new buyers in the last 30 and 90 days
  (members buying it for the first time: exactly what a "new item" label counts);
* member -- distinct items, orders, tenure and days since the last purchase, orders per 30
  days, mean distinct items per order, mean log unit price paid;
* member x item -- ``held`` (log history weight: a viewed but unbought item is a strong
  candidate), ``price_gap`` (item log price minus the member's mean), and family affinity: how
  many of the member's items share the item's variant code (id without its trailing letters:
  Online Retail's 84029E/84029G are colours of one product), its 3-character id prefix, and the
  first/last word of its title (the only category proxy when a catalog has none).

Persistence: the base models in subdirectories (their own save/load), the ranker as LightGBM
text, statistics as ``.npy``/``.npz`` and the rest in ``rerank.json``; no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Self

import numpy as np
import polars as pl
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from features import columns as col
from features.ids import IdMap
from features.splits import days_before
from training.dataset import TrainingData, history_matrix
from training.metrics import calc_metrics
from training.models.als import ALSRecommender
from training.models.base import ModelFitError, ModelParams, Recommender, top_n
from training.models.ease import EASERecommender
from training.models.item_knn import ItemKNNRecommender
from training.models.popular import PopularityRecommender

if TYPE_CHECKING:
    # LightGBM (and the scikit-learn it loads) takes about a second to import: it is imported
    # where a ranker is trained or loaded, not by every process that lists the models.
    import lightgbm as lgb

__all__ = ["FEATURE_NAMES", "RerankParams", "RerankRecommender"]

#: Score cells (members x items) handled at once while building examples, as in ``recommend``.
_CELLS_PER_BATCH: Final = 1 << 23
_PURCHASE: Final = "purchase"
_BASE_MODELS: Final = ("ease", "als", "item_knn", "popular")
#: Score sources that propose candidates and get a rank feature ("recent_ease" is EASE on the
#: member's recent items only).
_RANKED_SOURCES: Final = ("ease", "als", "item_knn", "recent_ease")
_CANDIDATE_SOURCES: Final = (*_RANKED_SOURCES, "popular")
_ITEM_FEATURES: Final = (
    "buyers",
    "buyers_percentile",
    "buyers_7d",
    "buyers_30d",
    "buyers_90d",
    "trend_7_30",
    "trend_30_90",
    "age_days",
    "idle_days",
    "price",
    "quantity",
    "repurchase_rate",
    "new_buyers_30d",
    "new_buyers_90d",
)
_MEMBER_FEATURES: Final = (
    "orders",
    "tenure_days",
    "recency_days",
    "orders_per_30d",
    "basket_size",
    "member_price",
)
_FAMILIES: Final = ("variant", "prefix", "title_first", "title_last")
FEATURE_NAMES: Final = (
    *(name for source in _RANKED_SOURCES for name in (source, f"{source}_rank")),
    "ease_share",
    *_ITEM_FEATURES,
    "distinct_items",
    *_MEMBER_FEATURES,
    "held",
    "price_gap",
    *(f"family_{family}" for family in _FAMILIES),
)
#: Non-candidates score in [-2, -1); candidates at least 0 (see ``_dense_scores``).
_NON_CANDIDATE_TOP: Final = -1.0
#: Within candidates, a tie-breaking nudge by the ordering model's rank (far below the
#: ranker's own resolution), so items the ranker cannot tell apart keep a meaningful order.
_TIE_NUDGE: Final = 1e-4


class RerankParams(ModelParams):
    """Candidates, label windows, the ranker and the base models.

    ``candidates``: items proposed per candidate source and member. ``validation_days``: length
    of each label window; short windows rank better even for a longer horizon (on Online Retail,
    30-day windows beat 90-day ones on a 90-day validation period), as each window's base models
    then see data closer to what serving will see. ``windows``/``window_step_days``: how many
    label windows, each that many days before the previous one (more labelled groups; windows
    may overlap). ``recent_days``: what
    counts as a member's recent interest, back from their own last event. The ranker: LightGBM
    ``objective`` with up to ``trees`` trees early-stopped after ``early_stopping_rounds``
    rounds without gain on the ``holdout_share`` of members kept out of training. Base models
    default to the settings that are good on Online Retail (EASE λ=500, ALS 64 factors,
    BM25 item-kNN 100 neighbours, 30-day popularity). ``threads``: CPU threads of LightGBM and
    of the base models' linear algebra during fit (0: all cores); 1 by default because on a
    shared 2-core machine thread contention made the Online Retail ranker 4x slower (47s
    against 13s) and EASE's inverse 2-8x slower; results do not depend on it.
    """

    candidates: int = Field(default=100, ge=1)
    validation_days: int = Field(default=30, ge=1)
    windows: int = Field(default=3, ge=1)
    window_step_days: int = Field(default=30, ge=1)
    recent_days: float = Field(default=14.0, gt=0)
    objective: Literal["lambdarank", "binary"] = "binary"
    trees: int = Field(default=800, ge=1)
    learning_rate: float = Field(default=0.03, gt=0)
    leaves: int = Field(default=7, ge=2)
    min_child_samples: int = Field(default=100, ge=1)
    l2_regularization: float = Field(default=1.0, ge=0)
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    early_stopping_rounds: int = Field(default=100, ge=1)
    holdout_share: float = Field(default=0.2, ge=0, lt=1)
    ease_l2: float = Field(default=500.0, gt=0)
    als_factors: int = Field(default=64, ge=1)
    als_regularization: float = Field(default=0.05, ge=0)
    als_iterations: int = Field(default=15, ge=1)
    knn_neighbors: int = Field(default=100, ge=1)
    popular_days: float = Field(default=30.0, gt=0)
    threads: int = Field(default=1, ge=0)
    seed: int = 42


# -- statistics of items and members -----------------------------------------------------------


def _purchases(interactions: pl.DataFrame) -> pl.DataFrame:
    """Purchase rows with an order key; rows without an order id form one order per member-day."""
    day_order = pl.concat_str(pl.col(col.MEMBER_ID), pl.col(col.TIMESTAMP).dt.date(), separator="@")
    order = (
        pl.coalesce(pl.col(col.ORDER_ID).cast(pl.Utf8), day_order)
        if col.ORDER_ID in interactions.columns
        else day_order
    )
    purchases = interactions.filter(pl.col(col.EVENT) == _PURCHASE).with_columns(
        order.alias("_order")
    )
    for optional in (col.PRICE, col.QUANTITY):
        if optional not in purchases.columns:
            purchases = purchases.with_columns(pl.lit(None, dtype=pl.Float64).alias(optional))
    return purchases


def _aligned(frame: pl.DataFrame, key: str, ids: IdMap, names: tuple[str, ...]) -> np.ndarray:
    """Columns ``names`` of a per-id frame as a float32 table indexed by ``ids`` (NaN: absent)."""
    table = np.full((len(ids), len(names)), np.nan, dtype=np.float32)
    index = ids.to_internal(frame.get_column(key), strict=False)
    known = index >= 0
    values = frame.select(names).to_numpy().astype(np.float32)
    table[index[known]] = values[known]
    return table


def _item_statistics(
    interactions: pl.DataFrame, item_ids: IdMap, reference: datetime
) -> np.ndarray:
    """Items x :data:`_ITEM_FEATURES`: popularity, trend, age, price and repurchase habits."""
    purchases = _purchases(interactions).with_columns(
        days_before(reference, col.TIMESTAMP).alias("_age")
    )
    recent_buyers = [f"buyers_{days}d" for days in (7, 30, 90)]
    buyers_within = [
        pl.col(col.MEMBER_ID).filter(pl.col("_age") <= days).n_unique().alias(name)
        for days, name in zip((7, 30, 90), recent_buyers, strict=True)
    ]
    per_buyer = (
        purchases.group_by(col.ITEM_ID, col.MEMBER_ID)
        .agg(pl.col("_order").n_unique().alias("_orders"), pl.col("_age").max().alias("_first"))
        .group_by(col.ITEM_ID)
        .agg(
            (pl.col("_orders") >= 2).mean().alias("repurchase_rate"),
            *(
                (pl.col("_first") <= days).sum().log1p().alias(f"new_buyers_{days}d")
                for days in (30, 90)
            ),
        )
    )
    per_item = (
        purchases.group_by(col.ITEM_ID)
        .agg(
            pl.col(col.MEMBER_ID).n_unique().alias("buyers"),
            *buyers_within,
            pl.col("_age").max().alias("age_days"),
            pl.col("_age").min().alias("idle_days"),
            pl.col(col.PRICE).median().log().alias("price"),
            pl.col(col.QUANTITY).median().log1p().alias("quantity"),
        )
        .join(per_buyer, on=col.ITEM_ID)
        .with_columns(
            (_log_daily_buyers(7) - _log_daily_buyers(30)).alias("trend_7_30"),
            (_log_daily_buyers(30) - _log_daily_buyers(90)).alias("trend_30_90"),
            pl.col("buyers").rank("average").truediv(pl.len()).alias("buyers_percentile"),
            *(pl.col(name).log1p() for name in ("buyers", *recent_buyers)),
        )
    )
    table = _aligned(per_item, col.ITEM_ID, item_ids, _ITEM_FEATURES)
    counts = [index for index, name in enumerate(_ITEM_FEATURES) if "buyers" in name]
    table[:, counts] = np.nan_to_num(table[:, counts])  # never bought: zero buyers, not unknown
    return table


def _log_daily_buyers(days: int) -> pl.Expr:
    """log of (distinct buyers in the last ``days`` + 1) per day: rates of different windows
    compare, so their difference is a growth rate."""
    return ((pl.col(f"buyers_{days}d") + 1) / days).log()


def _member_statistics(
    interactions: pl.DataFrame, member_ids: IdMap, reference: datetime
) -> np.ndarray:
    """Members x :data:`_MEMBER_FEATURES`: order habits, recency and price level."""
    purchases = _purchases(interactions).with_columns(
        days_before(reference, col.TIMESTAMP).alias("_age")
    )
    per_member = (
        purchases.group_by(col.MEMBER_ID)
        .agg(
            pl.col("_order").n_unique().alias("orders"),
            pl.col("_age").max().alias("tenure_days"),
            pl.col("_age").min().alias("recency_days"),
            (pl.len() / pl.col("_order").n_unique()).alias("basket_size"),
            pl.col(col.PRICE).log().mean().alias("member_price"),
        )
        .with_columns(
            (pl.col("orders") * 30 / pl.max_horizontal(pl.col("tenure_days"), 30)).alias(
                "orders_per_30d"
            )
        )
    )
    return _aligned(per_member, col.MEMBER_ID, member_ids, _MEMBER_FEATURES)


def _recent_histories(data: TrainingData, recent_days: float) -> sp.csr_matrix:
    """Binary members x items: what each member touched in the last ``recent_days`` before their
    own last event (their current interest, whatever their age)."""
    last_seen = pl.col(col.TIMESTAMP).max().over(col.MEMBER_ID)
    elapsed_days = (last_seen - pl.col(col.TIMESTAMP)).dt.total_seconds() / 86_400
    recent = data.interactions.filter(elapsed_days <= recent_days)
    return _binary(history_matrix(recent, data.member_ids, data.item_ids))


def _item_families(interactions: pl.DataFrame, item_ids: IdMap) -> np.ndarray:
    """Items x :data:`_FAMILIES` integer codes (-1: unknown): groups of related products."""
    items = pl.DataFrame({col.ITEM_ID: item_ids.external_ids}, schema={col.ITEM_ID: pl.Utf8})
    if col.TITLE in interactions.columns:
        titles = interactions.group_by(col.ITEM_ID).agg(pl.col(col.TITLE).drop_nulls().first())
        items = items.join(titles, on=col.ITEM_ID, how="left", maintain_order="left")
    else:
        items = items.with_columns(pl.lit(None, dtype=pl.Utf8).alias(col.TITLE))
    words = pl.col(col.TITLE).str.to_uppercase().str.extract_all(r"[A-Z]+")
    families = items.select(
        pl.col(col.ITEM_ID).str.replace(r"[A-Za-z]+$", "").alias("variant"),
        pl.col(col.ITEM_ID).str.slice(0, 3).alias("prefix"),
        words.list.first().alias("title_first"),
        words.list.last().alias("title_last"),
    )
    codes = families.select(pl.all().rank("dense").cast(pl.Int64) - 1).fill_null(-1)
    return codes.to_numpy().astype(np.int32)


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    return sp.csr_matrix(matrix != 0, dtype=np.float32)


# -- the first stage: base models, candidates and features -------------------------------------


@dataclass(frozen=True)
class _Candidates:
    """The candidates of a batch of members: pair ``p`` is item ``items[p]`` for batch row
    ``rows[p]`` (sorted by row), with its feature row; ``order_ranks`` ranks every item of every
    row by the ordering base model (0 = best), for the non-candidates and ties."""

    rows: np.ndarray
    items: np.ndarray
    features: np.ndarray
    order_ranks: np.ndarray


class _FirstStage:
    """The base models and the statistics fit on one data set; turns histories into candidates
    with features, identically for a training window and for serving."""

    def __init__(self, params: RerankParams) -> None:
        self.params = params
        self.models: dict[str, Recommender] = {
            "ease": EASERecommender(l2=params.ease_l2),
            "als": ALSRecommender(
                factors=params.als_factors,
                regularization=params.als_regularization,
                iterations=params.als_iterations,
                random_state=params.seed,
            ),
            "item_knn": ItemKNNRecommender(neighbors=params.knn_neighbors),
            "popular": PopularityRecommender(window_days=params.popular_days),
        }
        self.item_table = np.zeros((0, len(_ITEM_FEATURES)), dtype=np.float32)
        self.member_table = np.zeros((0, len(_MEMBER_FEATURES)), dtype=np.float32)
        self.families = np.zeros((0, len(_FAMILIES)), dtype=np.int32)
        self.recent = sp.csr_matrix((0, 0), dtype=np.float32)
        #: The base model whose order non-candidates (and ranker ties) follow.
        self.order_model = "ease"

    def fit(self, data: TrainingData) -> Self:
        """Fit the base models on binarised histories and compute the statistics as of the
        data's reference time."""
        binary_data = replace(data, matrix=_binary(data.matrix))
        for model in self.models.values():
            model.fit(binary_data)
        reference = _reference_time(data)
        self.item_table = _item_statistics(data.interactions, data.item_ids, reference)
        self.member_table = _member_statistics(data.interactions, data.member_ids, reference)
        self.families = _item_families(data.interactions, data.item_ids)
        self.recent = _recent_histories(data, self.params.recent_days)
        return self

    @property
    def n_items(self) -> int:
        return len(self.item_table)

    def candidates(self, members: np.ndarray, histories: sp.csr_matrix) -> _Candidates:
        """Candidates and features of one batch (row i: ``members[i]`` with history row i)."""
        held = _binary(histories)
        recent = self._recent_rows(members, held)
        scores = self._source_scores(members, held, recent)
        ranks = {name: _dense_ranks(scores[name]) for name in _RANKED_SOURCES}
        rows, items = self._candidate_pairs(scores, held)
        columns: dict[str, np.ndarray] = {}
        for name in _RANKED_SOURCES:
            columns[name] = scores[name][rows, items]
            columns[f"{name}_rank"] = ranks[name][rows, items].astype(np.float32)
        best_ease = np.maximum(scores["ease"].max(axis=1), 1e-6)
        columns["ease_share"] = columns["ease"] / best_ease[rows]
        columns.update(self._item_columns(items))
        columns.update(self._member_columns(members, held, rows))
        columns["held"] = np.log1p(np.asarray(histories[rows, items]).ravel().clip(min=0))
        columns["price_gap"] = columns["price"] - columns["member_price"]
        columns.update(self._family_columns(held, rows, items))
        features = np.column_stack([columns[name] for name in FEATURE_NAMES]).astype(np.float32)
        order = scores[self.order_model]
        order_ranks = ranks[self.order_model] if self.order_model in ranks else _dense_ranks(order)
        return _Candidates(rows, items, features, order_ranks)

    def _source_scores(
        self, members: np.ndarray, held: sp.csr_matrix, recent: sp.csr_matrix
    ) -> dict[str, np.ndarray]:
        """Dense scores of every base model, plus EASE on the members' recent items."""
        scores = {
            name: np.asarray(model.score(members, held), dtype=np.float32)
            for name, model in self.models.items()
        }
        scores["recent_ease"] = np.asarray(
            self.models["ease"].score(members, recent), dtype=np.float32
        )
        return scores

    def _recent_rows(self, members: np.ndarray, held: sp.csr_matrix) -> sp.csr_matrix:
        """Stored recent items of known members; an unknown member's whole history is recent."""
        known = self._known(members)
        if not known.any():
            return held
        stored = self.recent[np.where(known, members, 0)]
        take_stored = sp.diags(known.astype(np.float32))
        take_held = sp.diags((~known).astype(np.float32))
        return sp.csr_matrix(take_stored @ stored + take_held @ held)

    def _known(self, members: np.ndarray) -> np.ndarray:
        return (members >= 0) & (members < len(self.member_table))

    def _candidate_pairs(
        self, scores: dict[str, np.ndarray], held: sp.csr_matrix
    ) -> tuple[np.ndarray, np.ndarray]:
        """Union of each source's top items among the unheld ones, plus the held items."""
        is_held = held.toarray() > 0
        chosen = is_held.copy()
        k = min(self.params.candidates, self.n_items)
        row_index = np.arange(len(is_held))[:, None]
        for name in _CANDIDATE_SOURCES:
            unheld = np.where(is_held, -np.inf, scores[name])
            chosen[row_index, np.argpartition(-unheld, k - 1, axis=1)[:, :k]] = True
        rows, items = np.nonzero(chosen)
        return rows.astype(np.int64), items.astype(np.int64)

    def _item_columns(self, items: np.ndarray) -> dict[str, np.ndarray]:
        table = self.item_table[items]
        return {name: table[:, index] for index, name in enumerate(_ITEM_FEATURES)}

    def _member_columns(
        self, members: np.ndarray, held: sp.csr_matrix, rows: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Stored member statistics (NaN for members unknown at fit time) and the history size."""
        table = np.full((len(members), len(_MEMBER_FEATURES)), np.nan, dtype=np.float32)
        known = self._known(members)
        table[known] = self.member_table[members[known]]
        columns = {name: table[rows, index] for index, name in enumerate(_MEMBER_FEATURES)}
        columns["distinct_items"] = np.diff(held.indptr).astype(np.float32)[rows]
        return columns

    def _family_columns(
        self, held: sp.csr_matrix, rows: np.ndarray, items: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Per family: how many *other* held items of the member share the item's code."""
        held_here = np.asarray(held[rows, items]).ravel()
        columns = {}
        for index, family in enumerate(_FAMILIES):
            codes = self.families[:, index]
            per_code = held @ _membership(codes)
            item_codes = codes[items]
            shared = np.asarray(per_code[rows, np.maximum(item_codes, 0)]).ravel() - held_here
            columns[f"family_{family}"] = np.where(item_codes >= 0, shared, np.nan)
        return columns

    def save(self, directory: Path) -> None:
        """Each base model in its own subdirectory, the statistics as arrays."""
        for name, model in self.models.items():
            model.save(directory / name)
        np.save(directory / "item_table.npy", self.item_table, allow_pickle=False)
        np.save(directory / "member_table.npy", self.member_table, allow_pickle=False)
        np.save(directory / "families.npy", self.families, allow_pickle=False)
        sp.save_npz(directory / "recent.npz", self.recent, compressed=False)

    def load(self, directory: Path, mmap: bool) -> Self:
        """Read what :meth:`save` wrote."""
        self.models = {
            name: type(model).load(directory / name, mmap) for name, model in self.models.items()
        }
        mode = "r" if mmap else None
        self.item_table = np.load(directory / "item_table.npy", mmap_mode=mode, allow_pickle=False)
        self.member_table = np.load(
            directory / "member_table.npy", mmap_mode=mode, allow_pickle=False
        )
        self.families = np.load(directory / "families.npy", allow_pickle=False)
        self.recent = sp.load_npz(directory / "recent.npz").tocsr()
        return self


def _reference_time(data: TrainingData) -> datetime:
    if data.reference_time is None:
        raise ModelFitError("rerank needs interactions with timestamps (a reference time) to fit")
    return data.reference_time


def _membership(codes: np.ndarray) -> sp.csr_matrix:
    """Binary items x codes matrix of one family (items with code -1 belong to none)."""
    known = np.flatnonzero(codes >= 0)
    return sp.csr_matrix(
        (np.ones(len(known), np.float32), (known, codes[known])),
        shape=(len(codes), max(int(codes.max(initial=-1)) + 1, 1)),
    )


def _dense_ranks(scores: np.ndarray) -> np.ndarray:
    """Per row, each item's position when sorted by descending score (0 = best)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty(scores.shape, dtype=np.int32)
    positions = np.broadcast_to(np.arange(scores.shape[1], dtype=np.int32), scores.shape)
    np.put_along_axis(ranks, order, positions, axis=1)
    return ranks


def _dense_scores(candidates: _Candidates, ranker_scores: np.ndarray, n_members: int) -> np.ndarray:
    """Candidates above 0 by ranker score (ties by the ordering model), the rest in [-2, -1)."""
    n_items = candidates.order_ranks.shape[1]
    order_position = candidates.order_ranks / np.float32(max(n_items, 1))
    dense = (_NON_CANDIDATE_TOP - order_position).astype(np.float32)
    row_floor = np.full(n_members, np.inf)
    np.minimum.at(row_floor, candidates.rows, ranker_scores)
    shifted = ranker_scores - row_floor[candidates.rows]
    nudge = _TIE_NUDGE * (1.0 - order_position[candidates.rows, candidates.items])
    dense[candidates.rows, candidates.items] = shifted + nudge
    return dense


# -- label windows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """One label window: the data before it, and for the members evaluated in it (history
    before the window, at least one relevant item) their relevant and excluded items."""

    data: TrainingData
    members: np.ndarray
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix


def _label_windows(data: TrainingData, params: RerankParams) -> list[_Window]:
    """The usable windows, latest first; a window with nothing to learn from is skipped."""
    reference = _reference_time(data)
    first = data.interactions.get_column(col.TIMESTAMP).min()
    windows = []
    for step in range(params.windows):
        start = reference - timedelta(days=params.validation_days + step * params.window_step_days)
        if start <= first:
            break
        window = _label_window(data, start, start + timedelta(days=params.validation_days))
        if len(window.members):
            windows.append(window)
    if not windows:
        raise ModelFitError(
            f"rerank found no member with history before and a new purchase within a "
            f"{params.validation_days}-day label window; lower validation_days"
        )
    return windows


def _label_window(data: TrainingData, start: datetime, end: datetime) -> _Window:
    timestamps = pl.col(col.TIMESTAMP)
    before = data.interactions.filter(timestamps < start)
    during = data.interactions.filter(timestamps.is_between(start, end, closed="both"))
    window_data = TrainingData(
        matrix=history_matrix(before, data.member_ids, data.item_ids),
        member_ids=data.member_ids,
        item_ids=data.item_ids,
        interactions=before,
        reference_time=start,
    )
    purchased = _pair_matrix(before.filter(pl.col(col.EVENT) == _PURCHASE), data)
    bought = _pair_matrix(during.filter(pl.col(col.EVENT) == _PURCHASE), data)
    relevant = bought - bought.multiply(purchased)
    relevant.eliminate_zeros()
    has_history = np.diff(window_data.matrix.indptr) > 0
    members = np.flatnonzero(has_history & (np.diff(relevant.indptr) > 0))
    return _Window(window_data, members, relevant[members], purchased[members])


def _pair_matrix(interactions: pl.DataFrame, data: TrainingData) -> sp.csr_matrix:
    return _binary(history_matrix(interactions, data.member_ids, data.item_ids))


# -- examples and the ranker -------------------------------------------------------------------


@dataclass(frozen=True)
class _Examples:
    """Labelled candidate rows; ``groups`` are the row counts of consecutive groups (one member
    in one window each) and ``group_members`` their members."""

    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    group_members: np.ndarray

    def subset(self, keep_group: np.ndarray) -> _Examples:
        """The groups where ``keep_group`` is true."""
        keep_row = np.repeat(keep_group, self.groups)
        return _Examples(
            self.features[keep_row],
            self.labels[keep_row],
            self.groups[keep_group],
            self.group_members[keep_group],
        )


def _window_examples(stage: _FirstStage, window: _Window) -> _Examples:
    """Candidates of the window's members labelled by the window, previously purchased items
    dropped, and members without a positive candidate left out (they carry no ranking signal
    for lambdarank and only dilute a binary objective)."""
    parts = []
    for rows in _batches(len(window.members), stage.n_items):
        members = window.members[rows]
        candidates = stage.candidates(members, window.data.matrix[members])
        member_rows = rows[candidates.rows]
        keep = np.asarray(window.exclude[member_rows, candidates.items]).ravel() == 0
        labels = np.asarray(window.relevant[member_rows, candidates.items]).ravel()[keep]
        groups = np.bincount(candidates.rows[keep], minlength=len(rows))
        parts.append(_Examples(candidates.features[keep], labels, groups, members))
    examples = _concatenated(parts)
    positive_rows = examples.labels > 0
    group_of_row = np.repeat(np.arange(len(examples.groups)), examples.groups)
    has_positive = np.bincount(group_of_row[positive_rows], minlength=len(examples.groups)) > 0
    return examples.subset(has_positive)


def _concatenated(parts: list[_Examples]) -> _Examples:
    return _Examples(
        np.concatenate([part.features for part in parts]),
        np.concatenate([part.labels for part in parts]).astype(np.float32),
        np.concatenate([part.groups for part in parts]),
        np.concatenate([part.group_members for part in parts]),
    )


def _batches(n_rows: int, n_items: int) -> Iterator[np.ndarray]:
    size = max(1, _CELLS_PER_BATCH // max(n_items, 1))
    for start in range(0, n_rows, size):
        yield np.arange(start, min(start + size, n_rows))


def _lightgbm_params(params: RerankParams) -> dict[str, Any]:
    return {
        "objective": params.objective,
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": params.learning_rate,
        "num_leaves": params.leaves,
        "min_data_in_leaf": params.min_child_samples,
        "lambda_l2": params.l2_regularization,
        "feature_fraction": params.feature_fraction,
        "seed": params.seed,
        "deterministic": True,
        "num_threads": params.threads,
        "verbosity": -1,
    }


def _dataset(examples: _Examples, reference: lgb.Dataset | None = None) -> lgb.Dataset:
    import lightgbm as lgb

    return lgb.Dataset(
        examples.features,
        label=examples.labels,
        group=examples.groups,
        feature_name=list(FEATURE_NAMES),
        reference=reference,
        free_raw_data=False,
    )


def _train_ranker(examples: _Examples, holdout: np.ndarray, params: RerankParams) -> lgb.Booster:
    """Train on the groups of the kept members, early-stopped on the held-out members' groups
    (a member is held out in every window, so the stopping point is not fit to them)."""
    import lightgbm as lgb

    held_out = holdout[examples.group_members]
    lgb_params = _lightgbm_params(params)
    if held_out.all() or not held_out.any():  # too few groups to split: no early stopping
        return lgb.train(lgb_params, _dataset(examples), num_boost_round=params.trees)
    train = _dataset(examples.subset(~held_out))
    return lgb.train(
        lgb_params,
        train,
        num_boost_round=params.trees,
        valid_sets=[_dataset(examples.subset(held_out), reference=train)],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )


# -- the recommender ---------------------------------------------------------------------------


class RerankRecommender(Recommender):
    """Base-model candidates reranked by LightGBM; see the module docstring."""

    name = "rerank"
    Params = RerankParams
    params: RerankParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.stage = _FirstStage(self.params)
        self.ranker: lgb.Booster | None = None
        #: Validation NDCG@10 and precision@10 of the ranker and of each base model on the
        #: held-out members of the latest label window (members never trained on, though they
        #: chose the early-stopping round, so the ranker's figure is slightly optimistic).
        self.validation_report: dict[str, dict[str, float]] = {}

    def fit(self, data: TrainingData) -> Self:
        """Learn the ranker on label windows carved from ``data``, then refit the first stage
        on all of ``data`` for serving."""
        with threadpool_limits(self.params.threads or None, "blas"):
            self._fit_ranker(data)
            self.stage = _FirstStage(self.params).fit(data)
        self.stage.order_model = self._best_base_model()
        self.n_items = data.n_items
        return self

    def _fit_ranker(self, data: TrainingData) -> None:
        """Examples of every label window, the ranker, and its validation report."""
        windows = _label_windows(data, self.params)
        holdout = np.random.default_rng(self.params.seed).random(data.n_members)
        holdout = holdout < self.params.holdout_share
        latest_stage = _FirstStage(self.params).fit(windows[0].data)
        parts = [_window_examples(latest_stage, windows[0])]
        for window in windows[1:]:
            parts.append(_window_examples(_FirstStage(self.params).fit(window.data), window))
        self.ranker = _train_ranker(_concatenated(parts), holdout, self.params)
        self.validation_report = self._validation_report(latest_stage, windows[0], holdout)

    def _validation_report(
        self, stage: _FirstStage, window: _Window, holdout: np.ndarray
    ) -> dict[str, dict[str, float]]:
        """NDCG@10 and precision@10 on the window's held-out members (all when none is held
        out): the ranker's lists against each base model's, under the evaluation protocol."""
        rows = np.flatnonzero(holdout[window.members])
        rows = rows if len(rows) else np.arange(len(window.members))
        members, exclude = window.members[rows], window.exclude[rows]
        histories = _binary(window.data.matrix[members])
        lists = {
            name: model.recommend(members, histories, n=10, exclude=exclude)[0]
            for name, model in stage.models.items()
        }
        candidates = stage.candidates(members, window.data.matrix[members])
        dense = _dense_scores(candidates, self._predict(candidates), len(members))
        dense[exclude.nonzero()] = -np.inf
        lists[self.name] = top_n(dense, 10)[0]
        relevant = window.relevant[rows]
        report = {}
        for name, recommended in lists.items():
            metrics = calc_metrics(recommended, relevant, ks=(10,))
            report[name] = {key: metrics[key] for key in ("ndcg@10", "precision@10")}
        return report

    def _best_base_model(self) -> str:
        return max(_BASE_MODELS, key=lambda name: self.validation_report[name]["ndcg@10"])

    def _predict(self, candidates: _Candidates) -> np.ndarray:
        if self.ranker is None:
            raise ModelFitError("rerank must be fit (or loaded) before it can score")
        scores = self.ranker.predict(candidates.features, num_threads=self.params.threads)
        return np.asarray(scores, dtype=np.float32)

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Ranker scores for the candidates above every other item; see the module docstring."""
        members = np.asarray(members, dtype=np.int64)
        candidates = self.stage.candidates(members, sp.csr_matrix(histories))
        return _dense_scores(candidates, self._predict(candidates), len(members))

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """EASE's item-item relation: "members who have this also get"."""
        return self.stage.models["ease"].similar_items(items, n)

    def _save_arrays(self, directory: Path) -> None:
        if self.ranker is None:
            raise ModelFitError("rerank must be fit before it can be saved")
        self.stage.save(directory)
        self.ranker.save_model(str(directory / "ranker.txt"))
        state = {"order_model": self.stage.order_model, "validation": self.validation_report}
        (directory / "rerank.json").write_text(json.dumps(state, indent=2))

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        import lightgbm as lgb

        self.stage = _FirstStage(self.params).load(directory, mmap)
        self.ranker = lgb.Booster(model_file=str(directory / "ranker.txt"))
        state = json.loads((directory / "rerank.json").read_text())
        self.stage.order_model = state["order_model"]
        self.validation_report = state["validation"]
