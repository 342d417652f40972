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
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from features import columns as col
from features.errors import ConfigError
from training.campaigns.holdout import in_holdout
from training.campaigns.ledger import CampaignLedger
from training.export import ExportKind, TableWriter

__all__ = ["EXCLUDED_SCHEMA", "REASONS", "CampaignOutcomes", "CampaignRules", "FrequencyCaps"]

#: Why a member or an item was left out of the file.
REASONS = ("suppressed", "holdout", "capped")
EXCLUDED_SCHEMA = pl.Schema({col.MEMBER_ID: pl.Utf8, col.ITEM_ID: pl.Utf8, "reason": pl.Utf8})
#: The columns of each kind's rows that name an item the caps look at.
ITEM_COLUMNS: dict[str, tuple[str, ...]] = {
    "recommendations": (col.ITEM_ID,),
    "buy-again": (col.ITEM_ID,),
    "bundles": ("anchor_item_id", "complement_item_id", "third_item_id"),
}
_DAY = 86_400.0


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

    @property
    def lookback_days(self) -> float | None:
        """How far back the ledger is read (None: caps off, nothing read)."""
        days = [value for value in (self.item_days, self.per_days) if value is not None]
        return max(days) if days else None


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
    members, records their sends in ``ledger`` and their reasons in ``excluded``. Everything
    per batch is a table operation: an export decides for a million members."""

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
    #: ``member_id``, ``offer_id``, ``offer_reason`` of the would-be treatment members (None:
    #: no offers): joined to the rows written and to the treatment sends.
    offers: pl.DataFrame | None = None
    outcomes: CampaignOutcomes = field(default_factory=CampaignOutcomes)
    _suppressed: pl.Series = field(init=False)
    _holdout: pl.Series = field(init=False)
    _capped_items: pl.DataFrame = field(init=False)
    _admitted: int = 0

    def __post_init__(self) -> None:
        self._suppressed = pl.Series(list(self.suppressed), dtype=pl.Utf8)
        self._holdout = pl.Series(dtype=pl.Utf8)
        self._capped_items = _pairs_frame()

    def admit(self, member_ids: list[str]) -> tuple[np.ndarray, int]:
        """Suppression, holdout and the member cap for the batch; the depth the item cap
        needs (the most items it takes from one admitted member)."""
        ids = pl.Series(col.MEMBER_ID, member_ids, dtype=pl.Utf8)
        suppressed = ids.is_in(self._suppressed.implode()).to_numpy()
        holdout = in_holdout(self.family, member_ids, self.holdout_share, self.seed) & ~suppressed
        recent = self._recent_sends(member_ids)
        capped = ids.is_in(self._member_capped(recent).implode()).to_numpy() & ~holdout
        capped &= ~suppressed
        admitted = ~suppressed & ~capped
        self._write(ids.filter(suppressed), "suppressed")
        self._write(ids.filter(capped), "capped")
        self.outcomes.suppressed += int(suppressed.sum())
        self.outcomes.capped += int(capped.sum())
        self._holdout = ids.filter(holdout)
        self._admitted = int(admitted.sum())
        self._capped_items = self._item_capped(recent)
        widest = self._capped_items.group_by(col.MEMBER_ID).len().get_column("len").max()
        return admitted, int(widest or 0)  # type: ignore[arg-type]

    def keep(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Drop capped items, keep ``n`` rows per member (ranks renumbered), record the sends
        and reasons, and return the treatment members' rows."""
        columns = ITEM_COLUMNS[self.kind]
        marked = frame.with_columns(
            self._capped_rows(frame, columns).alias("_capped"),
            pl.col(col.MEMBER_ID).is_in(self._holdout.implode()).alias("_holdout"),
        )
        if self._capped_items.height:
            # A row's rank among its member's rows that the cap leaves.
            order = (~pl.col("_capped")).cast(pl.Int32).cum_sum().over(col.MEMBER_ID)
            marked = marked.with_columns(
                (~pl.col("_capped") & (order <= self.n)).alias("_keep"), order.alias("_order")
            )
            self._write_capped_items(marked, columns)
            kept = marked.filter("_keep").with_columns(pl.col("_order").alias("rank"))
        else:
            marked = marked.with_columns(
                pl.lit(True).alias("_keep"), pl.col("rank").alias("_order")
            )
            kept = marked
        sends = marked.group_by(col.MEMBER_ID, maintain_order=True).agg(
            pl.col("_holdout").first(), _items(columns).alias("items")
        )
        emptied = sends.filter(~pl.col("_holdout") & (pl.col("items").list.len() == 0))
        held = sends.filter(pl.col("_holdout"))
        self._write(emptied.get_column(col.MEMBER_ID), "capped")
        self._write(held.get_column(col.MEMBER_ID), "holdout")
        self.outcomes.no_items += self._admitted - sends.height
        self.outcomes.capped += emptied.height
        self.outcomes.holdout += held.height
        self.outcomes.sent += sends.height - held.height - emptied.height
        sends = sends.filter(pl.col("_holdout") | (pl.col("items").list.len() > 0))
        sent = kept.filter(~pl.col("_holdout")).drop("_capped", "_holdout", "_keep", "_order")
        offer = pl.lit(None, dtype=pl.Utf8)
        if self.offers is not None:
            sent = sent.join(self.offers, on=col.MEMBER_ID, how="left", maintain_order="left")
            sends = sends.join(
                self.offers.select(col.MEMBER_ID, "offer_id"), on=col.MEMBER_ID, how="left",
                maintain_order="left",
            )  # fmt: skip
            offer = pl.when(pl.col("_holdout")).then(None).otherwise(pl.col("offer_id"))
            self.outcomes.offered += sends.filter(
                ~pl.col("_holdout") & pl.col("offer_id").is_not_null()
            ).height
        self.ledger.record_frame(
            sends.select(
                pl.lit(self.campaign_id).alias("campaign_id"),
                pl.lit(self.family).alias("family"),
                pl.col(col.MEMBER_ID),
                pl.when(pl.col("_holdout")).then(pl.lit("holdout")).otherwise(pl.lit("treatment"))
                .alias("group"),
                pl.col("items"),
                offer.alias("offer_id"),
                pl.lit(self.sent_at, dtype=pl.Float64).alias("sent_at"),
            )
        )  # fmt: skip
        return sent

    def _recent_sends(self, member_ids: list[str]) -> pl.DataFrame | None:
        days = self.caps.lookback_days
        if days is None:
            return None
        return self.ledger.send_frame(member_ids=member_ids, since=self.sent_at - days * _DAY)

    def _member_capped(self, recent: pl.DataFrame | None) -> pl.Series:
        """Members sent ``max_sends`` times or more (treatment, any family) in ``per_days``."""
        if recent is None or self.caps.max_sends is None or self.caps.per_days is None:
            return pl.Series(dtype=pl.Utf8)
        since = self.sent_at - self.caps.per_days * _DAY
        return (
            recent.filter((pl.col("group") == "treatment") & (pl.col("sent_at") >= since))
            .group_by(col.MEMBER_ID)
            .len()
            .filter(pl.col("len") >= self.caps.max_sends)
            .get_column(col.MEMBER_ID)
        )

    def _item_capped(self, recent: pl.DataFrame | None) -> pl.DataFrame:
        """(member, item) pairs sent to a treatment member in this family within
        ``item_days``."""
        if recent is None or self.caps.item_days is None:
            return _pairs_frame()
        since = self.sent_at - self.caps.item_days * _DAY
        return (
            recent.filter(
                (pl.col("family") == self.family)
                & (pl.col("group") == "treatment")
                & (pl.col("sent_at") >= since)
            )
            .select(col.MEMBER_ID, pl.col("items").alias(col.ITEM_ID))
            .explode(col.ITEM_ID)
            .drop_nulls()
            .unique()
        )

    def _capped_rows(self, frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.Series:
        """Whether each row holds an item the item cap takes from its member."""
        if not self._capped_items.height:
            return pl.Series(np.zeros(frame.height, dtype=bool))
        rows = frame.select(col.MEMBER_ID, *columns).with_row_index("_row")
        hit = [
            rows.join(
                self._capped_items, left_on=[col.MEMBER_ID, name],
                right_on=[col.MEMBER_ID, col.ITEM_ID], how="semi",
            ).get_column("_row")
            for name in columns
        ]  # fmt: skip
        return rows.get_column("_row").is_in(pl.concat(hit).implode())

    def _write_capped_items(self, marked: pl.DataFrame, columns: tuple[str, ...]) -> None:
        """The capped items of each treatment member's would-be top ``n``."""
        would_be = marked.filter(
            pl.col("_capped") & ~pl.col("_holdout") & (pl.col("rank") <= self.n)
        )
        pairs = (
            would_be.select(col.MEMBER_ID, pl.concat_list(columns).alias(col.ITEM_ID))
            .explode(col.ITEM_ID)
            .join(self._capped_items, on=[col.MEMBER_ID, col.ITEM_ID], how="semi")
            .unique(maintain_order=True)
        )
        self.outcomes.items_capped += pairs.height
        self.excluded.write(pairs.with_columns(pl.lit("capped").alias("reason")))

    def _write(self, member_ids: pl.Series, reason: str) -> None:
        if len(member_ids):
            self.excluded.write(
                pl.DataFrame(
                    {col.MEMBER_ID: member_ids, col.ITEM_ID: None, "reason": reason},
                    schema=EXCLUDED_SCHEMA,
                )
            )


def _pairs_frame() -> pl.DataFrame:
    return pl.DataFrame(schema={col.MEMBER_ID: pl.Utf8, col.ITEM_ID: pl.Utf8})


def _items(columns: tuple[str, ...]) -> pl.Expr:
    """A member's items that are kept, in rank order: a list's items (distinct already), or
    a bundle's anchor, complement and third, each once."""
    if len(columns) == 1:
        return pl.col(columns[0]).filter(pl.col("_keep"))
    return (
        pl.concat_list(columns).filter(pl.col("_keep")).explode().drop_nulls()
        .unique(maintain_order=True)
    )  # fmt: skip
