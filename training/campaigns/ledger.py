"""The campaign ledger: what each campaign export sent, to whom, and who was held out.

Frequency caps read it (what a member was sent lately) and the uplift report reads it (who was
treated, who was held back, and from when to count their purchases). The ledger lives in the
event store (:class:`serving.event_store.EventStore` implements :class:`CampaignLedger`), so
that every machine that exports or reports on campaigns sees the same sends; this module only
states the contract, because training must not import serving.

A holdout member is recorded too, with the items they would have been sent: the report compares
what each group bought of "their" items, and a holdout member's would-be items are theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import polars as pl

__all__ = [
    "GROUPS",
    "ITEM_SEPARATOR",
    "SEND_SCHEMA",
    "CampaignGroup",
    "CampaignLedger",
    "CampaignSend",
]

CampaignGroup = Literal["treatment", "holdout"]
#: The groups a send belongs to: sent the items, or held back as the control group.
GROUPS: tuple[CampaignGroup, ...] = ("treatment", "holdout")
#: Joins a send's item ids where a store keeps them in one column: the ASCII unit separator,
#: which no item id may hold (the campaign export checks the artifact's), and which splits for
#: nothing, where JSON per row would cost seconds on a million sends.
ITEM_SEPARATOR = "\x1f"


@dataclass(frozen=True, slots=True)
class CampaignSend:
    """One member's row of one campaign export (``sent_at``: UTC epoch seconds)."""

    campaign_id: str
    family: str
    member_id: str
    group: CampaignGroup
    items: tuple[str, ...]
    offer_id: str | None
    sent_at: float
    #: Why the offer was chosen, or why none was (the export's ``offer_reason``).
    offer_reason: str | None = None


#: Sends as a table (:meth:`CampaignLedger.record_frame`):
#: an export records and reads a million at a time, which as objects costs seconds.
SEND_SCHEMA = pl.Schema({
    "campaign_id": pl.Utf8, "family": pl.Utf8, "member_id": pl.Utf8, "group": pl.Utf8,
    "items": pl.List(pl.Utf8), "offer_id": pl.Utf8, "sent_at": pl.Float64,
    "offer_reason": pl.Utf8,
})  # fmt: skip


class CampaignLedger(Protocol):
    """Where sends are recorded and read back (the event store, SQLite or PostgreSQL)."""

    def record(self, sends: Sequence[CampaignSend]) -> None:
        """Store ``sends`` in one committed transaction."""

    def record_frame(self, sends: pl.DataFrame) -> None:
        """Store sends given as a :data:`SEND_SCHEMA` table in one committed transaction."""

    def latest_sent_at(self) -> float | None:
        """When the newest campaign was sent (None: none yet): caps with nothing that recent
        read nothing more."""

    def frequent_members(
        self, *, member_ids: Sequence[str], since: float, at_least: int
    ) -> list[str]:
        """The members of ``member_ids`` with ``at_least`` treatment sends (any family) at or
        after ``since``: the member cap of an export, batch by batch."""

    def sent_items(self, *, member_ids: Sequence[str], family: str, since: float) -> pl.DataFrame:
        """``member_id`` and ``items`` (a list) of each treatment send of ``family`` to
        ``member_ids`` at or after ``since``: the item cap of an export, batch by batch."""

    def sends(
        self,
        *,
        campaign_id: str | None = None,
        family: str | None = None,
        member_ids: Sequence[str] | None = None,
        since: float | None = None,
    ) -> list[CampaignSend]:
        """The sends that match every filter given (``since``: sent at or after), oldest first."""

    def campaigns(self) -> list[dict[str, Any]]:
        """One row per campaign id: ``campaign_id``, ``family``, ``created_at`` (epoch s) and
        ``counts`` (sends per group), oldest first."""

    def discard(self, campaign_id: str) -> int:
        """Delete every send of ``campaign_id`` (an export that failed after recording some);
        returns how many were deleted."""
