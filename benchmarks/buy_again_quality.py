"""How well a buy-again list predicts the next basket, on UCI Online Retail (benchmarks/buy_again.py
runs it and writes the table).

Protocol (issue 14's): purchases cleaned by the ``online-retail`` preset, basket = invoice; the
history is every invoice before a cut, the test each customer's first invoice on or after it
(customers with history). Every member's list holds 10 of their past items as of the cut, and
the next-basket metrics of the training code score it (:func:`training.metrics.next_basket_metrics`:
recall over the whole basket, so a list of past items tops out at the basket's repeat share).
Two cuts: 2011-06-01 (history and test before 2011-09-01), where the listing rule was chosen,
and the issue's 2011-09-01. Four orders of the same past items:

* the due score (:func:`training.buy_again.due_lists`, as served);
* the due score with the earlier rule, which left out an item bought once unless repeatable;
* frequency: most occasions first, then the later purchase (TopPersonal's order);
* recency: the latest purchase first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl
import scipy.sparse as sp

from features import columns as col
from features import purchase_cycles as cycles
from features.presets import get_preset
from features.split_shapes import first_orders
from features.validate import load_interactions
from training.buy_again import PastItems, due_lists
from training.metrics import next_basket_metrics

__all__ = [
    "CUTS",
    "LIST_LENGTH",
    "RANKINGS",
    "CycleSummary",
    "QualityRun",
    "cycle_summary",
    "load_retail",
    "ranking_quality",
]

LIST_LENGTH: Final = 10
#: (label, cut, end of the data used: None for all of it).
CUTS: Final = (
    ("2011-06-01 (where the rule was chosen)", datetime(2011, 6, 1), datetime(2011, 9, 1)),
    ("2011-09-01 (the issue's protocol)", datetime(2011, 9, 1), None),
)
RANKINGS: Final = (
    "due score (served)",
    "due score, bought-once items left out unless repeatable",
    "frequency (TopPersonal's order)",
    "recency",
)
_MEMBER: Final = "_member"
_ITEM: Final = "_item"


@dataclass(frozen=True)
class QualityRun:
    """One cut: its size and each ranking's ``recall@10``, ``ndcg@10`` and ``phr@10``."""

    label: str
    members: int
    repeat_share: float
    history_invoices: int
    figures: dict[str, dict[str, float]]


@dataclass(frozen=True)
class CycleSummary:
    """The purchase cycles of the whole file: what the repeatable rule marks."""

    items: int
    repeatable: int
    with_cycle: int
    items_ten_buyers: int
    median_rebuy_rate_ten_buyers: float
    median_interval_days: float


def load_retail(data: Path) -> pl.DataFrame:
    """The Online Retail file at ``data``, cleaned by its preset."""
    return load_interactions(data, preset=get_preset("online-retail")).frame


def cycle_summary(frame: pl.DataFrame) -> CycleSummary:
    """The purchase cycles of every purchase of ``frame`` (no catalog: the data's rule alone)."""
    items = cycles.purchase_cycles(frame).items
    popular = items.filter(pl.col(cycles.BUYERS) >= 10)
    pooled = items.filter(pl.col(cycles.INTERVALS) > 0)
    return CycleSummary(
        items=items.height,
        repeatable=int(items.get_column(col.REPEATABLE).sum()),
        with_cycle=pooled.height,
        items_ten_buyers=popular.height,
        median_rebuy_rate_ten_buyers=float(popular.get_column(cycles.REBUY_RATE).median()),  # type: ignore[arg-type]
        median_interval_days=float(pooled.get_column(cycles.MEDIAN_INTERVAL_DAYS).median()),  # type: ignore[arg-type]
    )


def ranking_quality(frame: pl.DataFrame) -> list[QualityRun]:
    """Every cut of :data:`CUTS` on the cleaned Online Retail ``frame``."""
    return [_one_cut(frame, label, cut, end) for label, cut, end in CUTS]


def _one_cut(frame: pl.DataFrame, label: str, cut: datetime, end: datetime | None) -> QualityRun:
    if end is not None:
        frame = frame.filter(pl.col(col.TIMESTAMP) < end)
    history = frame.filter(pl.col(col.TIMESTAMP) < cut)
    known = history.get_column(col.MEMBER_ID).unique().implode()
    test = first_orders(
        frame.filter((pl.col(col.TIMESTAMP) >= cut) & pl.col(col.MEMBER_ID).is_in(known)), 1
    )
    found = cycles.purchase_cycles(history)
    members = test.select(pl.col(col.MEMBER_ID).unique().sort()).with_row_index(_MEMBER)
    items = frame.select(pl.col(col.ITEM_ID).cast(pl.Utf8).unique().sort()).with_row_index(_ITEM)
    shape = (members.height, items.height)
    pairs = found.member_items.join(members, on=col.MEMBER_ID).join(items, on=col.ITEM_ID)
    pairs = pairs.sort(_MEMBER, _ITEM)
    past = PastItems(
        rows=pairs.get_column(_MEMBER).to_numpy().astype(np.int64),
        items=pairs.get_column(_ITEM).to_numpy().astype(np.int64),
        occasions=pairs.get_column(cycles.OCCASIONS).to_numpy().astype(np.int64),
        last=pairs.get_column(cycles.LAST_PURCHASE).dt.epoch("us").to_numpy() / 1e6,
        cycle=pairs.get_column(cycles.CYCLE_DAYS).fill_null(np.nan).to_numpy(),
    )
    per_item = items.join(found.items, on=col.ITEM_ID, how="left", maintain_order="left")
    rebuy_rate = per_item.get_column(cycles.REBUY_RATE).fill_null(0.0).to_numpy()
    repeatable = per_item.get_column(col.REPEATABLE).fill_null(False).to_numpy()
    basket = test.select(col.MEMBER_ID, pl.col(col.ITEM_ID).cast(pl.Utf8)).unique()
    basket = basket.join(members, on=col.MEMBER_ID).join(items, on=col.ITEM_ID)
    relevant = _indicator(basket.get_column(_MEMBER), basket.get_column(_ITEM), shape)
    bought = _indicator(pairs.get_column(_MEMBER), pairs.get_column(_ITEM), shape)
    repeats = relevant.multiply(bought).tocsr()
    as_of = np.full(members.height, cut.replace(tzinfo=UTC).timestamp())
    available = np.ones(items.height, dtype=bool)

    def due(subset: np.ndarray) -> np.ndarray:
        kept = PastItems(
            **{field.name: getattr(past, field.name)[subset] for field in fields(past)}
        )
        return due_lists(kept, as_of, LIST_LENGTH, rebuy_rate=rebuy_rate, available=available).items

    everything = np.ones(len(past.items), dtype=bool)
    lists = {
        RANKINGS[0]: due(everything),
        RANKINGS[1]: due((past.occasions >= 2) | repeatable[past.items]),
        RANKINGS[2]: _first(past, (past.items, -past.last, -past.occasions), members.height),
        RANKINGS[3]: _first(past, (past.items, -past.occasions, -past.last), members.height),
    }
    figures = {}
    for name, listed in lists.items():
        metrics = next_basket_metrics(listed, relevant, repeats, (LIST_LENGTH,))
        figures[name] = {key: metrics[f"{key}@{LIST_LENGTH}"] for key in ("recall", "ndcg", "phr")}
    return QualityRun(
        label=label,
        members=members.height,
        repeat_share=repeats.nnz / max(relevant.nnz, 1),
        history_invoices=history.get_column(col.ORDER_ID).n_unique(),
        figures=figures,
    )


def _indicator(rows: pl.Series, columns: pl.Series, shape: tuple[int, int]) -> sp.csr_matrix:
    values = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((values, (rows.to_numpy(), columns.to_numpy())), shape=shape)


def _first(past: PastItems, keys: tuple[np.ndarray, ...], n_members: int) -> np.ndarray:
    """Each member's first :data:`LIST_LENGTH` past items in the order of ``keys`` (the last
    key sorts first, as in ``np.lexsort``), -1 padded."""
    order = np.lexsort((*keys, past.rows))
    rows = past.rows[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n_members))[rows]
    kept = rank < LIST_LENGTH
    lists = np.full((n_members, LIST_LENGTH), -1, dtype=np.int64)
    lists[rows[kept], rank[kept]] = past.items[order][kept]
    return lists
