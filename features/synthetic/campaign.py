"""A campaign with a known effect: simulated sends and the purchases they cause, by seed.

An uplift report can only be checked against a truth, and real campaigns never reveal theirs.
So the generator plants one: within the conversion window after a send, a holdout member buys
one of their (would-be) sent items with probability :attr:`CampaignEffect.base_rate` (what
would have happened anyway) and a treated member with :attr:`CampaignEffect.treated_rate`.
Every member also buys one item that was *not* sent with :attr:`CampaignEffect.other_rate`,
the same in both groups, so that "any purchase" conversion carries the effect diluted by
background buying, as in a real store. Both truths are exact (:meth:`CampaignEffect.truth`).

The planted purchases follow the interactions schema (``INTERACTIONS_SCHEMA``), so they can be
appended to a generated store's events; every draw comes from the campaign's own random stream,
which leaves the store's draws as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import polars as pl

from features import columns as col
from features.errors import ConfigError
from features.synthetic.sampling import STREAM_CAMPAIGN, random_stream

__all__ = [
    "GROUP",
    "HOLDOUT",
    "ITEMS",
    "SENT_AT",
    "TREATMENT",
    "CampaignEffect",
    "PlantedUplift",
    "campaign_reactions",
    "plant_campaign_effect",
    "simulate_sends",
]

#: Columns of a sends frame (one row per member of the campaign).
GROUP: Final = "group"
ITEMS: Final = "items"
SENT_AT: Final = "sent_at"
TREATMENT: Final = "treatment"
HOLDOUT: Final = "holdout"

_SECONDS_PER_DAY: Final = 86_400.0
_US_PER_SECOND: Final = 1_000_000
#: Chunks of the campaign stream: which members are held out and what they are sent, then the
#: planted purchases; apart so that a new effect on the same sends draws the same sends.
_CHUNK_SENDS: Final = 0
_CHUNK_PURCHASES: Final = 1


@dataclass(frozen=True)
class PlantedUplift:
    """The true effect of a campaign on one conversion: treated rate minus holdout rate, and the
    treated rate over the holdout rate minus one."""

    treatment_rate: float
    holdout_rate: float

    @property
    def absolute(self) -> float:
        return self.treatment_rate - self.holdout_rate

    @property
    def relative(self) -> float:
        return self.treatment_rate / self.holdout_rate - 1.0


@dataclass(frozen=True)
class CampaignEffect:
    """How a simulated campaign changes buying in the window after each send."""

    #: Chance that a holdout member buys one of their would-be sent items in the window.
    base_rate: float = 0.05
    #: Chance that a treated member buys one of their sent items in the window.
    treated_rate: float = 0.08
    #: Chance that any member buys one item that was not sent to them in the window.
    other_rate: float = 0.10
    window_days: float = 14.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("base_rate", "treated_rate", "other_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"campaign effect: {name} must be in [0, 1], got {value!r}")
        if self.base_rate <= 0.0:
            raise ConfigError("campaign effect: base_rate must be above 0 (relative uplift)")
        if self.window_days <= 0:
            raise ConfigError(
                f"campaign effect: window_days must be above 0, got {self.window_days!r}"
            )

    def truth(self, conversion: Literal["sent_item", "any_purchase"]) -> PlantedUplift:
        """The planted rates of a conversion: buying a sent item, or buying anything (a member
        who buys nothing sent may still buy something else)."""
        if conversion == "sent_item":
            return PlantedUplift(self.treated_rate, self.base_rate)
        return PlantedUplift(
            1.0 - (1.0 - self.treated_rate) * (1.0 - self.other_rate),
            1.0 - (1.0 - self.base_rate) * (1.0 - self.other_rate),
        )


def simulate_sends(
    member_ids: Sequence[str],
    item_ids: Sequence[str],
    *,
    sent_at: float,
    holdout_share: float = 0.5,
    items_per_member: int = 3,
    seed: int = 0,
) -> pl.DataFrame:
    """A campaign over ``member_ids``: a seeded random holdout and distinct random items of
    ``item_ids`` per member, all sent at ``sent_at`` (UTC epoch seconds). Columns member_id,
    group (treatment | holdout), items (list of item ids), sent_at."""
    if not 0.0 < holdout_share < 1.0:
        raise ConfigError(f"holdout_share must be in (0, 1), got {holdout_share!r}")
    if not 1 <= items_per_member < len(item_ids):
        raise ConfigError(
            f"items_per_member must be in [1, {len(item_ids)}) (fewer than the items, so that "
            f"something unsent is left to buy), got {items_per_member!r}"
        )
    rng = random_stream(seed, STREAM_CAMPAIGN, _CHUNK_SENDS)
    held_out = rng.random(len(member_ids)) < holdout_share
    # Distinct items per member: the first columns of a random ordering of the catalog.
    order = np.argsort(rng.random((len(member_ids), len(item_ids))), axis=1)
    chosen = np.asarray(item_ids, dtype=object)[order[:, :items_per_member]]
    return pl.DataFrame(
        {
            col.MEMBER_ID: list(member_ids),
            GROUP: np.where(held_out, HOLDOUT, TREATMENT).tolist(),
            ITEMS: chosen.tolist(),
            SENT_AT: np.full(len(member_ids), float(sent_at)),
        },
        schema={
            col.MEMBER_ID: pl.String,
            GROUP: pl.String,
            ITEMS: pl.List(pl.String),
            SENT_AT: pl.Float64,
        },
    )


def campaign_reactions(
    sends: pl.DataFrame, item_ids: Sequence[str], effect: CampaignEffect
) -> pl.DataFrame:
    """The purchases ``effect`` causes after ``sends`` (columns as :func:`simulate_sends`
    writes; an unsent item is drawn from ``item_ids``): member_id, item_id and timestamp (UTC
    epoch seconds, a uniform instant of the window after the member's send), one per purchase.
    What :func:`plant_campaign_effect` prices into orders and ``recsys simulate --campaign``
    posts to a server."""
    missing = {col.MEMBER_ID, GROUP, ITEMS, SENT_AT} - set(sends.columns)
    if missing:
        raise ConfigError(f"campaign sends lack the columns {sorted(missing)}")
    rng = random_stream(effect.seed, STREAM_CAMPAIGN, _CHUNK_PURCHASES)
    catalog = np.asarray(item_ids, dtype=object)
    treated = sends.get_column(GROUP).to_numpy() == TREATMENT
    rates = np.where(treated, effect.treated_rate, effect.base_rate)
    sent_lists = sends.get_column(ITEMS).to_list()
    if any(not sent for sent in sent_lists):
        raise ConfigError("campaign sends: every member needs at least one (would-be) sent item")
    buys_sent = rng.random(sends.height) < rates
    sent_pick = [lst[int(rng.integers(len(lst)))] for lst in sent_lists]
    buys_other = rng.random(sends.height) < effect.other_rate
    member_ids = sends.get_column(col.MEMBER_ID).to_list()
    sent_at = sends.get_column(SENT_AT).to_numpy()
    rows: list[tuple[str, str, float]] = []
    for index in np.flatnonzero(buys_sent):
        rows.append((member_ids[index], sent_pick[index], sent_at[index]))
    for index in np.flatnonzero(buys_other):
        unsent = _unsent_item(catalog, set(sent_lists[index]), rng)
        rows.append((member_ids[index], unsent, sent_at[index]))
    window_s = effect.window_days * _SECONDS_PER_DAY
    # Strictly inside the window (never at the send itself, never past its end).
    offsets = (1.0 + rng.random(len(rows)) * (window_s - 2.0)).astype(np.int64)
    return pl.DataFrame(
        {
            col.MEMBER_ID: [member for member, _, _ in rows],
            col.ITEM_ID: [item for _, item, _ in rows],
            col.TIMESTAMP: [
                float(int(start) + int(offset))
                for (_, _, start), offset in zip(rows, offsets, strict=True)
            ],
        },
        schema={col.MEMBER_ID: pl.String, col.ITEM_ID: pl.String, col.TIMESTAMP: pl.Float64},
    )


def plant_campaign_effect(
    sends: pl.DataFrame, items: pl.DataFrame, effect: CampaignEffect
) -> pl.DataFrame:
    """The purchases ``effect`` causes after ``sends`` (:func:`campaign_reactions`), priced
    from ``items`` (item_id, price), in the interactions schema: one order per purchase."""
    reactions = campaign_reactions(sends, items.get_column(col.ITEM_ID).to_list(), effect)
    prices = items.select(col.ITEM_ID, pl.col(col.PRICE).cast(pl.Float64))
    return reactions.join(prices, on=col.ITEM_ID, how="left", maintain_order="left").select(
        col.MEMBER_ID,
        col.ITEM_ID,
        pl.lit(col.PURCHASE).alias(col.EVENT),
        (pl.col(col.TIMESTAMP).cast(pl.Int64) * _US_PER_SECOND).cast(pl.Datetime("us")),
        pl.lit(1, dtype=pl.Int32).alias(col.QUANTITY),
        col.PRICE,
        pl.format("campaign-{}-{}", pl.lit(effect.seed), pl.int_range(pl.len())).alias(
            col.ORDER_ID
        ),
    )


def _unsent_item(catalog: np.ndarray, sent: set[str], rng: np.random.Generator) -> str:
    """A uniform item of the catalog that was not sent (redrawn until one is)."""
    if sent.issuperset(catalog.tolist()):
        raise ConfigError(
            "campaign effect: a member was sent every item of the catalog, so nothing is left "
            "for other_rate to buy; send fewer items or pass other_rate=0"
        )
    while True:
        item = str(catalog[int(rng.integers(len(catalog)))])
        if item not in sent:
            return item
