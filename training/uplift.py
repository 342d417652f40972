"""Did the campaign change anything? Treatment against holdout over a conversion window.

A campaign's ledger (:class:`~training.campaigns.ledger.CampaignSend`) records every member of
the campaign set with their group: treated members were sent their items, holdout members were
recorded with the items they *would* have been sent and got nothing. Because the holdout is a
random share of the same set, any difference in what the two groups bought afterwards is the
campaign's effect, up to chance; the intervals (:mod:`training.uplift_intervals`) say how much
chance.

Per member, only purchases strictly after their own ``sent_at`` and at most ``window_days``
later count. The figures, per group and then as uplift (treatment minus holdout, and treatment
over holdout minus one):

* ``conversion``: share of members who bought anything;
* ``sent_item_conversion``: share who bought one of their sent (holdout: would-be) items;
* ``revenue_per_member``: mean of price x quantity bought per member (members who bought
  nothing count as 0), when the purchases carry a price;
* offer **redemption**: events carry no offer or coupon field (DESIGN section 3), so a treated
  member with an offer redeems it by buying one of the items sent with it in the window. Holdout
  members get no offer, so redemption is a treated-group rate, not an uplift.

The same comparison is repeated per lifecycle segment and per tier, from the member attributes
given (the artifact's member profiles).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from features import columns as col
from features.errors import ConfigError
from features.members import SEGMENT
from training.campaigns.ledger import CampaignSend
from training.uplift_intervals import (
    CONFIDENCE,
    Estimate,
    difference_of_means,
    difference_of_proportions,
    proportion,
    ratio_of_means,
    ratio_of_proportions,
)

__all__ = [
    "BREAKDOWNS",
    "DEFAULT_WINDOW_DAYS",
    "METRICS",
    "Comparison",
    "GroupOutcome",
    "UpliftReport",
    "UpliftSlice",
    "campaign_uplift",
    "with_epoch_timestamps",
]

DEFAULT_WINDOW_DAYS: Final = 14.0
#: The compared figures, in the report's order.
METRICS: Final = ("conversion", "sent_item_conversion", "revenue_per_member")
#: Member attributes the report breaks down by.
BREAKDOWNS: Final = (SEGMENT, col.TIER)
_TREATMENT: Final = "treatment"
_HOLDOUT: Final = "holdout"
_UNKNOWN_KEY: Final = "unknown"
_SECONDS_PER_DAY: Final = 86_400.0
_CONVERTED: Final = "_converted"
_SENT_ITEM: Final = "_sent_item"
_REVENUE: Final = "_revenue"


@dataclass(frozen=True)
class GroupOutcome:
    """What the members of one group did in their windows."""

    members: int
    converted: int
    sent_item_converted: int
    #: Sum of price x quantity; None when the purchases carry no price.
    revenue: float | None
    #: Members of the group who were given an offer, and who redeemed it.
    offers: int
    redeemed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "converted": self.converted,
            "conversion": proportion(self.converted, self.members).as_dict(),
            "sent_item_converted": self.sent_item_converted,
            "sent_item_conversion": proportion(self.sent_item_converted, self.members).as_dict(),
            "revenue": self.revenue,
            "revenue_per_member": (
                self.revenue / self.members if self.revenue is not None and self.members else None
            ),
            "offers": self.offers,
            "redeemed": self.redeemed,
            "redemption": proportion(self.redeemed, self.offers).as_dict(),
        }


@dataclass(frozen=True)
class Comparison:
    """One figure, treatment against holdout."""

    metric: str
    absolute: Estimate
    relative: Estimate

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "absolute": self.absolute.as_dict(),
            "relative": self.relative.as_dict(),
        }


@dataclass(frozen=True)
class UpliftSlice:
    """The comparison over one set of members: all of them, or one segment or tier."""

    key: str
    treatment: GroupOutcome
    holdout: GroupOutcome
    uplift: tuple[Comparison, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "treatment": self.treatment.as_dict(),
            "holdout": self.holdout.as_dict(),
            "uplift": [comparison.as_dict() for comparison in self.uplift],
        }


@dataclass(frozen=True)
class UpliftReport:
    campaign_id: str
    family: str
    window_days: float
    first_sent_at: float
    last_sent_at: float
    overall: UpliftSlice
    #: Breakdown name (segment, tier) -> one slice per value; empty without member attributes.
    breakdowns: Mapping[str, tuple[UpliftSlice, ...]]

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of the CLI's ``--json`` and of ``GET /v1/reports/campaigns/{id}``."""
        return {
            "campaign_id": self.campaign_id,
            "family": self.family,
            "window_days": self.window_days,
            "first_sent_at": self.first_sent_at,
            "last_sent_at": self.last_sent_at,
            "confidence": CONFIDENCE,
            "overall": self.overall.as_dict(),
            "breakdowns": {
                name: [part.as_dict() for part in parts] for name, parts in self.breakdowns.items()
            },
        }


def campaign_uplift(
    sends: Sequence[CampaignSend],
    purchases: pl.DataFrame,
    *,
    window_days: float = DEFAULT_WINDOW_DAYS,
    attributes: pl.DataFrame | None = None,
) -> UpliftReport:
    """Compare the treated members of one campaign with its holdout.

    ``purchases`` has member_id, item_id and timestamp (a datetime, naive = UTC, or epoch
    seconds), optionally event (only purchases count), price and quantity (revenue).
    ``attributes`` (member_id plus segment and/or tier) gives the breakdowns.
    """
    if not sends:
        raise ConfigError("the campaign has no sends in the ledger; nothing to report")
    campaigns = {send.campaign_id for send in sends}
    if len(campaigns) != 1:
        raise ConfigError(f"an uplift report covers one campaign, got {sorted(campaigns)}")
    if not window_days > 0:
        raise ConfigError(f"--window-days must be above 0, got {window_days!r}")
    members = _member_outcomes(_sends_frame(sends), purchases, window_days)
    if attributes is not None:
        members = members.join(_attribute_frame(attributes), on=col.MEMBER_ID, how="left")
    priced = col.PRICE in purchases.columns
    breakdowns = {
        name: tuple(
            _slice(str(key), part, priced=priced)
            for (key,), part in sorted(
                members.with_columns(pl.col(name).fill_null(_UNKNOWN_KEY))
                .partition_by(name, as_dict=True)
                .items()
            )
        )
        for name in BREAKDOWNS
        if name in members.columns
    }
    sent_times = [send.sent_at for send in sends]
    return UpliftReport(
        campaign_id=sends[0].campaign_id,
        family=sends[0].family,
        window_days=float(window_days),
        first_sent_at=min(sent_times),
        last_sent_at=max(sent_times),
        overall=_slice("all", members, priced=priced),
        breakdowns=breakdowns,
    )


def _sends_frame(sends: Iterable[CampaignSend]) -> pl.DataFrame:
    """One row per member: a member sent twice in the campaign counts once, from the first send,
    with every item they were sent."""
    frame = pl.DataFrame(
        [
            {
                col.MEMBER_ID: send.member_id,
                "group": send.group,
                "items": list(send.items),
                "offer_id": send.offer_id,
                "sent_at": send.sent_at,
            }
            for send in sends
        ],
        schema={
            col.MEMBER_ID: pl.String,
            "group": pl.String,
            "items": pl.List(pl.String),
            "offer_id": pl.String,
            "sent_at": pl.Float64,
        },
    )
    return (
        frame.sort("sent_at")
        .group_by(col.MEMBER_ID, maintain_order=True)
        .agg(
            pl.col("group").first(),
            pl.col("items").list.explode(keep_nulls=False, empty_as_null=False).unique(),
            pl.col("offer_id").drop_nulls().first(),
            pl.col("sent_at").first(),
        )
    )


def _purchases_in_windows(
    members: pl.DataFrame, purchases: pl.DataFrame, window_days: float
) -> pl.DataFrame:
    missing = {col.MEMBER_ID, col.ITEM_ID, col.TIMESTAMP} - set(purchases.columns)
    if missing:
        raise ConfigError(f"the purchases lack the columns {sorted(missing)}")
    bought = purchases
    if col.EVENT in bought.columns:
        bought = bought.filter(pl.col(col.EVENT) == col.PURCHASE)
    bought = with_epoch_timestamps(bought)
    price = pl.col(col.PRICE).fill_null(0.0) if col.PRICE in bought.columns else pl.lit(0.0)
    quantity = pl.col(col.QUANTITY).fill_null(1) if col.QUANTITY in bought.columns else pl.lit(1)
    bought = bought.select(
        pl.col(col.MEMBER_ID).cast(pl.String),
        pl.col(col.ITEM_ID).cast(pl.String),
        pl.col(col.TIMESTAMP).alias("_at"),
        (price * quantity).cast(pl.Float64).alias(_REVENUE),
    )
    window_s = window_days * _SECONDS_PER_DAY
    return bought.join(members.select(col.MEMBER_ID, "items", "sent_at"), on=col.MEMBER_ID).filter(
        (pl.col("_at") > pl.col("sent_at")) & (pl.col("_at") <= pl.col("sent_at") + window_s)
    )


def with_epoch_timestamps(purchases: pl.DataFrame) -> pl.DataFrame:
    """``purchases`` with the timestamp as UTC epoch seconds (a naive datetime is UTC), the
    unit of the ledger's ``sent_at``."""
    if purchases.schema[col.TIMESTAMP].is_temporal():
        seconds = pl.col(col.TIMESTAMP).dt.epoch("us").cast(pl.Float64) / 1e6
    else:
        seconds = pl.col(col.TIMESTAMP).cast(pl.Float64)
    return purchases.with_columns(seconds.alias(col.TIMESTAMP))


def _member_outcomes(
    members: pl.DataFrame, purchases: pl.DataFrame, window_days: float
) -> pl.DataFrame:
    """Per member of the campaign: group, offer, and whether (and for how much) they bought."""
    in_window = _purchases_in_windows(members, purchases, window_days)
    per_member = (
        in_window.with_columns(pl.col("items").list.contains(pl.col(col.ITEM_ID)).alias(_SENT_ITEM))
        .group_by(col.MEMBER_ID)
        .agg(pl.col(_SENT_ITEM).any(), pl.col(_REVENUE).sum())
    )
    return (
        members.join(per_member, on=col.MEMBER_ID, how="left")
        .with_columns(
            pl.col(_SENT_ITEM).is_not_null().alias(_CONVERTED),
            pl.col(_SENT_ITEM).fill_null(False),
            pl.col(_REVENUE).fill_null(0.0),
        )
        .select(col.MEMBER_ID, "group", "offer_id", _CONVERTED, _SENT_ITEM, _REVENUE)
    )


def _attribute_frame(attributes: pl.DataFrame) -> pl.DataFrame:
    if col.MEMBER_ID not in attributes.columns:
        raise ConfigError("the member attributes lack the column member_id")
    kept = [name for name in BREAKDOWNS if name in attributes.columns]
    return attributes.select(
        pl.col(col.MEMBER_ID).cast(pl.String), *(pl.col(name).cast(pl.String) for name in kept)
    ).unique(col.MEMBER_ID, keep="first")


def _outcome(group: pl.DataFrame, *, priced: bool) -> GroupOutcome:
    offered = group.filter(pl.col("offer_id").is_not_null())
    return GroupOutcome(
        members=group.height,
        converted=int(group.get_column(_CONVERTED).sum()),
        sent_item_converted=int(group.get_column(_SENT_ITEM).sum()),
        revenue=float(group.get_column(_REVENUE).sum()) if priced else None,
        offers=offered.height,
        redeemed=int(offered.get_column(_SENT_ITEM).sum()),
    )


def _slice(key: str, members: pl.DataFrame, *, priced: bool) -> UpliftSlice:
    treated = members.filter(pl.col("group") == _TREATMENT)
    held = members.filter(pl.col("group") == _HOLDOUT)
    first, second = _outcome(treated, priced=priced), _outcome(held, priced=priced)
    comparisons = [
        Comparison(
            "conversion",
            difference_of_proportions(
                first.converted, first.members, second.converted, second.members
            ),
            ratio_of_proportions(first.converted, first.members, second.converted, second.members),
        ),
        Comparison(
            "sent_item_conversion",
            difference_of_proportions(
                first.sent_item_converted, first.members, second.sent_item_converted, second.members
            ),
            ratio_of_proportions(
                first.sent_item_converted, first.members, second.sent_item_converted, second.members
            ),
        ),
    ]
    if priced:
        treated_revenue = treated.get_column(_REVENUE).to_numpy()
        held_revenue = held.get_column(_REVENUE).to_numpy()
        comparisons.append(
            Comparison(
                "revenue_per_member",
                difference_of_means(treated_revenue, held_revenue),
                ratio_of_means(treated_revenue, held_revenue),
            )
        )
    return UpliftSlice(key, first, second, tuple(comparisons))
