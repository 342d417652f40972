"""Two API replicas that share nothing but one PostgreSQL event store and the model artifact
store: two ``recsys serve`` processes on a throwaway PostgreSQL cluster. An event posted to one
changes the next answer of the other; a reload asked of one reaches the other through the
store, and neither stops answering while it happens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving_helpers import (
    ADMIN,
    Server,
    an_event,
    copy_artifact,
    post_events,
    swap_in,
    throwaway_postgres,
)

RECOMMEND = "/v1/members/{}/recommendations"
FOLLOW_SECONDS = 0.5
SETTLE_SECONDS = 30


@pytest.fixture(scope="module")
def replicas(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server, Path, Path]]:
    """(replica A, replica B, the artifact both serve, a newer version of it)."""
    root = tmp_path_factory.mktemp("replicas")
    shared = copy_artifact(tiny_trained[1], root / "artifact-store" / "latest")
    newer = copy_artifact(tiny_trained[1], root / "v2", created_at="2030-01-01T00:00:00+00:00")
    with throwaway_postgres() as url:
        settings = {
            "RECSYS_ARTIFACT": str(shared), "RECSYS_EVENTS_URL": url,
            "RECSYS_RELOAD_FOLLOW_SECONDS": str(FOLLOW_SECONDS),
        }  # fmt: skip
        started = [Server(settings, root / f"replica-{name}.log") for name in ("a", "b")]
        try:
            first, second = (server.wait() for server in started)
            yield first, second, shared, newer
        finally:
            for server in started:
                server.stop()


def _top_items(server: Server, member: str) -> list[str]:
    response = server.client.get(RECOMMEND.format(member), params={"model": "als"})
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def _version(server: Server) -> str:
    return server.client.get("/readyz").json()["versions"]["default"]


def test_an_event_posted_to_one_replica_changes_the_next_answer_of_the_other(
    replicas: tuple[Server, Server, Path, Path], known_member: str
) -> None:
    first, second, _, _ = replicas
    top = _top_items(second, known_member)[0]
    assert _top_items(first, known_member)[0] == top  # the same artifact, the same answer
    post_events(first, an_event("purchase", known_member, top))
    after = _top_items(second, known_member)
    assert top not in after and len(after) == 10


def test_a_reload_on_one_replica_reaches_the_other_without_interrupting_it(
    replicas: tuple[Server, Server, Path, Path],
) -> None:
    first, second, shared, newer = replicas
    old = _version(second)
    statuses: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with httpx.Client(base_url=second.url, timeout=30) as client:
            while not stop.is_set():
                statuses.append(client.get(RECOMMEND.format("someone")).status_code)

    asking = threading.Thread(target=keep_asking)
    asking.start()
    try:
        swap_in(newer, shared)
        reload = first.client.post("/v1/admin/reload", headers=ADMIN)
        assert reload.status_code == 200 and reload.json()["variants"][0]["swapped"]
        new = _version(first)
        assert new != old
        deadline = time.monotonic() + SETTLE_SECONDS
        while _version(second) != new and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _version(second) == new, second.logs()
    finally:
        stop.set()
        asking.join()
    assert statuses and set(statuses) == {200}, {code: statuses.count(code) for code in statuses}
