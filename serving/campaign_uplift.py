"""A campaign's uplift report from what the service holds: the ledger and the purchase events
in the event store, prices and member segments and tiers from the model artifact.

The API (``GET /v1/reports/campaigns/{id}``) and the CLI (``recsys campaign report``) both
call :func:`campaign_report`, so that they report the same figures for the same campaign.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from features import columns as col
from features.members import SEGMENT
from serving.event_store import EventStore
from training.artifact import ModelArtifact
from training.member_kpis import PROFILES_FILE
from training.uplift import UpliftReport, campaign_uplift, with_epoch_timestamps

__all__ = ["campaign_report", "store_purchases"]

#: Members per event-store query: a bounded IN list, whatever the campaign's size.
_MEMBERS_PER_QUERY: Final = 5_000
_SECONDS_PER_DAY: Final = 86_400.0


def campaign_report(
    store: EventStore,
    campaign_id: str,
    *,
    window_days: float,
    artifact: ModelArtifact | None = None,
    purchases: pl.DataFrame | None = None,
) -> UpliftReport | None:
    """The report of ``campaign_id`` (None: the ledger has no such campaign). Purchases are
    the event store's, priced from the artifact's catalog, plus ``purchases`` (e.g. the till's
    orders, which never reached the API; member_id, item_id, timestamp, price, quantity)."""
    sends = store.sends(campaign_id=campaign_id)
    if not sends:
        return None
    member_ids = sorted({send.member_id for send in sends})
    since = min(send.sent_at for send in sends)
    until = max(send.sent_at for send in sends) + window_days * _SECONDS_PER_DAY
    bought = store_purchases(store, member_ids, since, until, artifact)
    if purchases is not None:
        bought = pl.concat([bought, with_epoch_timestamps(purchases)], how="diagonal_relaxed")
    return campaign_uplift(
        sends, bought, window_days=window_days, attributes=_member_attributes(artifact)
    )


def store_purchases(
    store: EventStore,
    member_ids: list[str],
    since: float,
    until: float,
    artifact: ModelArtifact | None,
) -> pl.DataFrame:
    """Purchase events of ``member_ids`` in (since, until], with the catalog's price of each
    item when the artifact has one (quantity 1: posted events carry none)."""
    rows = [
        (event.member_id, event.item_id, event.occurred_at)
        for start in range(0, len(member_ids), _MEMBERS_PER_QUERY)
        for event in store.member_events(member_ids[start : start + _MEMBERS_PER_QUERY], since)
        if event.event == col.PURCHASE and event.occurred_at <= until
    ]
    frame = pl.DataFrame(
        rows,
        schema={col.MEMBER_ID: pl.String, col.ITEM_ID: pl.String, col.TIMESTAMP: pl.Float64},
        orient="row",
    )
    prices = _catalog_prices(artifact)
    return frame if prices is None else frame.join(prices, on=col.ITEM_ID, how="left")


def _catalog_prices(artifact: ModelArtifact | None) -> pl.DataFrame | None:
    if artifact is None or artifact.catalog is None or col.PRICE not in artifact.catalog.columns:
        return None
    return pl.DataFrame(
        {
            col.ITEM_ID: artifact.item_ids.external_ids.tolist(),
            col.PRICE: artifact.catalog.get_column(col.PRICE).cast(pl.Float64),
        }
    )


def _member_attributes(artifact: ModelArtifact | None) -> pl.DataFrame | None:
    """Segment and tier of each member from the artifact's member profiles (None: it has
    none, and the report has no breakdowns)."""
    path = None if artifact is None else artifact.extra_files.get(PROFILES_FILE)
    if path is None:
        return None
    profiles = pl.read_parquet(path)
    return profiles.select(
        col.MEMBER_ID, *(name for name in (SEGMENT, col.TIER) if name in profiles.columns)
    )
