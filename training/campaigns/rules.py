"""A campaign's rules, applied batch by batch inside the export loop.

In the order the issue fixes: suppression first (an opted-out member is never answered), then
the holdout draw (:mod:`training.campaigns.holdout`), then the frequency caps, read from the
ledger for the batch's members only, so that memory holds one batch of sends:

* the member cap: a treatment member who was sent ``max_sends`` times (any family) in the last
  ``per_days`` days is left out whole;
* the item cap: an item sent to the member in this family in the last ``item_days`` days is
  dropped from their list, which is ranked that many rows deeper so that it still holds ``n``
  rows; a bundle holding such an item is dropped as a whole. A member left with nothing is
  capped.

Holdout members are answered like everyone else (item caps included), recorded in the ledger
with the items they would have been sent, and left out of the file. A member the export has
nothing for (a buy-again list with nothing due) is outside the campaign set, in either group,
so that the two groups stay comparable. Every member left out is a row of the reasons file
(item id null); so is every item a cap took out of a treatment member's top ``n``.

The ledger's reads and writes run beside the answering, each on a thread of its own: the next
batch's earlier sends are read while this batch is answered, and this batch's sends are written
while the next is (SQLite and PostgreSQL drivers let go of Python's lock while the database
works). Everything else is a table operation on item indices, which become ids only for the
rows that are written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
import polars as pl
import pyarrow as pa

from features import columns as col
from features.errors import ConfigError
from training.campaigns.holdout import in_holdout
from training.campaigns.ledger import CampaignLedger
from training.export import ITEM_COLUMNS, Admission, ExportKind, ItemNames, TableWriter

__all__ = ["EXCLUDED_SCHEMA", "REASONS", "CampaignOutcomes", "CampaignRules", "FrequencyCaps"]

#: Why a member or an item was left out of the file.
REASONS = ("suppressed", "holdout", "capped")
EXCLUDED_SCHEMA = pl.Schema({col.MEMBER_ID: pl.Utf8, col.ITEM_ID: pl.Utf8, "reason": pl.Utf8})
_DAY = 86_400.0
#: Batches of sends being written to the ledger while the next batches are answered: enough to
#: keep the writer busy, few enough that memory holds a bounded number of batches.
_WRITES_IN_FLIGHT = 2


@dataclass(frozen=True)
class FrequencyCaps:
    """``item_days``: no item again to a member within that many days in the family;
    ``max_sends`` per ``per_days``: at most that many sends to a member (every family)."""

    item_days: float | None = None
    max_sends: int | None = None
    per_days: float | None = None

    def __post_init__(self) -> None:
        if (self.max_sends is None) != (self.per_days is None):
            raise ConfigError("--max-sends and --per-days go together: give both or neither")
        if self.item_days is not None and self.item_days <= 0:
            raise ConfigError(f"--item-cap-days {self.item_days}: must be more than 0")
        if self.per_days is not None and self.per_days <= 0:
            raise ConfigError(f"--per-days {self.per_days}: must be more than 0")
        if self.max_sends is not None and self.max_sends < 1:
            raise ConfigError(f"--max-sends {self.max_sends}: must be at least 1")


@dataclass
class CampaignOutcomes:
    """Members by outcome (they add up to the campaign set) and items the caps took out."""

    sent: int = 0
    holdout: int = 0
    suppressed: int = 0
    capped: int = 0
    #: Answered members the export had nothing for: outside the campaign set.
    no_items: int = 0
    items_capped: int = 0
    #: Sent members with an offer (``--offers``).
    offered: int = 0

    @property
    def campaign_set(self) -> int:
        return self.sent + self.holdout + self.suppressed + self.capped


@dataclass
class CampaignRules:
    """:class:`training.export.BatchRules` of one campaign export: decides each batch's
    members, records their sends in ``ledger`` and their reasons in ``excluded``. A context
    manager: leaving it waits for every ledger write, and raises the first that failed."""

    campaign_id: str
    family: str
    kind: ExportKind
    n: int
    holdout_share: float
    seed: int
    caps: FrequencyCaps
    suppressed: Collection[str]
    ledger: CampaignLedger
    excluded: TableWriter
    sent_at: float
    names: ItemNames
    #: ``member_id``, ``offer_id``, ``offer_reason`` of the would-be treatment members (None:
    #: no offers): joined to the rows written and to the treatment sends.
    offers: pl.DataFrame | None = None
    outcomes: CampaignOutcomes = field(default_factory=CampaignOutcomes)
    _suppressed: pl.Series = field(init=False)
    _holdout: pl.Series = field(init=False)
    _capped_items: pl.DataFrame = field(init=False)
    _admitted: int = 0
    _writer: ThreadPoolExecutor | None = None
    _writes: deque[Future[None]] = field(default_factory=deque)
    _latest_sent_at: float | None = None

    def __post_init__(self) -> None:
        self._suppressed = pl.Series(list(self.suppressed), dtype=pl.Utf8)
        self._holdout = pl.Series(dtype=pl.Utf8)
        self._capped_items = _pairs_frame()

    def __enter__(self) -> CampaignRules:
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="campaign-ledger-write")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: TracebackType | None
    ) -> None:
        """Wait for the writes in flight; if the export went well, raise the first that failed
        (the caller then discards the campaign's sends)."""
        assert self._writer is not None
        wait(self._writes)
        self._writer.shutdown()
        if error is None:
            while self._writes:
                self._writes.popleft().result()

    def admit(self, batches: Iterable[list[str]]) -> Iterator[Admission]:
        """Suppression, holdout and the member cap for each batch, with the depth the item
        cap needs (the most items it takes from one member); the next batch's earlier sends
        are read while this one is answered."""
        self._latest_sent_at = self.ledger.latest_sent_at()
        with ThreadPoolExecutor(1, thread_name_prefix="campaign-ledger-read") as reader:
            pending = iter(batches)
            ids = next(pending, None)
            ahead = reader.submit(self._recent_caps, ids) if ids is not None else None
            while ids is not None and ahead is not None:
                following = next(pending, None)
                capped_members, capped_items = ahead.result()
                if following is not None:
                    ahead = reader.submit(self._recent_caps, following)
                yield self._admission(ids, capped_members, capped_items)
                ids = following

    def _admission(
        self, member_ids: list[str], capped_members: pl.Series, capped_items: pl.DataFrame
    ) -> Admission:
        ids = pl.Series(col.MEMBER_ID, member_ids, dtype=pl.Utf8)
        suppressed = ids.is_in(self._suppressed.implode()).to_numpy()
        holdout = in_holdout(self.family, ids, self.holdout_share, self.seed) & ~suppressed
        capped = ids.is_in(capped_members.implode()).to_numpy() & ~holdout & ~suppressed
        admitted = ~suppressed & ~capped
        self._write(ids.filter(suppressed), "suppressed")
        self._write(ids.filter(capped), "capped")
        self.outcomes.suppressed += int(suppressed.sum())
        self.outcomes.capped += int(capped.sum())
        self._holdout = ids.filter(holdout)
        self._admitted = int(admitted.sum())
        self._capped_items = capped_items
        widest = capped_items.group_by(col.MEMBER_ID).len().get_column("len").max()
        return member_ids, admitted, int(widest or 0)  # type: ignore[arg-type]

    def keep(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Drop capped items, keep ``n`` rows per member (ranks renumbered), record the sends
        and reasons, and return the treatment members' rows, item ids named.

        The answers hold each member's rows together, best first, so that per-member work is
        arithmetic on runs of rows (NumPy), not a group-by per batch."""
        columns = ITEM_COLUMNS[self.kind]
        member_column = frame.get_column(col.MEMBER_ID)
        run = member_column.rle_id().to_numpy()
        firsts = np.flatnonzero(np.diff(run, prepend=-1))
        members = member_column.gather(firsts)
        held = members.is_in(self._holdout.implode()).to_numpy()
        capped = self._capped_rows(frame, columns, run, members)
        kept_rows = frame
        if capped.any():
            # A row's rank among its member's rows that the cap leaves.
            left = np.cumsum(~capped)
            order = left - (left[firsts] - (~capped[firsts]))[run]
            keep = ~capped & (order <= self.n)
            self._write_capped_items(frame.filter(capped & ~held[run]), columns)
            kept_rows = frame.with_columns(rank=pl.Series(order, dtype=pl.Int32)).filter(keep)
            kept = np.bincount(run, weights=keep, minlength=len(firsts)).astype(np.int64)
        else:
            kept = np.diff(np.append(firsts, frame.height))
        emptied = ~held & (kept == 0)
        self._write(members.filter(emptied), "capped")
        self._write(members.filter(held), "holdout")
        self.outcomes.no_items += self._admitted - len(members)
        self.outcomes.capped += int(emptied.sum())
        self.outcomes.holdout += int(held.sum())
        self.outcomes.sent += int((~held & ~emptied).sum())
        named = self.names.named(kept_rows, columns)
        kept_run = np.repeat(np.arange(len(firsts)), kept)
        recorded = held | (kept > 0)
        sends = pl.DataFrame({
            col.MEMBER_ID: members.filter(recorded),
            "_holdout": held[recorded],
            "items": _item_lists(named, columns, kept_run, len(firsts)).filter(recorded),
        })  # fmt: skip
        sent = named.filter(~held[kept_run])
        offer = reason = pl.lit(None, dtype=pl.Utf8)
        if self.offers is not None:
            sent = sent.join(self.offers, on=col.MEMBER_ID, how="left", maintain_order="left")
            sends = sends.join(self.offers, on=col.MEMBER_ID, how="left", maintain_order="left")
            offer = pl.when(pl.col("_holdout")).then(None).otherwise(pl.col("offer_id"))
            reason = pl.when(pl.col("_holdout")).then(None).otherwise(pl.col("offer_reason"))
            self.outcomes.offered += sends.filter(
                ~pl.col("_holdout") & pl.col("offer_id").is_not_null()
            ).height
        self._record(
            sends.select(
                pl.lit(self.campaign_id).alias("campaign_id"),
                pl.lit(self.family).alias("family"),
                pl.col(col.MEMBER_ID),
                pl.when(pl.col("_holdout")).then(pl.lit("holdout")).otherwise(pl.lit("treatment"))
                .alias("group"),
                pl.col("items"),
                offer.alias("offer_id"),
                pl.lit(self.sent_at, dtype=pl.Float64).alias("sent_at"),
                reason.alias("offer_reason"),
            )
        )  # fmt: skip
        return sent

    def _record(self, sends: pl.DataFrame) -> None:
        """Hand ``sends`` to the writer thread, first waiting while too many are in flight (a
        write that failed raises here, and the export stops)."""
        assert self._writer is not None, "use CampaignRules as a context manager"
        while len(self._writes) >= _WRITES_IN_FLIGHT:
            self._writes.popleft().result()
        self._writes.append(self._writer.submit(self.ledger.record_frame, sends))

    def _recent_caps(self, member_ids: list[str]) -> tuple[pl.Series, pl.DataFrame]:
        """From the members' earlier sends (read on the reader thread): the members the member
        cap stops, and the (member, item index) pairs the item cap takes out (items the model
        artifact no longer holds cannot be answered: dropped)."""
        capped_members, capped_items = pl.Series(dtype=pl.Utf8), _pairs_frame()
        if self.caps.max_sends is not None and self.caps.per_days is not None:
            since = self.sent_at - self.caps.per_days * _DAY
            if self._sent_since(since):
                capped_members = pl.Series(
                    self.ledger.frequent_members(
                        member_ids=member_ids, since=since, at_least=self.caps.max_sends
                    ),
                    dtype=pl.Utf8,
                )
        if self.caps.item_days is not None:
            since = self.sent_at - self.caps.item_days * _DAY
            if self._sent_since(since):
                sent = self.ledger.sent_items(
                    member_ids=member_ids, family=self.family, since=since
                )
                pairs = sent.select(col.MEMBER_ID, pl.col("items").alias(col.ITEM_ID))
                pairs = pairs.explode(col.ITEM_ID)
                capped_items = self.names.indexed(pairs.drop_nulls(), col.ITEM_ID).unique()
        return capped_members, capped_items

    def _sent_since(self, since: float) -> bool:
        """Whether any campaign was sent at or after ``since`` (the newest campaign's time is
        asked once per export: a family's first export reads nothing batch by batch)."""
        return self._latest_sent_at is not None and self._latest_sent_at >= since

    def _capped_rows(
        self, frame: pl.DataFrame, columns: tuple[str, ...], run: np.ndarray, members: pl.Series
    ) -> np.ndarray:
        """Whether each row holds an item the item cap takes from its member (``run``: each
        row's member, an index into ``members``), matched as one integer per (member, item)."""
        if not self._capped_items.height:
            return np.zeros(frame.height, dtype=bool)
        width = np.int64(len(self.names.names))
        pairs = self._capped_items.join(
            pl.DataFrame({col.MEMBER_ID: members, "_run": np.arange(len(members))}),
            on=col.MEMBER_ID,
        )
        capped_keys = pl.Series(
            pairs.get_column("_run").to_numpy() * width + pairs.get_column(col.ITEM_ID).to_numpy()
        )
        capped = np.zeros(frame.height, dtype=bool)
        for name in columns:
            keys = pl.Series(run * width) + frame.get_column(name).cast(pl.Int64)  # null: none
            capped |= keys.is_in(capped_keys.implode()).fill_null(False).to_numpy()
        return capped

    def _write_capped_items(self, capped: pl.DataFrame, columns: tuple[str, ...]) -> None:
        """The capped items of each treatment member's would-be top ``n`` (``capped``: the
        treatment members' capped rows; a list's capped row is one capped item, a bundle's
        names the capped ones among its two or three)."""
        top = capped.filter(pl.col("rank") <= self.n)
        if len(columns) == 1:
            pairs = top.select(col.MEMBER_ID, pl.col(columns[0]).alias(col.ITEM_ID))
        else:
            pairs = (
                top.select(col.MEMBER_ID, pl.concat_list(columns).alias(col.ITEM_ID))
                .explode(col.ITEM_ID)
                .join(self._capped_items, on=[col.MEMBER_ID, col.ITEM_ID], how="semi")
                .unique(maintain_order=True)
            )
        self.outcomes.items_capped += pairs.height
        self.excluded.write(
            self.names.named(pairs, [col.ITEM_ID]).with_columns(pl.lit("capped").alias("reason"))
        )

    def _write(self, member_ids: pl.Series, reason: str) -> None:
        if len(member_ids):
            self.excluded.write(
                pl.DataFrame(
                    {col.MEMBER_ID: member_ids, col.ITEM_ID: None, "reason": reason},
                    schema=EXCLUDED_SCHEMA,
                )
            )


def _pairs_frame() -> pl.DataFrame:
    return pl.DataFrame(schema={col.MEMBER_ID: pl.Utf8, col.ITEM_ID: pl.Int32})


def _item_lists(
    named: pl.DataFrame, columns: tuple[str, ...], run: np.ndarray, members: int
) -> pl.Series:
    """Each member's sent items in rank order, a list per member (``run``: the member of each
    row of ``named``): a list's items are distinct already; a bundle's anchor, complement and
    third count once each."""
    if len(columns) == 1:
        items, owners = named.get_column(columns[0]), run
    else:
        long = (
            named.select(pl.Series("_run", run), pl.concat_list(columns).alias("_item"))
            .explode("_item")
            .drop_nulls()
            .unique(maintain_order=True)
        )
        items, owners = long.get_column("_item"), long.get_column("_run").to_numpy()
    offsets = np.zeros(members + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners, minlength=members), out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), items.to_arrow())
    return pl.Series("items", pl.from_arrow(lists), dtype=pl.List(pl.Utf8))
