"""Live history against a real server: a member's events count when they *occurred* after
the artifact's data ended (its manifest's ``data_end``, else ``created_at``), whenever they
were received and however long after its data the artifact was built."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.serving_helpers import ADMIN, WRITE, Server, copy_artifact, edit_manifest, swap_in

RECOMMEND = "/v1/members/{}/recommendations"


@pytest.fixture(scope="module")
def setup(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path, datetime]]:
    root = tmp_path_factory.mktemp("live")
    served = copy_artifact(tiny_trained[1], root / "served")
    data_end = datetime.fromisoformat(edit_manifest(served)["data_end"])
    running = Server(
        {"RECSYS_ARTIFACT": str(served), "RECSYS_EVENTS_URL": f"sqlite:///{root / 'events.db'}"},
        root / "server.log",
    ).wait()
    yield running, served, data_end
    running.stop()


@pytest.fixture(scope="module")
def clicked(tiny_trained: tuple[Path, Path]) -> list[str]:
    """Three items of one category: clicks that move a stranger off popularity."""
    catalog = pl.read_parquet(tiny_trained[0] / "items.parquet").filter(pl.col("available"))
    category = catalog.group_by("category").len().sort("len")["category"][-1]
    return catalog.filter(pl.col("category") == category)["item_id"][:3].to_list()


def _click(server: Server, member: str, items: list[str], at: datetime | None) -> None:
    events = [
        {"event_id": uuid.uuid4().hex, "event": "click", "member_id": member, "item_id": item,
         **({"timestamp": at.isoformat()} if at is not None else {})}
        for item in items
    ]  # fmt: skip
    response = server.client.post("/v1/events", json=events, headers=WRITE)
    assert response.status_code == 200 and response.json()["stored"] == len(items)


def _personal(server: Server, member: str) -> bool:
    answer = server.client.get(RECOMMEND.format(member), params={"model": "als"}).json()
    return not answer["fallback"]


def _stranger() -> str:
    return f"stranger-{uuid.uuid4().hex[:8]}"


def test_events_before_data_end_do_not_change_the_answer(
    setup: tuple[Server, Path, datetime], clicked: list[str]
) -> None:
    server, _, data_end = setup
    member = _stranger()
    _click(server, member, clicked, data_end - timedelta(days=1))
    assert not _personal(server, member)


def test_events_after_data_end_shape_the_next_answer(
    setup: tuple[Server, Path, datetime], clicked: list[str]
) -> None:
    server, _, data_end = setup
    member = _stranger()
    _click(server, member, clicked, data_end + timedelta(hours=1))
    assert _personal(server, member)


def test_an_artifact_built_long_after_its_data_sees_events_received_before_it_was_built(
    setup: tuple[Server, Path, datetime], clicked: list[str], tmp_path: Path
) -> None:
    """The events were received before this artifact was written, and occurred after its
    data ended: they are live history (counting by arrival after ``created_at`` lost them)."""
    server, served, data_end = setup
    member = _stranger()
    _click(server, member, clicked, None)  # occurred (and received) now
    later = copy_artifact(served, tmp_path / "later")
    edit_manifest(later, created_at=datetime.now(UTC).isoformat())  # after the clicks
    swap_in(later, served)
    assert server.client.post("/v1/admin/reload", headers=ADMIN).json()["variants"][0]["swapped"]
    assert edit_manifest(served)["data_end"] == data_end.isoformat()
    assert _personal(server, member)


def test_without_data_end_live_history_starts_at_created_at(
    setup: tuple[Server, Path, datetime], clicked: list[str], tmp_path: Path
) -> None:
    server, served, _ = setup
    member = _stranger()
    _click(server, member, clicked, None)
    older = copy_artifact(served, tmp_path / "older")
    built = datetime.now(UTC) + timedelta(minutes=2)  # ahead: another version, whatever the clock
    edit_manifest(older, data_end=None, created_at=built.isoformat())
    swap_in(older, served)
    assert server.client.post("/v1/admin/reload", headers=ADMIN).status_code == 200
    assert not _personal(server, member)  # occurred before created_at: not live history
    _click(server, member, clicked, built + timedelta(minutes=1))
    assert _personal(server, member)
