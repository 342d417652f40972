"""Live history: what members did after the artifact's data, as :class:`MemberContext` rows.

Serving (every request) and campaign exports (every batch) both read the event store's events
newer than the artifact's ``data_end``, and must turn them into the same history changes, or
an export would list what the API no longer answers: each interaction adds its training
weight (view < click < cart < purchase) to the member's history row, and each purchase joins
the exclusions. Impressions are not interactions (they have no weight) and items the artifact
does not know cannot be scored; both are skipped. The logic lives here, below serving, so that
both callers run this one copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from features.columns import PURCHASE
from features.matrices import EventWeights
from training.artifact import METRICS_FILE, ModelArtifact
from training.recommend import MemberContext

__all__ = ["LiveEvent", "MemberEvents", "event_weights_of", "live_context", "live_since"]


class LiveEvent(Protocol):
    """An event as live history reads it (``serving.event_store.StoredEvent`` is one)."""

    @property
    def member_id(self) -> str: ...

    @property
    def item_id(self) -> str: ...

    @property
    def event(self) -> str: ...

    @property
    def occurred_at(self) -> float:
        """When it occurred, epoch seconds (the buy-again list resets an item's clock)."""
        ...


class MemberEvents(Protocol):
    """Where live events are read (``serving.event_store.EventStore`` is one)."""

    def member_events(self, member_ids: Sequence[str], since: float) -> Sequence[LiveEvent]:
        """Events of ``member_ids`` after ``since`` (epoch seconds), oldest first."""
        ...


def live_context(
    events: Iterable[LiveEvent],
    item_index: Callable[[str], int | None],
    event_weights: Mapping[str, float],
    *,
    segment: int | None = None,
) -> MemberContext | None:
    """One member's events as a context (with ``segment``, a code of the artifact's segment
    names), or None when none of them is an interaction with an item the artifact knows."""
    items, weights, purchased = [], [], []
    for stored in events:
        index = item_index(stored.item_id)
        weight = event_weights.get(stored.event)  # None for impressions
        if index is None or weight is None:
            continue
        items.append(index)
        weights.append(weight)
        if stored.event == PURCHASE:
            purchased.append(index)
    if not items:
        return None
    return MemberContext(items=items, weights=weights, purchased=purchased, segment=segment)


def event_weights_of(artifact: ModelArtifact) -> dict[str, float]:
    """The event weights the artifact's training run used (metrics.json's config), else the
    defaults: a live event must weigh what the same event weighed in training."""
    metrics_path = artifact.extra_files.get(METRICS_FILE)
    configured = None
    if metrics_path is not None:
        configured = json.loads(metrics_path.read_text()).get("config", {}).get("event_weights")
    return EventWeights.model_validate(configured or {}).by_event()


def live_since(artifact: ModelArtifact) -> float:
    """Epoch seconds after which events are live history: the manifest's ``data_end`` (the last
    event the artifact learned from), else, for artifacts written before it was recorded,
    ``created_at``. Naive times are UTC."""
    return (artifact.data_end or artifact.created_at).timestamp()
