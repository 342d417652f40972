"""Campaign exports: every member's recommendations, bundles or buy-again list, streamed to CSV
or Parquet.

An email campaign needs top-N for a million members overnight. The export answers members in
batches through the same code as the API (:meth:`ArtifactRecommender.ranked`,
:class:`BundleComposer`, :class:`BuyAgainTable`), each batch as arrays, and appends each batch
to the output as it is done: memory holds one batch, whatever the number of members. The file
is written under a temporary name and renamed when complete, so that a failed run never leaves
a half file behind a name a campaign tool reads.

A campaign export (:mod:`training.campaigns`) runs this same loop with :class:`BatchRules`:
per batch it says which members to answer and how many rows beyond ``n`` to rank for them (the
rows its frequency caps may drop), then keeps what is sent of the answers. Answers stay item
indices (:data:`ITEM_COLUMNS`) until the rows to write are known, and indices become ids by
gathering from one column of names, never through a Python string per row.

Every member of the requested set is answered exactly once: by default the members the
models index and the members the artifact carries without events (:mod:`training.roster`,
answered by their segment's popularity, flagged ``fallback``); a requested id the artifact
does not know gets the same flagged popularity answer. What members did after the artifact's
data counts as it does in the API: each batch reads its members' events after ``data_end``
from the event store and applies them (:func:`training.live.live_context`: purchases
excluded, a factor model folds the new history in), so the file never offers an item a
member has just bought; a buy-again list takes the purchases in as the API does (the item's
clock reset: :mod:`training.buy_again`).

One row per recommended item (``kind="recommendations"``), per bundle (``kind="bundles"``) or
per item due again (``kind="buy-again"``; a member with nothing to buy again has no row),
ranked within each member; the columns are in :data:`RECOMMENDATION_COLUMNS`,
:data:`BUNDLE_COLUMNS` and :data:`BUY_AGAIN_COLUMNS`. A recommendation's ``score_kind`` says
what its ``score`` is (:data:`SCORE_KINDS`), since a model's scores and popularity counts
share the column.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from features.errors import ConfigError
from training.artifact import RULES_FILE, ModelArtifact
from training.buy_again import BuyAgainTable
from training.live import LiveEvent, MemberEvents, event_weights_of, live_context, live_since
from training.member_bundles import BundleComposer
from training.recommend import FALLBACK_MODEL, ArtifactRecommender, MemberContext
from training.roster import Roster

__all__ = [
    "BUNDLE_COLUMNS",
    "BUY_AGAIN_COLUMNS",
    "ITEM_COLUMNS",
    "RECOMMENDATION_COLUMNS",
    "SCORE_KINDS",
    "Admission",
    "BatchRules",
    "ExportSummary",
    "ItemNames",
    "TableWriter",
    "export_members",
]

ExportKind = Literal["recommendations", "bundles", "buy-again"]
#: What ``--kind`` accepts.
EXPORT_KINDS: tuple[ExportKind, ...] = ("recommendations", "bundles", "buy-again")

RECOMMENDATION_COLUMNS = (
    "member_id", "rank", "item_id", "score", "score_kind", "model", "fallback",
)  # fmt: skip
#: What a recommendation's ``score`` is: the answering model's own score (comparable within that
#: model only, 0.05 for one) or a popularity count (698): the popular model's, or
#: the items popularity completed a list with.
SCORE_KINDS = ("model", "popularity")
BUNDLE_COLUMNS = (
    "member_id", "rank", "anchor_item_id", "complement_item_id", "score", "source", "lift",
    "confidence", "support", "third_item_id", "third_lift", "total_price", "model", "fallback",
)  # fmt: skip
#: A buy-again row: ``score`` is how due the item is (1 at most), times are UTC, ``as_of`` is
#: when due-ness was judged and ``due_in_days`` runs from it to ``due_date`` (negative:
#: overdue); definitions in docs/buy-again.md.
BUY_AGAIN_COLUMNS = (
    "member_id", "rank", "item_id", "score", "due_date", "due_in_days", "last_purchase",
    "occasions", "cycle_days", "as_of", "reason",
)  # fmt: skip
#: The columns of each kind's rows that name an item: item indices while the rows are ranked
#: and capped, external ids once written (:class:`ItemNames`).
ITEM_COLUMNS: dict[ExportKind, tuple[str, ...]] = {
    "recommendations": ("item_id",),
    "buy-again": ("item_id",),
    "bundles": ("anchor_item_id", "complement_item_id", "third_item_id"),
}

#: Members answered per batch: large enough for vector operations to pay, small enough that a
#: batch's arrays (members x 3n anchors x 16 candidates for bundles) stay in tens of MB.
DEFAULT_BATCH = 4096
#: Member ids per event-store query: under SQLite's oldest limit of bound parameters (999).
EVENTS_QUERY_MEMBERS = 900

Contexts = list[MemberContext | None]


@dataclass(frozen=True)
class _Batch:
    """One batch of members as the answers need it: their contexts (None: nothing to add),
    how many took in live events, and each member's live events (oldest first)."""

    member_ids: list[str]
    contexts: Contexts | None
    live: int
    events: dict[str, list[LiveEvent]]


#: One batch as a campaign's rules decide it: its member ids, which of them to answer (a boolean
#: mask; None: all) and how many rows beyond ``n`` to rank for each.
Admission = tuple[list[str], np.ndarray | None, int]


class ItemNames:
    """Item indices to the artifact's external item ids, a column at a time (a gather from one
    Series of names: tens of nanoseconds a row, where a NumPy object array of ids costs a Python
    string each). A null index (a bundle without a third item) names nothing."""

    def __init__(self, artifact: ModelArtifact) -> None:
        self.names = pl.Series("item_id", artifact.item_ids.external_ids, dtype=pl.Utf8)
        self._indices = pl.DataFrame({
            "_id": self.names, "_index": np.arange(len(self.names), dtype=np.int32)
        })  # fmt: skip

    def named(self, frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
        """``frame`` with each of ``columns`` (item indices) holding item ids."""
        return frame.with_columns(
            self.names.gather(frame.get_column(name)).alias(name) for name in columns
        )

    def indexed(self, frame: pl.DataFrame, column: str) -> pl.DataFrame:
        """``frame`` with ``column`` (item ids) holding item indices; rows naming an item the
        artifact does not hold are dropped."""
        return (
            frame.join(
                self._indices, left_on=column, right_on="_id", how="inner", maintain_order="left"
            )
            .with_columns(pl.col("_index").alias(column))
            .select(frame.columns)
        )


class BatchRules(Protocol):
    """What a campaign does to each batch of an export (:mod:`training.campaigns`)."""

    def admit(self, batches: Iterable[list[str]]) -> Iterator[Admission]:
        """Each batch of member ids, in order, with which members to answer and how deep to
        rank them (rows that :meth:`keep` may drop); it may read ahead of the batch it yields."""
        ...

    def keep(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows to write of the admitted members' answers (at most ``n`` per member), their
        :data:`ITEM_COLUMNS` turned from item indices into ids (:class:`ItemNames`)."""
        ...


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    path: Path
    members: int
    #: Members the models do not index (answered by popularity, flagged ``fallback``).
    unknown_members: int
    #: Members with events after the artifact's data, which their answer took in.
    live_members: int
    rows: int
    seconds: float
    #: Members left out because they were erased on request (:mod:`serving.erasure`).
    erased_members: int = 0


def export_members(
    artifact: ModelArtifact,
    out: Path,
    *,
    kind: ExportKind = "recommendations",
    n: int = 10,
    member_ids: Sequence[str] | None = None,
    model: str | None = None,
    batch: int = DEFAULT_BATCH,
    events: MemberEvents | None = None,
    progress: Callable[[int], None] | None = None,
    as_of: datetime | None = None,
    rules: BatchRules | None = None,
    erased: Collection[str] = (),
) -> ExportSummary:
    """Write ``kind`` for ``member_ids`` (default: every member the artifact knows, with or
    without events; each once) to ``out`` (``.csv`` or ``.parquet``), ``n`` rows per member at
    most, in batches of ``batch`` members, with their ``events`` after the artifact's data
    (None: the artifact alone); ``progress`` gets the number of members done after each batch.
    ``as_of`` (buy-again only; naive = UTC): when due-ness is judged, for every member (None:
    each member's latest live event, else the data's end, as the API judges it). ``rules``:
    a campaign's, applied to every batch. ``erased``: members erased on request, left out
    whether asked for or not (the artifact still knows them until the next training)."""
    if out.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {out}: use a .csv or .parquet file name")
    if kind != "recommendations" and model is not None:
        raise ConfigError(f"--model: {kind} do not come from a model you can choose")
    if kind != "buy-again" and as_of is not None:
        raise ConfigError("--as-of: only buy-again lists are judged as of a time")
    started = time.perf_counter()
    roster = Roster(artifact)
    recommender = ArtifactRecommender(artifact)
    members, indexed = _members_to_export(recommender, roster, member_ids)
    left_out = 0
    if erased:
        keep = ~pl.Series(members, dtype=pl.Utf8).is_in(list(erased)).to_numpy()
        left_out = int((~keep).sum())
        members, indexed = members[keep], indexed[keep]
    contexts_of = _LiveContexts(artifact, roster, events)
    answer: Callable[..., tuple[pl.DataFrame, int]]
    if kind == "bundles":
        rules_path = artifact.extra_files.get(RULES_FILE)
        mined = pl.read_parquet(rules_path) if rules_path is not None else None
        answer = partial(_bundle_rows, BundleComposer(recommender, mined))
        schema = _BUNDLE_SCHEMA
    elif kind == "buy-again":
        table = BuyAgainTable.of(recommender)
        if table is None:
            raise ConfigError(
                f"--kind buy-again: the model artifact {artifact.path} has no purchase cycles "
                "(trained before buy-again lists); retrain it with recsys train"
            )
        moment = _as_of_seconds(as_of, table.since)
        answer = partial(_buy_again_rows, recommender, table, as_of=moment)
        schema = _BUY_AGAIN_SCHEMA
    else:
        artifact.model(model or artifact.chosen)  # an unknown name fails before anything is written
        answer = partial(_recommendation_rows, artifact, recommender, model=model)
        schema = _RECOMMENDATION_SCHEMA
    out.parent.mkdir(parents=True, exist_ok=True)
    partial_path = out.with_name(f".{out.name}.partial")
    names = ItemNames(artifact)
    item_columns = ITEM_COLUMNS[kind]
    batches = (members[start : start + batch].tolist() for start in range(0, len(members), batch))
    admissions: Iterator[Admission] = (
        rules.admit(batches) if rules is not None else ((ids, None, 0) for ids in batches)
    )
    rows = live = start = 0
    try:
        with (
            TableWriter(partial_path, schema, csv=out.suffix == ".csv") as writer,
            closing(
                admissions  # type: ignore[type-var]
            ),
        ):
            for ids, admitted, extra in admissions:
                known, done = indexed[start : start + len(ids)], len(ids)
                start += done
                if admitted is not None:
                    ids = [ids[row] for row in np.flatnonzero(admitted)]
                    known = known[admitted]
                if ids:
                    frame, batch_live = answer(contexts_of(ids, known), n=n + extra)
                    frame = (
                        rules.keep(frame) if rules is not None else names.named(frame, item_columns)
                    )
                    writer.write(frame)
                    rows += frame.height
                    live += batch_live
                if progress is not None:
                    progress(done)
    except BaseException:
        partial_path.unlink(missing_ok=True)
        raise
    os.replace(partial_path, out)
    unknown = int((~indexed).sum())
    seconds = time.perf_counter() - started
    return ExportSummary(out, len(members), unknown, live, rows, seconds, left_out)


def _members_to_export(
    recommender: ArtifactRecommender, roster: Roster, member_ids: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The members asked for, each once in first-seen order (by default the models' members
    then the artifact's members without events, disjoint by construction), and whether the
    models index each: known by position by default, else looked up once."""
    if member_ids is None:
        indexed_ids = recommender.artifact.member_ids.external_ids
        members = np.concatenate([indexed_ids.astype(object), roster.member_ids])
        return members, np.arange(len(members)) < len(indexed_ids)
    members = pl.Series(member_ids, dtype=pl.Utf8).unique(maintain_order=True).to_numpy()
    return members, recommender.member_indices(members.tolist()) >= 0


class _LiveContexts:
    """Each batch's contexts, as the API builds them for a request: the members' events after
    the artifact's data, and for a member the models do not index, the segment the artifact
    carries for them (its popularity answers them)."""

    def __init__(
        self, artifact: ModelArtifact, roster: Roster, events: MemberEvents | None
    ) -> None:
        self._roster = roster
        self._events = events
        self._since = live_since(artifact)
        self._item_index = artifact.item_ids.get
        self._weights = event_weights_of(artifact)

    def __call__(self, member_ids: list[str], indexed: np.ndarray) -> _Batch:
        """The batch with one context per member (None: the artifact's answer stands; None
        for the whole batch when no member has anything to add) and their live events."""
        by_member = self._events_by_member(member_ids)
        segments = (
            self._roster.segment_codes(member_ids)
            if len(self._roster) and not indexed.all()
            else None
        )
        if not by_member and segments is None:
            return _Batch(member_ids, None, 0, by_member)
        contexts: Contexts = []
        live = 0
        for row, member_id in enumerate(member_ids):
            code = int(segments[row]) if segments is not None else -1
            segment = code if code >= 0 else None
            events = by_member.get(member_id)
            context = (
                live_context(events, self._item_index, self._weights, segment=segment)
                if events
                else None
            )
            live += context is not None
            if context is None and segment is not None:
                context = MemberContext(segment=segment)
            contexts.append(context)
        return _Batch(member_ids, contexts, live, by_member)

    def _events_by_member(self, member_ids: Sequence[str]) -> dict[str, list[LiveEvent]]:
        """The members' events after the artifact's data, a bounded id list per query."""
        by_member: dict[str, list[LiveEvent]] = defaultdict(list)
        if self._events is None:
            return by_member
        for start in range(0, len(member_ids), EVENTS_QUERY_MEMBERS):
            chunk = member_ids[start : start + EVENTS_QUERY_MEMBERS]
            for stored in self._events.member_events(chunk, self._since):
                by_member[stored.member_id].append(stored)
        return by_member


def _recommendation_rows(
    artifact: ModelArtifact,
    recommender: ArtifactRecommender,
    batch: _Batch,
    *,
    n: int,
    model: str | None,
) -> tuple[pl.DataFrame, int]:
    member_ids = batch.member_ids
    ranked = recommender.ranked(
        member_ids, min(n, len(artifact.item_ids)), model=model, contexts=batch.contexts
    )
    found = ranked.items >= 0
    rows, ranks = np.nonzero(found)
    member_models = pl.Series(ranked.models, dtype=pl.Utf8)
    # A row's first ``from_model`` items are its model's; popularity completed the rest.
    answered_by_model = (member_models != FALLBACK_MODEL).to_numpy()
    by_model = (ranks < ranked.from_model[rows]) & answered_by_model[rows]
    frame = pl.DataFrame(
        {
            "member_id": _member_column(member_ids, rows),
            "rank": (ranks + 1).astype(np.int32),
            "item_id": ranked.items[found].astype(np.int32),
            "score": ranked.scores[found],
            "score_kind": _labels(SCORE_KINDS, by_model),
            "model": member_models.gather(rows),
            "fallback": ranked.fallback[rows],
        },
        schema=_indexed(_RECOMMENDATION_SCHEMA, "recommendations"),
    )
    return frame, batch.live


def _bundle_rows(composer: BundleComposer, batch: _Batch, *, n: int) -> tuple[pl.DataFrame, int]:
    member_ids = batch.member_ids
    found = composer.for_members(member_ids, n, contexts=batch.contexts)
    taken = found.anchors >= 0
    rows, ranks = np.nonzero(taken)
    frame = pl.DataFrame(
        {
            "member_id": _member_column(member_ids, rows),
            "rank": (ranks + 1).astype(np.int32),
            "anchor_item_id": found.anchors[taken].astype(np.int32),
            "complement_item_id": found.complements[taken].astype(np.int32),
            "score": found.scores[taken],
            "source": _labels(("rules", "similar"), found.from_rules[taken]),
            "lift": found.lift[taken],
            "confidence": found.confidence[taken],
            "support": found.support[taken],
            "third_item_id": _indices_or_null(found.thirds[taken]),
            "third_lift": found.third_measures["lift"][taken],
            "total_price": found.total_price[taken],
            "model": pl.Series(found.models, dtype=pl.Utf8).gather(rows),
            "fallback": found.fallback[rows],
        },
        schema=_indexed(_BUNDLE_SCHEMA, "bundles"),
        nan_to_null=True,
    )
    return frame, batch.live


def _buy_again_rows(
    recommender: ArtifactRecommender,
    table: BuyAgainTable,
    batch: _Batch,
    *,
    n: int,
    as_of: float | None,
) -> tuple[pl.DataFrame, int]:
    """The batch's buy-again lists, one row per item (members with none have no row); the
    live members are those whose list took in a live purchase."""
    member_ids = batch.member_ids
    events = [batch.events.get(member_id, []) for member_id in member_ids]
    found = table.answer(recommender.member_indices(member_ids), n, events, as_of)
    taken = found.items >= 0
    rows, ranks = np.nonzero(taken)
    frame = pl.DataFrame(
        {
            "member_id": _member_column(member_ids, rows),
            "rank": (ranks + 1).astype(np.int32),
            "item_id": found.items[taken].astype(np.int32),
            "score": found.scores[taken],
            "due_date": _datetimes(found.due[taken]),
            "due_in_days": found.due_in_days()[taken],
            "last_purchase": _datetimes(found.last[taken]),
            "occasions": found.occasions[taken].astype(np.int32),
            "cycle_days": found.cycle_days[taken],
            "as_of": _datetimes(found.as_of[rows]),
            "reason": [text for row in found.reasons() for text in row],
        },
        schema=_indexed(_BUY_AGAIN_SCHEMA, "buy-again"),
    )
    return frame, int((found.live_purchases > 0).sum())


def _as_of_seconds(as_of: datetime | None, since: float) -> float | None:
    """``--as-of`` as epoch seconds (naive = UTC), refused before the data's end."""
    if as_of is None:
        return None
    moment = (as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=UTC)).timestamp()
    if moment < since:
        data_end = datetime.fromtimestamp(since, UTC).isoformat()
        raise ConfigError(
            f"--as-of {as_of.isoformat()}: before the data's end ({data_end}); due dates are "
            "judged from then on"
        )
    return moment


def _datetimes(epoch_seconds: np.ndarray) -> pl.Series:
    """Epoch seconds as naive-UTC datetimes (microseconds), as the data's own timestamps."""
    return pl.Series(np.round(epoch_seconds * 1e6).astype(np.int64)).cast(pl.Datetime("us"))


def _member_column(member_ids: list[str], rows: np.ndarray) -> pl.Series:
    """The member id of each answer row (``rows``: positions in the batch)."""
    return pl.Series(member_ids, dtype=pl.Utf8).gather(rows)


def _labels(labels: tuple[str, str], first: np.ndarray) -> pl.Series:
    """``labels[0]`` where ``first`` holds, else ``labels[1]``, one per row."""
    return pl.Series(labels, dtype=pl.Utf8).gather(np.where(first, 0, 1))


def _indices_or_null(items: np.ndarray) -> pl.Series:
    """Item indices, null where the index is -1 (no item)."""
    return pl.Series(items.astype(np.int32)).scatter(np.flatnonzero(items < 0), None)


def _indexed(schema: pl.Schema, kind: ExportKind) -> pl.Schema:
    """A kind's schema with its item columns as indices, as the rows are built and capped."""
    return pl.Schema({
        name: pl.Int32 if name in ITEM_COLUMNS[kind] else dtype for name, dtype in schema.items()
    })  # fmt: skip


_RECOMMENDATION_SCHEMA = pl.Schema({
    "member_id": pl.Utf8, "rank": pl.Int32, "item_id": pl.Utf8, "score": pl.Float32,
    "score_kind": pl.Utf8, "model": pl.Utf8, "fallback": pl.Boolean,
})  # fmt: skip
_BUY_AGAIN_SCHEMA = pl.Schema({
    "member_id": pl.Utf8, "rank": pl.Int32, "item_id": pl.Utf8, "score": pl.Float64,
    "due_date": pl.Datetime("us"), "due_in_days": pl.Float64, "last_purchase": pl.Datetime("us"),
    "occasions": pl.Int32, "cycle_days": pl.Float64, "as_of": pl.Datetime("us"), "reason": pl.Utf8,
})  # fmt: skip
_BUNDLE_SCHEMA = pl.Schema({
    "member_id": pl.Utf8, "rank": pl.Int32, "anchor_item_id": pl.Utf8,
    "complement_item_id": pl.Utf8, "score": pl.Float64, "source": pl.Utf8, "lift": pl.Float64,
    "confidence": pl.Float64, "support": pl.Float64, "third_item_id": pl.Utf8,
    "third_lift": pl.Float64, "total_price": pl.Float64,
    "model": pl.Utf8, "fallback": pl.Boolean,
})  # fmt: skip


class TableWriter:
    """Appends tables to one CSV (header once) or Parquet file (a row group per write); with
    nothing written, the file still holds the header (CSV) or the typed schema (Parquet).
    ``buffer_rows``: hold small tables until that many rows are waiting and write them as one
    (a campaign's reasons come a few rows per batch; a row group each would cost more than the
    rows)."""

    def __init__(self, path: Path, schema: pl.Schema, *, csv: bool, buffer_rows: int = 0) -> None:
        self._path = path
        self._schema = schema
        self._csv = csv
        self._buffer_rows = buffer_rows
        self._waiting: list[pl.DataFrame] = []
        self._waiting_rows = 0
        self._handle: BinaryIO | None = None
        self._parquet: pq.ParquetWriter | None = None

    def __enter__(self) -> TableWriter:
        self._path.parent.mkdir(parents=True, exist_ok=True)  # --out may name a new folder
        if self._csv:
            self._handle = self._path.open("wb")
        return self

    def write(self, table: pl.DataFrame) -> None:
        self._waiting.append(table)
        self._waiting_rows += table.height
        if self._waiting_rows >= self._buffer_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._waiting:
            return
        table = self._waiting[0] if len(self._waiting) == 1 else pl.concat(self._waiting)
        self._waiting, self._waiting_rows = [], 0
        if self._handle is not None:
            table.write_csv(self._handle, include_header=self._handle.tell() == 0)
            return
        arrow = table.to_arrow()
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._path, arrow.schema)
        self._parquet.write_table(arrow)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self._flush()
        if self._handle is not None:
            if self._handle.tell() == 0:
                pl.DataFrame(schema=self._schema).write_csv(self._handle)
            self._handle.close()
        elif self._parquet is not None:
            self._parquet.close()
        else:
            pl.DataFrame(schema=self._schema).write_parquet(self._path)
