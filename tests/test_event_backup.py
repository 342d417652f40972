"""``recsys events backup`` / ``restore``: every table of the event store round-trips exactly,
on SQLite and on a throwaway PostgreSQL cluster, and across the two; a non-empty store is
refused unless --replace, and a truncated or foreign file restores nothing."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from features.errors import ConfigError
from serving.event_backup import backup_store, restore_store
from serving.event_store import EventStore, metadata
from tests.cli import run_recsys
from tests.serving_helpers import throwaway_postgres
from training.campaigns import CampaignSend

NewStore = Callable[[str], str]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """One throwaway cluster for the module (skips with a reason when PostgreSQL cannot run)."""
    with throwaway_postgres() as url:
        yield url


def _sqlite_stores(root: Path) -> NewStore:
    return lambda name: f"sqlite:///{root / f'{name}.db'}"


def _postgres_stores(url: str) -> NewStore:
    """A fresh database of the cluster per name."""

    def new(name: str) -> str:
        database = f"t_{name}_{time.time_ns()}"
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        engine.dispose()
        return url.rsplit("/", 1)[0] + f"/{database}"

    return new


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> NewStore:
    if request.param == "sqlite":
        return _sqlite_stores(tmp_path)
    return _postgres_stores(request.getfixturevalue("postgres"))


def _fill(url: str) -> None:
    """Rows of every table, with the values that are easy to lose: nulls, non-ASCII ids,
    floats with every digit, booleans both ways."""
    store = EventStore.open(url)
    now = 1_767_000_000.123456789
    store.add_events([
        {"event_id": f"e-{i}", "event": kind, "member_id": f"M{i % 7:04d}",
         "item_id": "Ítem ✓" if i == 3 else f"I{i:03d}",
         "recommendation_id": None if i % 2 else f"r-{i % 5}",
         "occurred_at": now + i / 3, "received_at": now + i / 7}
        for i, kind in enumerate(["view", "click", "cart", "purchase", "impression"] * 3)
    ])  # fmt: skip
    store.add_served([
        {"recommendation_id": f"r-{i}", "served_at": now - i * 0.1, "member_id": None if i == 4
         else f"M{i:04d}", "item_id": "I001" if i == 2 else None, "variant": "champion",
         "model": "als", "model_version": "3", "segment": None if i == 1 else "at-risk",
         "fallback": i % 2 == 0, "n_items": 10 - i, "item_ids": f'["I00{i}", "I010"]'}
        for i in range(5)
    ])  # fmt: skip
    store.request_reload(None)
    store.request_reload("challenger")
    store.record([
        CampaignSend("spring-1", "spring", "Mé-1", "treatment", ("I001", "Ítem ✓"), None, now),
        CampaignSend("spring-1", "spring", "M0002", "holdout", (), "OFF-5", now + 1 / 3),
    ])  # fmt: skip
    store.close()


def _tables(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    store = EventStore.open(url)
    try:
        with store.engine.connect() as connection:
            return {
                table.name: [tuple(row) for row in connection.execute(
                    table.select().order_by(*table.primary_key.columns))]
                for table in metadata.sorted_tables
            }  # fmt: skip
    finally:
        store.close()


def test_backup_and_restore_round_trip_every_table(new_store: NewStore, tmp_path: Path) -> None:
    source, target = new_store("source"), new_store("target")
    _fill(source)
    backup = tmp_path / "events.jsonl.gz"
    done = run_recsys("events", "backup", "--events-url", source, "--out", backup)
    assert done.returncode == 0, done.stderr
    assert "15 rows of recsys_events" in done.stdout
    done = run_recsys("events", "restore", "--events-url", target, "--from", backup)
    assert done.returncode == 0, done.stderr
    restored, original = _tables(target), _tables(source)
    assert restored == original
    assert {name: len(rows) for name, rows in original.items()} == {
        "recsys_campaigns": 1, "recsys_campaign_sends": 2, "recsys_events": 15,
        "recsys_reload_requests": 2, "recsys_served": 5,
    }  # fmt: skip

    # The restored store goes on working: ids continue after the restored ones, and a
    # restored event_id is still a duplicate.
    store = EventStore.open(target)
    assert store.request_reload(None) == 3
    assert store.add_events([
        {"event_id": "e-1", "event": "click", "member_id": "M0001", "item_id": "I001",
         "recommendation_id": None, "occurred_at": 1.0, "received_at": 1.0},
        {"event_id": "new", "event": "click", "member_id": "M0001", "item_id": "I001",
         "recommendation_id": None, "occurred_at": 1.0, "received_at": 1.0},
    ]) == {"new"}  # fmt: skip
    store.close()
    events = _tables(target)["recsys_events"]
    assert [row[1] for row in events if row[0] > 15] == ["new"]  # PostgreSQL may skip ids


def test_a_store_with_rows_is_refused_unless_replace(new_store: NewStore, tmp_path: Path) -> None:
    source, target = new_store("source"), new_store("target")
    _fill(source)
    held = EventStore.open(target)
    held.request_reload("other")
    held.close()
    backup = tmp_path / "events.jsonl"
    backup_store(EventStore.open(source), backup)
    with pytest.raises(ConfigError, match=r"already holds .* add --replace"):
        restore_store(EventStore.open(target), backup)
    assert len(_tables(target)["recsys_reload_requests"]) == 1
    restore_store(EventStore.open(target), backup, replace=True)
    assert _tables(target) == _tables(source)


def test_a_truncated_or_foreign_file_restores_nothing(tmp_path: Path) -> None:
    stores = _sqlite_stores(tmp_path)
    source, target = stores("source"), stores("target")
    _fill(source)
    backup = tmp_path / "events.jsonl"
    backup_store(EventStore.open(source), backup)
    lines = backup.read_text().splitlines(keepends=True)
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("".join(lines[:-3]))
    done = run_recsys("events", "restore", "--events-url", target, "--from", truncated)
    assert done.returncode == 2 and "truncated" in done.stderr, done.stderr
    assert all(rows == [] for rows in _tables(target).values())
    foreign = tmp_path / "foreign.jsonl.gz"
    foreign.write_bytes(gzip.compress(b'{"hello": 1}\n'))
    with pytest.raises(ConfigError, match="not a backup"):
        restore_store(EventStore.open(target), foreign)
    missing = run_recsys("events", "backup", "--events-url", stores("none"), "--out", backup)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_a_sqlite_backup_restores_into_postgresql_and_back(postgres: str, tmp_path: Path) -> None:
    sqlite_store, pg_store = _sqlite_stores(tmp_path)("source"), _postgres_stores(postgres)("pg")
    _fill(sqlite_store)
    backup_store(EventStore.open(sqlite_store), tmp_path / "a.jsonl")
    restore_store(EventStore.open(pg_store), tmp_path / "a.jsonl")
    assert _tables(pg_store) == _tables(sqlite_store)
    backup_store(EventStore.open(pg_store), tmp_path / "b.jsonl.gz")
    again = _sqlite_stores(tmp_path)("again")
    restore_store(EventStore.open(again), tmp_path / "b.jsonl.gz")
    assert _tables(again) == _tables(sqlite_store)
