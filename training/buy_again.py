"""The buy-again list: a member's past items, ranked by how due each is to be bought again.

The purchase cycles (:mod:`features.purchase_cycles`) are computed at training time and written
into the model artifact (:func:`write_cycle_files`); :class:`BuyAgainTable` holds them as
arrays grouped by member, so that one member's list costs O(their past items), and a batch of
members is a few vector operations (the campaign export). One function ranks
(:func:`due_lists`) and one writes the reason (:func:`reason`), for the API and the export
alike. The definitions, in full, are in docs/buy-again.md; in short, for a past item of a
member with ``o`` occasions, last bought ``e`` days before ``as_of``, with cycle ``c`` days::

    ratio  = e / max(c, 1 day)                    how far along its cycle the item is
    timing = min(ratio, 1 / ratio)                1 when due now; 0.5 half-way, or twice late
    habit  = (o - 1 + k x rebuy rate) / (o - 1 + k)    the shrunk chance the member rebuys it
    score  = habit x timing,  due date = last purchase + max(c, 1 day)

``k`` is the cycles' prior strength and the rebuy rate the item's (both per
:mod:`features.purchase_cycles`). Ties go to more occasions, then the later last purchase, then
the lower item index. An item has no place in the list when it has no cycle (nobody ever
bought it twice: there is nothing to be due against) or when the catalog no longer offers it.
An item the member bought once is listed like the others, its habit being the item's rebuy
rate: a sofa (bought again by few) sinks to the end of the list by itself. Leaving such items
out unless repeatable (:mod:`features.purchase_cycles`) made the lists predict the next basket
of Online Retail worse than plain frequency does (docs/buy-again.md): many members could not
fill ten places.

Live purchases (events after the artifact's ``data_end``) reset the clock at once: the item's
last purchase becomes the live one and each UTC day with a live purchase of it is one more
occasion (:func:`features.baskets.order_key`'s rule without an order id); an item first
bought live joins the list with the item's cycle. The cycles themselves stay as trained.
``as_of`` is when due-ness is judged: by default the member's latest live event, else the
data's end (the profile's ``as_of``), so that a list follows the data's clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from features import columns as col
from features import purchase_cycles as cycles
from features.ids import IdMap
from training.artifact import ArtifactError
from training.artifact.layout import ITEM_CYCLES_FILE, PURCHASE_CYCLES_FILE
from training.live import LiveEvent, live_since
from training.recommend import ArtifactRecommender
from training.recommend.context import row_cells

__all__ = [
    "ITEM_INDEX",
    "MEMBER_INDEX",
    "MIN_CYCLE_DAYS",
    "BuyAgainTable",
    "DueLists",
    "PastItems",
    "due_lists",
    "reason",
    "write_cycle_files",
]

#: Columns of ``purchase_cycles.parquet``: the artifact's internal indices (``ids/*.npy``).
MEMBER_INDEX: Final = "member_index"
ITEM_INDEX: Final = "item_index"
#: A cycle shorter than this counts as this (two orders of one day are two occasions): a
#: member is never "due" hours after a purchase.
MIN_CYCLE_DAYS: Final = 1.0
DAY_SECONDS: Final = 86_400.0
_MICROSECONDS: Final = 1e6


def write_cycle_files(
    interactions: pl.DataFrame,
    member_ids: IdMap,
    item_ids: IdMap,
    catalog: pl.DataFrame | None,
    directory: Path,
    rules: cycles.CycleRules = cycles.DEFAULT_CYCLE_RULES,
) -> dict[str, Path]:
    """Compute the purchase cycles of ``interactions`` and write the artifact's two cycle files
    into ``directory``; their paths by name (``write_artifact``'s extra files).

    ``item_cycles.parquet``: row i is item i (``item_id`` and the per-item columns; items
    never bought have 0 buyers and null cycles). ``purchase_cycles.parquet``: one row per
    member and item bought, by internal index, sorted by member then item.
    """
    found = cycles.purchase_cycles(interactions, catalog, rules)
    order = pl.DataFrame({col.ITEM_ID: item_ids.external_ids}, schema={col.ITEM_ID: pl.Utf8})
    items = order.join(found.items, on=col.ITEM_ID, how="left", maintain_order="left")
    items = items.with_columns(
        pl.col(cycles.BUYERS, cycles.REBUYERS, cycles.INTERVALS).fill_null(0),
        pl.col(cycles.REPEATABLE_BY_DATA, col.REPEATABLE).fill_null(False),
    )
    pairs = found.member_items
    indices = [
        pl.Series(MEMBER_INDEX, member_ids.to_internal(pairs.get_column(col.MEMBER_ID))),
        pl.Series(ITEM_INDEX, item_ids.to_internal(pairs.get_column(col.ITEM_ID))),
    ]
    member_items = pairs.select(
        *(index.cast(pl.Int32) for index in indices),
        cycles.OCCASIONS, cycles.FIRST_PURCHASE, cycles.LAST_PURCHASE,
        cycles.OWN_INTERVAL_DAYS, cycles.CYCLE_DAYS,
    ).sort(MEMBER_INDEX, ITEM_INDEX)  # fmt: skip
    paths = {ITEM_CYCLES_FILE: directory / ITEM_CYCLES_FILE,
             PURCHASE_CYCLES_FILE: directory / PURCHASE_CYCLES_FILE}  # fmt: skip
    items.write_parquet(paths[ITEM_CYCLES_FILE])
    member_items.write_parquet(paths[PURCHASE_CYCLES_FILE])
    return paths


@dataclass(frozen=True)
class PastItems:
    """A batch's past items, one entry per member and item: ``rows`` is the member's position
    in the batch, ``last`` the last purchase (epoch seconds), ``cycle`` in days (NaN: none)."""

    rows: np.ndarray
    items: np.ndarray
    occasions: np.ndarray
    last: np.ndarray
    cycle: np.ndarray


@dataclass(frozen=True)
class DueLists:
    """Each member's most due past items, best first: arrays of shape (members, n), -1 (items)
    and NaN padded; ``as_of`` (epoch seconds), ``past_items`` (items the member bought, listed
    or not) and ``live_purchases`` are one per member."""

    items: np.ndarray
    scores: np.ndarray
    occasions: np.ndarray
    cycle_days: np.ndarray
    last: np.ndarray
    due: np.ndarray
    as_of: np.ndarray
    past_items: np.ndarray
    live_purchases: np.ndarray

    def counts(self) -> np.ndarray:
        """Items listed per member."""
        return (self.items >= 0).sum(axis=1)

    def elapsed_days(self) -> np.ndarray:
        """Days from each item's last purchase to the member's ``as_of`` (never negative)."""
        return np.maximum(self.as_of[:, None] - self.last, 0.0) / DAY_SECONDS

    def due_in_days(self) -> np.ndarray:
        """Days from ``as_of`` to each item's due date (negative: overdue)."""
        return (self.due - self.as_of[:, None]) / DAY_SECONDS

    def reasons(self) -> list[list[str]]:
        """Each listed item's :func:`reason`, per member."""
        elapsed, due_in = self.elapsed_days(), self.due_in_days()
        return [
            [
                reason(int(self.occasions[row, k]), float(self.cycle_days[row, k]),
                       float(elapsed[row, k]), float(due_in[row, k]))
                for k in range(int(count))
            ]
            for row, count in enumerate(self.counts())
        ]  # fmt: skip


def due_lists(
    past: PastItems,
    as_of: np.ndarray,
    n: int,
    *,
    rebuy_rate: np.ndarray,
    available: np.ndarray,
    prior_strength: float = cycles.DEFAULT_CYCLE_RULES.prior_strength,
) -> DueLists:
    """The best ``n`` past items of each of ``len(as_of)`` members by how due they are (the
    module docstring), from their ``past`` items and the per-item ``rebuy_rate`` (0 where
    none) and ``available`` arrays: one sort of the whole batch."""
    n_members = len(as_of)
    cycle = np.maximum(past.cycle, MIN_CYCLE_DAYS)
    eligible = ~np.isnan(past.cycle) & available[past.items]
    rows, items, occasions = past.rows[eligible], past.items[eligible], past.occasions[eligible]
    last, cycle = past.last[eligible], cycle[eligible]
    elapsed = np.maximum(as_of[rows] - last, 0.0) / DAY_SECONDS
    ratio = elapsed / cycle
    timing = np.where(ratio > 1.0, 1.0 / np.maximum(ratio, 1.0), ratio)
    intervals = (occasions - 1).astype(np.float64)
    habit = (intervals + prior_strength * rebuy_rate[items]) / (intervals + prior_strength)
    scores = habit * timing
    order = np.lexsort((items, -last, -occasions, -scores, rows))
    rows = rows[order]
    starts = np.searchsorted(rows, np.arange(n_members))
    rank = np.arange(len(rows)) - starts[rows]
    kept = order[rank < n]
    at = (rows[rank < n], rank[rank < n])
    lists = DueLists(
        items=np.full((n_members, n), -1, dtype=np.int64),
        scores=np.full((n_members, n), np.nan),
        occasions=np.zeros((n_members, n), dtype=np.int64),
        cycle_days=np.full((n_members, n), np.nan),
        last=np.full((n_members, n), np.nan),
        due=np.full((n_members, n), np.nan),
        as_of=np.asarray(as_of, dtype=np.float64),
        past_items=np.bincount(past.rows, minlength=n_members),
        live_purchases=np.zeros(n_members, dtype=np.int64),
    )
    lists.items[at], lists.scores[at] = items[kept], scores[kept]
    lists.occasions[at], lists.cycle_days[at] = occasions[kept], cycle[kept]
    lists.last[at] = last[kept]
    lists.due[at] = last[kept] + cycle[kept] * DAY_SECONDS
    return lists


def reason(occasions: int, cycle_days: float, elapsed_days: float, due_in_days: float) -> str:
    """Why an item is listed, in words: "bought 6 times, about every 14 days; last bought 16
    days ago, due 2 days ago", or, bought once, "bought once 40 days ago; its buyers buy it
    again about every 30 days; due in 10 days". Days are rounded half up."""
    cycle, due, elapsed = _days(cycle_days), _days(due_in_days), _days(elapsed_days)
    every = "about every day" if cycle <= 1 else f"about every {cycle} days"
    if due == 0:
        when = "due today"
    else:
        when = f"due in {_count(due)}" if due > 0 else f"due {_count(-due)} ago"
    ago = "today" if elapsed == 0 else f"{_count(elapsed)} ago"
    if occasions == 1:
        return f"bought once {ago}; its buyers buy it again {every}; {when}"
    return f"bought {occasions} times, {every}; last bought {ago}, {when}"


def _days(value: float) -> int:
    return math.floor(value + 0.5)


def _count(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


class BuyAgainTable:
    """The artifact's purchase cycles as arrays grouped by member (CSR: ``indptr`` over the
    member index), with the per-item arrays the ranking reads; built once per loaded artifact.
    """

    def __init__(self, recommender: ArtifactRecommender, item_table: pl.DataFrame,
                 member_items: pl.DataFrame) -> None:  # fmt: skip
        artifact = recommender.artifact
        n_members, n_items = len(artifact.member_ids), len(artifact.item_ids)
        if item_table.height != n_items:
            raise ArtifactError(
                f"{artifact.path}: {ITEM_CYCLES_FILE} has {item_table.height} rows for "
                f"{n_items} items; the artifact is refused. Rewrite it with recsys train."
            )
        members = member_items.get_column(MEMBER_INDEX).to_numpy()
        if len(members) and (np.diff(members) < 0).any():
            raise ArtifactError(
                f"{artifact.path}: {PURCHASE_CYCLES_FILE} is not sorted by member; the artifact "
                "is refused. Rewrite it with recsys train."
            )
        self.since = live_since(artifact)
        self._item_index = artifact.item_ids.get
        self._indptr = np.searchsorted(members, np.arange(n_members + 1)).astype(np.int64)
        self._items = member_items.get_column(ITEM_INDEX).to_numpy().astype(np.int64)
        self._occasions = member_items.get_column(cycles.OCCASIONS).to_numpy().astype(np.int64)
        self._last = _epoch_seconds(member_items.get_column(cycles.LAST_PURCHASE))
        self._cycle = member_items.get_column(cycles.CYCLE_DAYS).fill_null(np.nan).to_numpy()
        self._item_cycle = (
            item_table.get_column(cycles.MEDIAN_INTERVAL_DAYS).fill_null(np.nan).to_numpy()
        )
        self._rebuy_rate = item_table.get_column(cycles.REBUY_RATE).fill_null(0.0).to_numpy()
        self._available = recommender.allowed_items()
        self._n_items = n_items

    @classmethod
    def of(cls, recommender: ArtifactRecommender) -> BuyAgainTable | None:
        """The table of the recommender's artifact; None when the artifact has no purchase
        cycles (trained before them)."""
        files = recommender.artifact.extra_files
        if ITEM_CYCLES_FILE not in files or PURCHASE_CYCLES_FILE not in files:
            return None
        return cls(
            recommender,
            pl.read_parquet(files[ITEM_CYCLES_FILE]),
            pl.read_parquet(files[PURCHASE_CYCLES_FILE]),
        )

    def answer(
        self,
        member_indices: np.ndarray,
        n: int,
        events: Sequence[Sequence[LiveEvent]] | None = None,
        as_of: float | None = None,
    ) -> DueLists:
        """The best ``n`` items of each member (internal indices, -1: unknown to the
        artifact), with each member's live ``events`` (after the data's end, oldest first; None:
        none) folded in, judged at ``as_of`` (epoch seconds; None: each member's latest live
        event, else the data's end)."""
        member_indices = np.asarray(member_indices, dtype=np.int64)
        rows, cells = row_cells(self._indptr, member_indices)
        past = PastItems(
            rows=rows, items=self._items[cells], occasions=self._occasions[cells],
            last=self._last[cells], cycle=self._cycle[cells],
        )  # fmt: skip
        member_as_of = np.full(len(member_indices), self.since)
        live_rows: list[int] = []
        live_items: list[int] = []
        live_times: list[float] = []
        for row, member_events in enumerate(events or ()):
            for event in member_events:
                if event.event not in col.EVENTS:  # impressions are no activity
                    continue
                member_as_of[row] = max(member_as_of[row], event.occurred_at)
                index = self._item_index(event.item_id)
                if event.event == col.PURCHASE and index is not None:
                    live_rows.append(row)
                    live_items.append(index)
                    live_times.append(event.occurred_at)
        if live_rows:
            past = self._with_live(past, np.array(live_rows), np.array(live_items),
                                   np.array(live_times))  # fmt: skip
        lists = due_lists(
            past, member_as_of if as_of is None else np.full(len(member_indices), as_of), n,
            rebuy_rate=self._rebuy_rate, available=self._available,
        )  # fmt: skip
        lists.live_purchases[:] = np.bincount(live_rows, minlength=len(member_indices))
        return lists

    def _with_live(
        self, past: PastItems, rows: np.ndarray, items: np.ndarray, times: np.ndarray
    ) -> PastItems:
        """``past`` with live purchases folded in: each (member, item) bought live has its last
        purchase moved to the latest one and one more occasion per UTC day with a purchase;
        a pair first bought live gets the item's cycle."""
        keys = rows * self._n_items + items
        days = np.floor(times / DAY_SECONDS)
        pairs, first = np.unique(keys, return_index=True)
        latest = np.full(len(pairs), -np.inf)
        np.maximum.at(latest, np.searchsorted(pairs, keys), times)
        day_keys = np.unique(np.stack([keys, days]), axis=1)
        new_occasions = np.bincount(np.searchsorted(pairs, day_keys[0]), minlength=len(pairs))
        trained = past.rows * self._n_items + past.items  # sorted: rows, then items per row
        position = np.minimum(np.searchsorted(trained, pairs), max(len(trained) - 1, 0))
        known = trained[position] == pairs if len(trained) else np.zeros(len(pairs), bool)
        occasions, last = past.occasions.copy(), past.last.copy()
        occasions[position[known]] += new_occasions[known]
        last[position[known]] = np.maximum(last[position[known]], latest[known])
        fresh = ~known
        fresh_items = items[first[fresh]]
        return PastItems(
            rows=np.concatenate([past.rows, rows[first[fresh]]]),
            items=np.concatenate([past.items, fresh_items]),
            occasions=np.concatenate([occasions, new_occasions[fresh]]),
            last=np.concatenate([last, latest[fresh]]),
            cycle=np.concatenate([past.cycle, self._item_cycle[fresh_items]]),
        )


def _epoch_seconds(times: pl.Series) -> np.ndarray:
    """Naive-UTC datetimes as epoch seconds (float64)."""
    return times.dt.epoch("us").to_numpy().astype(np.float64) / _MICROSECONDS
