"""The event store on SQLite and on a throwaway PostgreSQL cluster: idempotent writes, the
live-history read (by the time events occurred), the CTR counts, and reload requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from serving.event_store import EventStore
from tests.serving_helpers import throwaway_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        opened = EventStore.open(f"sqlite:///{tmp_path / 'events.db'}")
        yield opened
        opened.close()
        return
    with throwaway_postgres() as url:
        opened = EventStore.open(url)
        EventStore.open(url).close()  # a second worker starting on the same schema
        yield opened
        opened.close()


def _event(event_id: str, kind: str, member: str, item: str, rec: str | None = None) -> dict:
    now = time.time()
    return {"event_id": event_id, "event": kind, "member_id": member, "item_id": item,
            "recommendation_id": rec, "occurred_at": now, "received_at": now}  # fmt: skip


def _served(rec: str, n_items: int, model: str) -> dict:
    now = time.time()
    return {"recommendation_id": rec, "served_at": now,
            "member_id": "m1", "item_id": None, "variant": "default", "model": model,
            "model_version": "v1", "segment": "active", "fallback": False,
            "n_items": n_items, "item_ids": "[]"}  # fmt: skip


def test_events_are_stored_once_and_read_back_as_live_history(store: EventStore) -> None:
    since = time.time() - 1
    first = store.add_events(
        [_event("e1", "click", "m1", "i1"), _event("e2", "purchase", "m1", "i2")]
    )
    assert first == {"e1", "e2"}
    again = store.add_events(
        [_event("e2", "purchase", "m1", "i2"), _event("e3", "view", "m2", "i1")]
    )
    assert again == {"e3"}
    history = store.member_events(["m1"], since)
    assert [(e.item_id, e.event) for e in history] == [("i1", "click"), ("i2", "purchase")]
    both = store.member_events(["m1", "m2"], since)
    assert {e.member_id for e in both} == {"m1", "m2"}
    assert store.member_events(["m1"], time.time() + 1) == []


def test_ctr_counts_attribute_clicks_and_purchases_to_served_lists(store: EventStore) -> None:
    store.add_served([_served("r1", 10, "als"), _served("r2", 10, "popular")])
    store.add_served([_served("r1", 10, "als")])  # a flush retried: ignored
    store.add_events(
        [
            _event("c1", "click", "m1", "i1", "r1"),
            _event("c2", "click", "m1", "i1", "r1"),  # the same item clicked twice: one click
            _event("c3", "click", "m1", "i2", "r2"),
            _event("p1", "purchase", "m1", "i1", "r1"),
            _event("x1", "click", "m1", "i9", "not-served"),
        ]
    )
    counts = {row.key: row for row in store.ctr_counts("model", None, None)}
    assert (counts["als"].impressions, counts["als"].clicks, counts["als"].conversions) == (
        10,
        1,
        1,
    )
    assert (counts["popular"].clicks, counts["popular"].conversions) == (1, 0)
    assert store.ctr_counts("model", time.time() + 60, None) == []
    [total] = store.ctr_counts("segment", None, None)
    assert total.key == "active" and total.impressions == 20


def test_live_history_follows_when_events_occurred_not_when_they_arrived(
    store: EventStore,
) -> None:
    since = time.time() - 3600  # an artifact's data end, an hour ago
    store.add_events(
        [
            {**_event("late", "click", "m9", "i1"), "occurred_at": since - 60},  # before it
            {**_event("fresh", "purchase", "m9", "i2"), "occurred_at": since + 60,
             "received_at": since - 600},  # after it, whenever it arrived
            {**_event("fresher", "click", "m9", "i3"), "occurred_at": since + 120},
        ]
    )  # fmt: skip
    assert [e.item_id for e in store.member_events(["m9"], since)] == ["i2", "i3"]
    assert [e.item_id for e in store.member_events(["m9", "m8"], since)] == ["i2", "i3"]


def test_the_arrival_time_index_of_earlier_versions_is_replaced(store: EventStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            text("CREATE INDEX ix_recsys_events_member_received ON recsys_events "
                 "(member_id, received_at)")
        )  # fmt: skip
    store.create_schema()  # what a worker of this version does at start
    indexes = {index["name"] for index in inspect(store.engine).get_indexes("recsys_events")}
    assert "ix_recsys_events_member_occurred" in indexes
    assert "ix_recsys_events_member_received" not in indexes


def test_reload_requests_are_numbered_and_read_after_a_number(store: EventStore) -> None:
    assert store.last_reload_request() == 0
    first, second = store.request_reload(None), store.request_reload("challenger")
    assert second > first and store.last_reload_request() == second
    assert store.reload_requests_after(0) == [(first, None), (second, "challenger")]
    assert store.reload_requests_after(first) == [(second, "challenger")]
