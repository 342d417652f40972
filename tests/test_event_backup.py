"""``recsys backup`` / ``restore``: every table of the event store round-trips exactly, in both
formats (a SQLite copy, the portable file), on SQLite and on a throwaway PostgreSQL cluster,
and across the two; a backup taken while a real server takes events is a consistent snapshot
that restores to what its manifest says; ``--verify`` names what differs in a damaged or
changed backup; a non-empty store is refused unless --replace, and a truncated, damaged or
foreign file restores nothing."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from features.errors import ConfigError
from serving.audit import AuditLog
from serving.event_backup import (
    DamagedBackupError,
    backup_store,
    restore_store,
    store_digests,
    verify_backup,
)
from serving.event_store import AUDIT, EVENTS, EventStore, metadata
from tests.cli import run_recsys
from tests.serving_helpers import WRITE, Server, throwaway_postgres
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


#: (engine of the store, backup file name): a SQLite copy of SQLite, the portable file of both.
FORMATS = [("sqlite", "events.db"), ("sqlite", "events.jsonl.gz"), ("postgresql", "events.jsonl")]


@pytest.fixture(params=FORMATS, ids=[f"{engine}-{name}" for engine, name in FORMATS])
def store_and_backup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[NewStore, Path]:
    """(new stores of the engine, the backup file to write)."""
    engine, name = request.param
    stores = _sqlite_stores(tmp_path) if engine == "sqlite" else None
    if stores is None:
        stores = _postgres_stores(request.getfixturevalue("postgres"))
    return stores, tmp_path / name


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
    """Every row of every table, in primary-key order, but the audit entries that the backup
    and restore commands add after their snapshot (``_audited`` checks those)."""
    store = EventStore.open(url)
    try:
        with store.engine.connect() as connection:
            return {
                table.name: [tuple(row) for row in connection.execute(
                    table.select().order_by(*table.primary_key.columns))
                    if table is not AUDIT or row.action not in _COMMAND_ACTIONS]
                for table in metadata.sorted_tables
            }  # fmt: skip
    finally:
        store.close()


_COMMAND_ACTIONS = ("backup", "restore")


def _audited(url: str) -> list[tuple[str, str, str]]:
    """(action, target, outcome) of the store's audit entries, oldest first."""
    store = EventStore.open(url)
    try:
        return [(entry.action, entry.target or "", entry.outcome)
                for entry in reversed(AuditLog(store).read())]  # fmt: skip
    finally:
        store.close()


def test_backups_and_restores_on_the_command_line_are_audited(tmp_path: Path) -> None:
    stores = _sqlite_stores(tmp_path)
    source, target = stores("source"), stores("target")
    _fill(source)
    backup = tmp_path / "events.db"
    assert run_recsys("backup", "--out", backup, "--events-url", source).returncode == 0
    assert run_recsys("restore", "--from", backup, "--events-url", target).returncode == 0
    assert _audited(source)[-1] == ("backup", str(backup), "ok")
    assert _audited(target)[-1] == ("restore", str(backup), "ok")
    assert ("backup", str(backup), "ok") not in _audited(target)  # taken after the snapshot


def _digests(url: str) -> dict:
    """Every table's row count and checksum, as a backup's manifest records them."""
    store = EventStore.open(url)
    try:
        with store.engine.connect() as connection:
            return store_digests(connection, store.dialect)
    finally:
        store.close()


def test_backup_and_restore_round_trip_every_table(
    store_and_backup: tuple[NewStore, Path],
) -> None:
    new_store, backup = store_and_backup
    source, target = new_store("source"), new_store("target")
    _fill(source)
    done = run_recsys("backup", "--events-url", source, "--out", backup)
    assert done.returncode == 0, done.stderr
    assert "15 rows of recsys_events" in done.stdout
    done = run_recsys("backup", "--verify", backup)
    assert done.returncode == 0, done.stderr
    assert "match the manifest's counts and checksums" in " ".join(done.stdout.split())
    done = run_recsys("restore", "--events-url", target, "--from", backup)
    assert done.returncode == 0, done.stderr
    restored, original = _tables(target), _tables(source)
    assert restored == original
    assert {name: len(rows) for name, rows in original.items() if rows} == {
        "recsys_campaigns": 1, "recsys_campaign_sends": 2, "recsys_events": 15,
        "recsys_reload_requests": 2, "recsys_served": 5,
    }  # fmt: skip
    # The restore's own audit entry is the one row the target holds beyond the backup.
    restored_digests, manifest = _digests(target), verify_backup(backup).tables
    assert restored_digests.pop("recsys_audit").rows == manifest.pop("recsys_audit").rows + 1
    assert restored_digests == manifest

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


def test_a_sqlite_copy_is_one_file_in_wal_mode_once_restored(tmp_path: Path) -> None:
    """The copy needs no -wal beside it, carries its manifest inside, and the store restored
    from it is in WAL mode again, without the manifest's table."""
    stores = _sqlite_stores(tmp_path)
    source, target = stores("source"), stores("target")
    _fill(source)
    backup_store(EventStore.open(source), tmp_path / "copy.db")
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        (manifest,) = copy.execute("SELECT manifest FROM recsys_backup_manifest").fetchone()
    assert json.loads(manifest)["counts"]["recsys_events"] == 15
    restore_store(EventStore.open(target), tmp_path / "copy.db")
    with sqlite3.connect(tmp_path / "target.db") as restored:
        assert restored.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {name for (name,) in restored.execute("SELECT name FROM sqlite_master")}
    assert "recsys_backup_manifest" not in tables
    assert _tables(target) == _tables(source)


def test_the_earlier_command_names_still_work(tmp_path: Path) -> None:
    """`recsys events backup` / `restore` (issue 12's names) are the same commands."""
    stores = _sqlite_stores(tmp_path)
    source, target = stores("source"), stores("target")
    _fill(source)
    backup = tmp_path / "events.jsonl.gz"
    assert run_recsys("events", "backup", "--events-url", source, "--out", backup).returncode == 0
    done = run_recsys("events", "restore", "--events-url", target, "--from", backup)
    assert done.returncode == 0, done.stderr
    assert _tables(target) == _tables(source)


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
    done = run_recsys("restore", "--events-url", target, "--from", truncated)
    assert done.returncode == 2 and "truncated" in done.stderr, done.stderr
    assert all(rows == [] for rows in _tables(target).values())
    foreign = tmp_path / "foreign.jsonl.gz"
    foreign.write_bytes(gzip.compress(b'{"hello": 1}\n'))
    with pytest.raises(ConfigError, match="not a backup"):
        restore_store(EventStore.open(target), foreign)
    missing = run_recsys("backup", "--events-url", stores("none"), "--out", backup)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    done = run_recsys("backup", "--verify", foreign)
    assert done.returncode == 2 and "not a backup" in done.stderr, done.stderr
    done = run_recsys("backup", "--verify", tmp_path / "source.db")
    assert done.returncode == 2 and "without a backup manifest" in done.stderr, done.stderr
    done = run_recsys("backup", "--events-url", stores("source"))
    assert done.returncode == 2 and "--out FILE" in done.stderr, done.stderr


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


def test_a_sqlite_copy_restores_into_postgresql_and_beside_other_tables(
    postgres: str, tmp_path: Path
) -> None:
    """A SQLite copy goes into PostgreSQL, and into a SQLite file that holds tables of others
    too, by inserting its rows (a whole-file copy would drop the other tables)."""
    source = _sqlite_stores(tmp_path)("source")
    _fill(source)
    backup_store(EventStore.open(source), tmp_path / "copy.db")
    pg_store = _postgres_stores(postgres)("from_copy")
    restore_store(EventStore.open(pg_store), tmp_path / "copy.db")
    assert _tables(pg_store) == _tables(source)
    with sqlite3.connect(tmp_path / "shared.db") as shared:
        shared.execute("CREATE TABLE crm_notes (note TEXT)")
        shared.execute("INSERT INTO crm_notes VALUES ('kept')")
    restore_store(EventStore.open(f"sqlite:///{tmp_path / 'shared.db'}"), tmp_path / "copy.db")
    assert _tables(f"sqlite:///{tmp_path / 'shared.db'}") == _tables(source)
    with sqlite3.connect(tmp_path / "shared.db") as shared:
        assert shared.execute("SELECT note FROM crm_notes").fetchall() == [("kept",)]


def _changed_copy(backup: Path, out: Path, sql: str) -> Path:
    out.write_bytes(backup.read_bytes())
    with sqlite3.connect(out) as copy:
        copy.execute(sql)
    return out


def _flipped(backup: Path, out: Path, needle: bytes) -> Path:
    data = bytearray(backup.read_bytes())
    data[data.index(needle) + len(needle) - 1] ^= 0x01
    out.write_bytes(bytes(data))
    return out


def _refused(backup: Path, *expected: str) -> None:
    """``recsys backup --verify`` exits 2 naming what differs; a restore restores nothing."""
    done = run_recsys("backup", "--verify", backup)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stdout
    for phrase in expected:
        assert phrase in message, message
    target = f"sqlite:///{backup.parent / ('restored-' + backup.name + '.db')}"
    done = run_recsys("restore", "--events-url", target, "--from", backup)
    assert done.returncode == 2, done.stdout
    assert all(rows == [] for rows in _tables(target).values())


def test_verify_names_what_differs_in_a_damaged_sqlite_copy(tmp_path: Path) -> None:
    source = _sqlite_stores(tmp_path)("source")
    _fill(source)
    backup = tmp_path / "events.db"
    backup_store(EventStore.open(source), backup)
    deleted = _changed_copy(backup, tmp_path / "deleted.db",
                            "DELETE FROM recsys_events WHERE event_id = 'e-3'")  # fmt: skip
    _refused(deleted, "recsys_events has 14 rows, the manifest says 15")
    edited = _changed_copy(backup, tmp_path / "edited.db",
                           "UPDATE recsys_served SET n_items = 99 WHERE n_items = 8")  # fmt: skip
    _refused(edited, "recsys_served has the manifest's 5 rows but not their content")
    _refused(_flipped(backup, tmp_path / "flipped.db", b"e-13"), "recsys_events", "checksum")
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(backup.read_bytes()[: len(backup.read_bytes()) // 2])
    _refused(truncated, "SQLite cannot read it", "damaged or truncated")


def test_verify_names_what_differs_in_a_damaged_portable_file(tmp_path: Path) -> None:
    source = _sqlite_stores(tmp_path)("source")
    _fill(source)
    backup = tmp_path / "events.jsonl"
    backup_store(EventStore.open(source), backup)
    lines = backup.read_text().splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if '"e-3"' in line)
    deleted = tmp_path / "deleted.jsonl"
    deleted.write_text("".join(lines[:row] + lines[row + 1 :]))
    _refused(deleted, "recsys_events has 14 rows, the manifest says 15")
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(lines).replace('"I001"', '"I002"', 1))
    _refused(edited, "but not their content (its checksum differs)")
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("".join(lines[:-1]))
    _refused(truncated, "truncated: it ends before its closing line")
    compressed = gzip.compress(backup.read_bytes())
    flipped = tmp_path / "flipped.jsonl.gz"
    flipped.write_bytes(compressed[:-12] + bytes([compressed[-12] ^ 1]) + compressed[-11:])
    _refused(flipped, "damaged")


def test_a_portable_file_of_an_earlier_version_restores_on_its_counts(tmp_path: Path) -> None:
    """Issue 12's files closed with counts only: they restore, and --verify says so."""
    stores = _sqlite_stores(tmp_path)
    source, target = stores("source"), stores("target")
    _fill(source)
    backup = tmp_path / "events.jsonl"
    backup_store(EventStore.open(source), backup)
    *rows, closing = backup.read_text().splitlines()
    earlier = json.loads(closing)
    del earlier["sha256"]
    backup.write_text("\n".join([*rows, json.dumps(earlier)]) + "\n")
    done = run_recsys("backup", "--verify", backup)
    assert done.returncode == 0 and "no checksums" in " ".join(done.stdout.split()), done.stderr
    restore_store(EventStore.open(target), backup)
    assert _tables(target) == _tables(source)


class _EventPoster(threading.Thread):
    """Posts batches of fresh events to a server until stopped, keeping which ids were sent
    and which acknowledged (a 200: committed), and any failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.sent: set[str] = set()
        self.acknowledged: set[str] = set()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        number = 0
        with httpx.Client(base_url=self.url, headers=WRITE, timeout=30) as client:
            while not self.stopping.is_set():
                batch = [f"load-{number + i}" for i in range(20)]
                number += len(batch)
                with self.lock:
                    self.sent.update(batch)
                body = [{"event_id": event_id, "event": "view", "member_id": "M0001",
                         "item_id": "I001"} for event_id in batch]  # fmt: skip
                try:
                    response = client.post("/v1/events", json=body)
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text}")
                    continue
                with self.lock:
                    self.acknowledged.update(batch)

    def seen(self) -> tuple[set[str], set[str]]:
        """(sent, acknowledged) so far."""
        with self.lock:
            return set(self.sent), set(self.acknowledged)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


def _event_ids(url: str) -> set[str]:
    store = EventStore.open(url)
    try:
        with store.engine.connect() as connection:
            return set(connection.execute(EVENTS.select().with_only_columns(EVENTS.c.event_id))
                       .scalars())  # fmt: skip
    finally:
        store.close()


def _prefill(url: str, events: int) -> None:
    """Rows enough that a backup takes a while: the writes go on meanwhile."""
    store = EventStore.open(url)
    for start in range(0, events, 5_000):
        store.add_events([
            {"event_id": f"old-{i}", "event": "purchase", "member_id": f"M{i % 997:04d}",
             "item_id": f"I{i % 120:03d}", "recommendation_id": None,
             "occurred_at": 1.7e9 + i, "received_at": 1.7e9 + i}
            for i in range(start, min(start + 5_000, events))
        ])  # fmt: skip
    store.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_backup_under_write_load_is_a_snapshot_that_restores_to_its_manifest(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A real server takes events throughout; each backup holds every event acknowledged
    before it began and none that was not sent by its end, passes --verify, and restores into
    a new store whose counts and checksums are those of its manifest."""
    stores = (
        _sqlite_stores(tmp_path) if engine == "sqlite"
        else _postgres_stores(request.getfixturevalue("postgres"))
    )  # fmt: skip
    live = stores("live")
    _prefill(live, 40_000)
    server = Server({"RECSYS_EVENTS_URL": live}, tmp_path / "server.log").wait("/healthz")
    poster = _EventPoster(server.url)
    poster.start()
    try:
        deadline = time.monotonic() + 60
        while len(poster.seen()[1]) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        backups = [tmp_path / "events.db"] if engine == "sqlite" else []
        backups.append(tmp_path / "events.jsonl.gz")
        taken = []
        for backup in backups:
            acknowledged_before = poster.seen()[1]
            done = run_recsys("backup", "--events-url", live, "--out", backup)
            sent_after, acknowledged_after = poster.seen()
            assert done.returncode == 0, done.stderr
            assert acknowledged_after > acknowledged_before  # events were taken meanwhile
            taken.append((backup, acknowledged_before, sent_after))
        time.sleep(0.5)  # and after them, so that the live store moves on
    finally:
        poster.stop()
        server.stop()
    assert poster.failures == [], poster.failures[:3]
    for number, (backup, acknowledged_before, sent_after) in enumerate(taken):
        manifest = verify_backup(backup).tables  # the commands' own calls, in this process
        restored = stores(f"restored{number}")
        assert restore_store(EventStore.open(restored), backup).tables == manifest
        assert _digests(restored) == manifest
        loaded = {event_id for event_id in _event_ids(restored) if event_id.startswith("load-")}
        assert acknowledged_before <= loaded <= sent_after
        assert manifest["recsys_events"].rows == 40_000 + len(loaded)
    assert len(_event_ids(live)) > manifest["recsys_events"].rows  # writes went on after it


def test_a_restore_that_fails_its_manifest_check_changes_nothing(tmp_path: Path) -> None:
    """The check of the restored store ends the restore's transaction: a store that does not
    hold what the manifest says after the inserts is rolled back."""
    stores = _sqlite_stores(tmp_path)
    source, target = stores("source"), stores("target")
    _fill(source)
    backup = tmp_path / "events.jsonl"
    backup_store(EventStore.open(source), backup)
    store = EventStore.open(target)
    with store.engine.begin() as connection:  # a trigger that changes what is inserted
        connection.exec_driver_sql(
            "CREATE TRIGGER drift AFTER INSERT ON recsys_served BEGIN "
            "UPDATE recsys_served SET n_items = n_items + 1 "
            "WHERE recommendation_id = NEW.recommendation_id; END"
        )
    with pytest.raises(DamagedBackupError, match="recsys_served has the manifest's 5 rows"):
        restore_store(store, backup)
    assert all(rows == [] for rows in _tables(target).values())


def test_a_pg_dump_of_the_store_restores_with_the_same_checksums(
    postgres: str, tmp_path: Path
) -> None:
    """docs/operations.md's pg_dump guidance: the store's tables and sequences, dumped in the
    custom format and restored into a new database, hold the same rows and go on numbering."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not on PATH")
    stores = _postgres_stores(postgres)
    source, target = stores("dumped"), stores("from_dump")
    _fill(source)
    dump = tmp_path / "events.dump"
    libpq = source.replace("+psycopg", "")
    subprocess.run(["pg_dump", "-Fc", "--no-owner", "-t", "recsys_*", "-f", str(dump), libpq],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    subprocess.run(["pg_restore", "--no-owner", "-d", target.replace("+psycopg", ""), str(dump)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    assert _digests(target) == _digests(source)
    store = EventStore.open(target)
    assert store.request_reload(None) == 3
    store.close()
