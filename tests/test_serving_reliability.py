"""Reliability against real servers: reloads under load, refused model artifacts, idempotent
events, durability across ``kill -9``, and a fuzzer that must never see a 5xx."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import polars as pl
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.cli import RECSYS
from tests.serving_helpers import ADMIN, WRITE, Server, copy_artifact, corrupt, swap_in

RECOMMEND = "/v1/members/{}/recommendations"


@pytest.fixture(scope="module")
def artifacts(tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two versions of the tiny model, a corrupted copy, and the directory the server serves."""
    root = tmp_path_factory.mktemp("reliability")
    first = copy_artifact(tiny_trained[1], root / "v1")
    second = copy_artifact(tiny_trained[1], root / "v2", created_at="2030-01-01T00:00:00+00:00")
    corrupted = copy_artifact(tiny_trained[1], root / "corrupted")
    corrupt(corrupted)
    served = copy_artifact(first, root / "served")
    return {"v1": first, "v2": second, "corrupted": corrupted, "served": served, "root": root}


@pytest.fixture(scope="module")
def server(artifacts: dict) -> Iterator[Server]:
    root = artifacts["root"]
    running = Server(
        {"RECSYS_ARTIFACT": str(artifacts["served"]),
         "RECSYS_EVENTS_URL": f"sqlite:///{root / 'events.db'}"},
        root / "server.log",
    ).wait()  # fmt: skip
    yield running
    running.stop()


@pytest.fixture(scope="module")
def members(tiny_trained: tuple[Path, Path]) -> list[str]:
    frame = pl.read_parquet(tiny_trained[0] / "interactions.parquet")
    return frame["member_id"].unique().sort().to_list()


def _version(server: Server) -> str:
    return server.client.get("/readyz").json()["versions"]["default"]


def test_a_reload_during_load_loses_no_request(
    server: Server, artifacts: dict, members: list[str]
) -> None:
    stop = threading.Event()
    statuses: list[int] = []
    versions: set[str] = set()

    def load(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                response = client.get(RECOMMEND.format(rng.choice(members)), params={"n": 10})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.add(response.json()["model_version"])

    with ThreadPoolExecutor(4) as pool:
        loaders = [pool.submit(load, seed) for seed in range(4)]
        try:
            time.sleep(0.5)
            for source in ("v2", "v1", "v2", "v1"):
                swap_in(artifacts[source], artifacts["served"])
                reloaded = server.client.post("/v1/admin/reload", headers=ADMIN)
                assert reloaded.status_code == 200, reloaded.text
                assert reloaded.json()["variants"][0]["swapped"]
                time.sleep(0.4)
        finally:  # a failed reload must not leave the loaders running forever
            stop.set()
        for loader in loaders:
            loader.result()
    assert len(statuses) > 100
    assert set(statuses) == {200}
    assert len(versions) == 2


def test_a_corrupted_artifact_is_refused_and_the_old_one_keeps_serving(
    server: Server, artifacts: dict, members: list[str]
) -> None:
    before = _version(server)
    swap_in(artifacts["corrupted"], artifacts["served"])
    refused = server.client.post("/v1/admin/reload", headers=ADMIN)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "artifact_refused" and "checksum mismatch" in error["message"]
    answer = server.client.get(RECOMMEND.format(members[0]))
    assert answer.status_code == 200 and answer.json()["model_version"] == before
    assert _version(server) == before
    swap_in(artifacts["v1"], artifacts["served"])
    assert server.client.post("/v1/admin/reload", headers=ADMIN).status_code == 200


def test_events_sent_concurrently_with_duplicates_are_stored_exactly_once(
    server: Server, artifacts: dict
) -> None:
    run = uuid.uuid4().hex[:8]
    events = [
        {"event_id": f"dup-{run}-{i}", "event": ("click", "cart", "purchase")[i % 3],
         "member_id": f"load-member-{i % 500}", "item_id": f"I{i % 120:03d}"}
        for i in range(20_000)
    ]  # fmt: skip
    sends = events + events  # every event twice, in different requests and clients
    random.Random(7).shuffle(sends)
    batches = [sends[start : start + 500] for start in range(0, len(sends), 500)]

    def post(batch: list[dict]) -> dict:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            response = client.post("/v1/events", json=batch, headers=WRITE)
            assert response.status_code == 200, response.text
            return response.json()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, batches))
    assert sum(answer["stored"] for answer in answers) == 20_000
    assert sum(answer["duplicates"] for answer in answers) == 20_000
    with sqlite3.connect(artifacts["root"] / "events.db") as database:
        count, distinct = database.execute(
            "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM recsys_events WHERE event_id LIKE ?",
            (f"dup-{run}-%",),
        ).fetchone()
    assert count == distinct == 20_000


def test_every_acknowledged_event_survives_kill_9(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    database = tmp_path / "events.db"
    command = [str(RECSYS), "serve", "--artifact", str(tiny_trained[1]),
               "--events-url", f"sqlite:///{database}"]  # fmt: skip
    server = Server({}, tmp_path / "server.log", command=command).wait()
    acknowledged: list[str] = []
    lock = threading.Lock()

    def post(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for batch in range(10_000):
                ids = [f"k9-{worker}-{batch}-{i}" for i in range(20)]
                body = [{"event_id": event_id, "event": "click", "member_id": f"m{worker}",
                         "item_id": "I001"} for event_id in ids]  # fmt: skip
                try:
                    response = client.post("/v1/events", json=body, headers=WRITE)
                except httpx.TransportError:
                    return  # the server is gone
                if response.is_success:
                    with lock:
                        acknowledged.extend(ids)

    with ThreadPoolExecutor(4) as pool:
        posters = [pool.submit(post, worker) for worker in range(4)]
        deadline = time.monotonic() + 30
        while len(acknowledged) < 2_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        for poster in posters:
            poster.result()
    assert len(acknowledged) >= 2_000
    restarted = Server({}, tmp_path / "restart.log", command=command, port=server.port).wait()
    try:
        with sqlite3.connect(database) as connection:
            stored = {row[0] for row in connection.execute("SELECT event_id FROM recsys_events")}
        assert set(acknowledged) <= stored
        assert restarted.client.get("/readyz").status_code == 200
    finally:
        restarted.stop()


def test_fuzzing_the_openapi_schema_finds_no_server_error(server: Server) -> None:
    """Schemathesis generates requests for every operation of the published schema (valid
    and invalid parameters, bodies and ids), with an admin key so that write routes are
    reached too; no answer may be a 5xx."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    statuses: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.url, headers=ADMIN)
            statuses.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()
    assert len(statuses) > 100 and {200, 422} <= set(statuses)
