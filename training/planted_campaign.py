"""A generated store's campaign with a planted effect, as the uplift report reads it: ledger
sends, the purchases after them, and the members' segments and tiers.

The uplift tests and the coverage benchmark (``benchmarks/campaign_uplift.py``) both run the
report on such campaigns and check its intervals against the truth the effect planted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from features import columns as col
from features.members import compute_member_profiles
from features.synthetic import INTERACTIONS_FILE, ITEMS_FILE, MEMBERS_FILE, PERIOD_END
from features.synthetic.campaign import (
    GROUP,
    ITEMS,
    SENT_AT,
    CampaignEffect,
    plant_campaign_effect,
    simulate_sends,
)
from training.campaigns.ledger import CampaignSend

__all__ = ["PlantedCampaign", "plant_store_campaign"]

#: Sent the day the generated period ends, so that every planted purchase falls after the
#: store's own history and the store's purchases all fall before the sends.
_SENT_AT = float(PERIOD_END.astype("datetime64[s]").astype(int))


@dataclass(frozen=True)
class PlantedCampaign:
    sends: list[CampaignSend]
    #: The store's interactions followed by the planted purchases.
    purchases: pl.DataFrame
    #: The planted purchases alone.
    planted: pl.DataFrame
    #: member_id, segment (as of the sends) and tier of every member of the store.
    attributes: pl.DataFrame
    effect: CampaignEffect


def plant_store_campaign(
    store: Path,
    effect: CampaignEffect,
    *,
    holdout_share: float = 0.5,
    items_per_member: int = 3,
    campaign_id: str = "planted",
) -> PlantedCampaign:
    """A campaign to every member of the generated store in directory ``store`` with
    ``effect`` planted after it (the sends are drawn with the effect's seed)."""
    history = pl.read_parquet(store / INTERACTIONS_FILE)
    members = pl.read_parquet(store / MEMBERS_FILE)
    items = pl.read_parquet(store / ITEMS_FILE)
    frame = simulate_sends(
        members.get_column(col.MEMBER_ID).to_list(),
        items.get_column(col.ITEM_ID).to_list(),
        sent_at=_SENT_AT,
        holdout_share=holdout_share,
        items_per_member=items_per_member,
        seed=effect.seed,
    )
    sends = [
        CampaignSend(
            campaign_id=campaign_id,
            family=campaign_id,
            member_id=row[col.MEMBER_ID],
            group=row[GROUP],
            items=tuple(row[ITEMS]),
            offer_id=None,
            sent_at=row[SENT_AT],
        )
        for row in frame.iter_rows(named=True)
    ]
    planted = plant_campaign_effect(frame, items, effect)
    purchases = pl.concat([history, planted], how="diagonal_relaxed")
    attributes = compute_member_profiles(history, members=members)
    return PlantedCampaign(sends, purchases, planted, attributes, effect)
