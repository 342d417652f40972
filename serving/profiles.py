"""A member's profile as served: the artifact's row found in O(1), with live events folded in.

The profile frame (``member_profiles.parquet``, :mod:`training.member_profiles`) is as of the
artifact's data end. Events posted to ``/v1/events`` after it are behaviour the frame has not
seen, and a profile follows them as recommendations do. Events carry no quantity, price or
order id, so only what needs none can follow them:

* ``last_purchase``: the latest purchase, trained or live;
* ``orders``: the trained orders plus one per UTC day with a live purchase (the rule of
  :func:`features.baskets.order_key` for purchases without an order id);
* ``recency_days``: from the last activity (the last purchase, else the last event) to the
  profile's ``as_of``, the member's latest live event (the data's end without live events).

Spend, tier progress, tags, purchase cycle, scores and segments stay as computed at the data's
end; the response says so (:data:`LIVE_FIELDS`, ``scores_as_of``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import polars as pl
from sqlalchemy import select

from features import columns as col
from features.ids import IdMap
from serving.event_store import EVENTS, EventStore

__all__ = [
    "LIVE_FIELDS",
    "LiveActivity",
    "ProfileRows",
    "as_utc",
    "fold_live",
    "live_activity",
    "summarise_live",
]

#: The response fields that follow live events.
LIVE_FIELDS: Final = ("last_purchase", "orders", "recency_days")
_INTERACTIONS: Final = (col.VIEW, col.CLICK, col.CART, col.PURCHASE)
_ROW: Final = "_row"


@dataclass(frozen=True)
class ProfileRows:
    """Which row of the profile frame is a member's, in O(1) and a few bytes per member.

    Members the models index are found through the artifact's own id dict (their row in an
    int32 array by member index); the few members only the members file knows (no events) in
    a dict of their own. A polars filter per request would scan the whole frame.
    """

    frame: pl.DataFrame
    member_ids: IdMap
    by_index: np.ndarray
    others: Mapping[str, int]

    @classmethod
    def build(cls, frame: pl.DataFrame, member_ids: IdMap) -> ProfileRows:
        rows = frame.select(pl.col(col.MEMBER_ID).cast(pl.Utf8)).with_row_index(_ROW)
        indexed = pl.DataFrame({col.MEMBER_ID: pl.Series(member_ids.external_ids, dtype=pl.Utf8)})
        aligned = indexed.join(rows, on=col.MEMBER_ID, how="left", maintain_order="left")
        by_index = aligned.get_column(_ROW).fill_null(-1).cast(pl.Int64).to_numpy()
        outside = rows.join(indexed, on=col.MEMBER_ID, how="anti")
        others = dict(zip(outside[col.MEMBER_ID].to_list(), outside[_ROW].to_list(), strict=True))
        return cls(frame=frame, member_ids=member_ids, by_index=by_index, others=others)

    def row(self, member_id: str) -> dict[str, Any] | None:
        """The member's profile row (column -> value), or None."""
        index = self.member_ids.get(member_id)
        position = int(self.by_index[index]) if index is not None else self.others.get(member_id)
        if position is None or position < 0:
            return None
        return self.frame.row(position, named=True)


@dataclass(frozen=True)
class LiveActivity:
    """A member's interaction events that occurred after the artifact's data end."""

    events: int
    last_event: datetime | None
    last_purchase: datetime | None
    purchase_days: int


def live_activity(store: EventStore, member_id: str, since: float) -> LiveActivity:
    """Read the member's live interactions (impressions are not interactions)."""
    query = select(EVENTS.c.event, EVENTS.c.occurred_at).where(
        EVENTS.c.member_id == member_id,
        EVENTS.c.occurred_at > since,
        EVENTS.c.event.in_(_INTERACTIONS),
    )
    with store.engine.connect() as connection:
        rows = [(str(event), float(at)) for event, at in connection.execute(query)]
    return summarise_live(rows)


def summarise_live(rows: Sequence[tuple[str, float]]) -> LiveActivity:
    """(event, epoch seconds) rows as counts and latest times."""
    purchases = [at for event, at in rows if event == col.PURCHASE]
    days = {datetime.fromtimestamp(at, UTC).date() for at in purchases}
    return LiveActivity(
        events=len(rows),
        last_event=_utc(max(at for _, at in rows)) if rows else None,
        last_purchase=_utc(max(purchases)) if purchases else None,
        purchase_days=len(days),
    )


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def fold_live(row: Mapping[str, Any], live: LiveActivity, data_end: datetime) -> dict[str, Any]:
    """``as_of``, ``last_purchase``, ``orders`` and ``recency_days`` after the live events.

    ``row`` is the profile row (naive UTC times, ``frequency`` and ``recency_days`` as of
    ``data_end``); without live events the row's own values are returned as they are.
    """
    trained_purchase = as_utc(row.get("last_purchase"))
    orders, recency = row.get("frequency"), row.get("recency_days")
    if live.events == 0 or live.last_event is None:
        return {"as_of": data_end, "last_purchase": trained_purchase, "orders": orders,
                "recency_days": recency}  # fmt: skip
    as_of = max(data_end, live.last_event)
    last_purchase = live.last_purchase or trained_purchase
    if last_purchase is not None:
        last_activity = last_purchase
    else:  # no purchase at all: the latest event, trained (data end - recency) or live
        trained = data_end - timedelta(days=recency) if recency is not None else None
        last_activity = live.last_event if trained is None else max(live.last_event, trained)
    return {
        "as_of": as_of,
        "last_purchase": last_purchase,
        "orders": (orders or 0) + live.purchase_days,
        "recency_days": (as_of - last_activity) / timedelta(days=1),
    }


def as_utc(moment: datetime | None) -> datetime | None:
    """A profile time (naive UTC, as the interactions store it) as an aware UTC datetime."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
