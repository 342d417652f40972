"""Erasure on request and the audit log: ``DELETE /v1/members/{id}``, ``recsys members forget``,
``GET /v1/admin/audit``.

The member must be gone from the event store (events, campaign sends, served lists), from every
answer of the loaded model artifact (on every worker), from the exports, and from the next
artifact; each admin or write action leaves an audit entry naming the key by its id only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from serving.audit import AuditLog, audited, key_actor
from serving.erasure import erased_member_ids, forget_members
from serving.event_store import EventStore
from tests.cli import run_recsys
from tests.serving_helpers import (
    ADMIN,
    READ,
    Server,
    an_event,
    copy_artifact,
    post_events,
    recsys_serve,
    throwaway_postgres,
)
from training.campaigns import CampaignSend

#: Seconds within which every worker follows an erasure (RECSYS_RELOAD_FOLLOW_SECONDS is 1).
FOLLOW_DEADLINE = 10.0


def _ids(frame_path: Path) -> set[str]:
    return set(pl.read_csv(frame_path)["member_id"].cast(pl.Utf8).to_list())


def _rows(database: Path, query: str, *parameters: object) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query, parameters).fetchall()


def _until(check: Callable[[], bool], deadline: float = FOLLOW_DEADLINE) -> bool:
    """Whether ``check`` holds on 20 fresh connections in a row before ``deadline`` seconds
    (fresh connections land on either worker)."""
    ends = time.monotonic() + deadline
    in_a_row = 0
    while time.monotonic() < ends and in_a_row < 20:
        in_a_row = in_a_row + 1 if check() else 0
    return in_a_row >= 20


@pytest.fixture(scope="module")
def server(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("erasure-server")
    served = copy_artifact(tiny_trained[1], root / "artifact")
    settings = {
        "RECSYS_ARTIFACT": str(served),
        "RECSYS_EVENTS_URL": f"sqlite:///{root / 'events.db'}",
    }
    running = Server(settings, root / "server.log", command=recsys_serve("--workers", "2")).wait()
    yield running
    running.stop()


def _fresh_get(server: Server, path: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.get(path)


def test_an_erased_member_is_gone_from_the_store_and_from_every_workers_answers(
    server: Server, known_member: str, tiny_trained: tuple[Path, Path]
) -> None:
    member = known_member
    database = Path(server.log.parent / "events.db")
    items = pl.read_parquet(tiny_trained[0] / "items.parquet")["item_id"].head(3).to_list()
    post_events(server, *(an_event("purchase", member, item) for item in items))
    personal = server.client.get(f"/v1/members/{member}/recommendations?n=10").json()
    assert personal["fallback"] is False
    assert server.client.get(f"/v1/members/{member}/profile").status_code == 200
    never_seen = server.client.get("/v1/members/never-seen-member/recommendations?n=10").json()

    assert server.client.delete(f"/v1/members/{member}", headers=READ).status_code == 403
    response = server.client.delete(f"/v1/members/{member}", headers=ADMIN)
    assert response.status_code == 200, response.text
    erased = response.json()
    assert erased["member_id"] == member and erased["first_erasure"] is True
    assert erased["events_deleted"] == len(items)
    assert _rows(database, "SELECT count(*) FROM recsys_events WHERE member_id = ?", member) == [
        (0,)
    ]

    def answered_as_never_seen() -> bool:
        answer = _fresh_get(server, f"/v1/members/{member}/recommendations?n=10").json()
        listed = [item["item_id"] for item in answer["items"]]
        return (
            answer["member_id"] == member
            and answer["fallback"] is True
            and listed == [item["item_id"] for item in never_seen["items"]]
            and _fresh_get(server, f"/v1/members/{member}/profile").status_code == 404
        )

    assert _until(answered_as_never_seen), "a worker still answers the member from the artifact"
    history = server.client.get(f"/v1/members/{member}/history").json()
    assert history["trained"] == [] and history["live"] == []
    search = server.client.get("/v1/dashboard/members", params={"q": member}).json()
    assert member not in [match["member_id"] for match in search["members"]]
    buy_again = server.client.get(f"/v1/members/{member}/buy-again")  # as for a member never seen
    assert buy_again.status_code == 404 and repr(member) in buy_again.json()["error"]["message"]

    counts = post_events(server, an_event("view", member, items[0]))
    assert (counts["stored"], counts["erased"]) == (0, 1)
    time.sleep(0.5)  # served lists are flushed every 0.2 s
    assert _rows(database, "SELECT count(*) FROM recsys_events WHERE member_id = ?", member) == [
        (0,)
    ]
    assert _rows(database, "SELECT count(*) FROM recsys_served WHERE member_id = ?", member) == [
        (0,)
    ]

    again = server.client.delete(f"/v1/members/{member}", headers=ADMIN).json()
    assert again["first_erasure"] is False and again["events_deleted"] == 0


def test_admin_actions_are_audited_by_key_id_with_their_outcome(
    server: Server, known_member: str
) -> None:
    assert server.client.post("/v1/admin/reload", headers=ADMIN).status_code == 200
    refused = server.client.post("/v1/admin/reload?variant=nope", headers=ADMIN)
    assert refused.status_code == 422
    server.client.delete("/v1/members/audited-member", headers=ADMIN)
    assert server.client.get("/v1/admin/audit", headers=READ).status_code == 403

    def entries(**params: str) -> list[dict]:
        response = server.client.get("/v1/admin/audit", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        return response.json()["entries"]

    boss = key_actor(next(iter(ADMIN.values())))
    reloads = entries(action="reload")
    assert [entry["outcome"] for entry in reloads[:2]] == ["refused", "ok"]
    assert reloads[0]["target"] == "nope" and "variant" in reloads[0]["detail"]["error"]
    assert reloads[1]["target"] == "all variants" and reloads[1]["detail"]["versions"]
    [erase] = [entry for entry in entries(action="erase") if entry["target"] == "audited-member"]
    assert erase["actor"] == boss and erase["outcome"] == "ok"
    assert erase["detail"]["events_deleted"] == 0
    everything = entries(limit="1000")
    assert all(entry["actor"] == boss for entry in everything)
    assert next(iter(ADMIN.values())) not in json.dumps(everything), "a key in the audit log"
    first_page = entries(limit="2")
    older = entries(limit="2", before=str(first_page[-1]["id"]))
    assert [entry["id"] for entry in first_page + older] == [e["id"] for e in everything[:4]]
    assert entries(action="erase", since="2999-01-01T00:00:00") == []
    assert server.client.get("/v1/admin/audit?limit=0", headers=ADMIN).status_code == 422


def _store(url: str) -> EventStore:
    return EventStore.open(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
        return
    with throwaway_postgres() as url:
        yield url


def test_forgetting_deletes_events_and_sends_and_unlinks_served_lists(store_url: str) -> None:
    store = _store(store_url)
    try:
        store.add_events([
            {"event_id": f"e{n}", "event": "purchase", "member_id": member, "item_id": "I1",
             "recommendation_id": None, "occurred_at": 1.0, "received_at": 1.0}
            for n, member in enumerate(["gone", "gone", "stays"])
        ])  # fmt: skip
        store.add_served([
            {"recommendation_id": f"r{n}", "served_at": 1.0, "member_id": member,
             "item_id": None, "variant": "main", "model": "als", "model_version": "v1",
             "segment": None, "fallback": False, "n_items": 3, "item_ids": "[]"}
            for n, member in enumerate(["gone", "stays"])
        ])  # fmt: skip
        store.record([
            CampaignSend("c1", "winback", member, "treatment", ("I1",), None, 1.0)
            for member in ["gone", "stays"]
        ])  # fmt: skip
        [erasure] = forget_members(store, ["gone", "gone"], "cli:tester")
        assert (erasure.events_deleted, erasure.sends_deleted, erasure.served_unlinked) == (2, 1, 1)
        assert erasure.first
        assert {event.member_id for event in store.member_events(["gone", "stays"], 0)} == {"stays"}
        assert [send.member_id for send in store.sends(member_ids=["gone", "stays"])] == ["stays"]
        assert erased_member_ids(store) == frozenset({"gone"})
        assert sum(group.impressions for group in store.ctr_counts("model", None, None)) == 6
        [repeat] = forget_members(store, ["gone"], "cli:tester")
        assert not repeat.first and repeat.events_deleted == 0
    finally:
        store.close()


def test_an_audited_block_records_refusals_and_failures_and_reraises(tmp_path: Path) -> None:
    from features.errors import ConfigError

    store = _store(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        with audited(store, "cli:tester", "promote", "m@champion") as entry:
            entry.detail["automatic"] = False
        with pytest.raises(ConfigError), audited(store, "cli:tester", "promote", "x"):
            raise ConfigError("no such version")
        with pytest.raises(RuntimeError), audited(store, "cli:tester", "campaign export"):
            raise RuntimeError("disk full")
        newest_first = AuditLog(store).read()
        assert [(r.action, r.outcome) for r in newest_first] == [
            ("campaign export", "failed"), ("promote", "refused"), ("promote", "ok"),
        ]  # fmt: skip
        assert newest_first[0].detail["error"] == "RuntimeError: disk full"
        assert newest_first[2].detail == {"automatic": False}
    finally:
        store.close()


def test_forget_on_the_command_line_reaches_exports_campaigns_and_the_next_artifact(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    store, artifact = tiny_trained
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    members = pl.read_parquet(store / "interactions.parquet")["member_id"].unique().sort()
    gone = [str(members[0]), str(members[1])]
    listed = tmp_path / "gone.txt"
    listed.write_text(gone[1] + "\n\n")

    result = run_recsys("members", "forget", gone[0], "--from-file", listed,
                        "--events-url", events_url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "erased 2 member(s)" in result.stdout
    assert run_recsys("members", "forget", "--events-url", events_url).returncode == 2

    exported = tmp_path / "lists.csv"
    result = run_recsys("export", "--artifact", artifact, "--out", exported,
                        "--events-url", events_url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 erased on request left out" in result.stdout.replace("\n", " ")
    assert not _ids(exported) & set(gone) and _ids(exported)

    campaign = tmp_path / "campaign.csv"
    result = run_recsys("campaign", "export", "--artifact", artifact, "--out", campaign,
                        "--campaign", "winback", "--events-url", events_url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not _ids(campaign) & set(gone)
    held_out = pl.read_csv(campaign.with_name("campaign.excluded.csv"))["member_id"].cast(pl.Utf8)
    assert not set(held_out.to_list()) & set(gone)

    retrained = tmp_path / "retrained"
    result = run_recsys(
        "train", "-i", store / "interactions.parquet", "--members", store / "members.parquet",
        "--out", retrained, "--models", "popular", "--trials", "1", "--list-depth", "0",
        "--events-url", events_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((retrained / "metrics.json").read_text())
    assert metrics["erasures"]["erased_members"] == 2
    assert metrics["erasures"]["rows_dropped"]["interactions"] > 0
    assert metrics["erasures"]["rows_dropped"]["members"] == 2
    opened = EventStore.open(events_url)
    try:
        actions = [(entry.action, entry.outcome) for entry in AuditLog(opened).read()]
    finally:
        opened.close()
    assert ("erase", "ok") in actions and ("campaign export", "ok") in actions
    from training.artifact import load_artifact
    from training.models import MODEL_CLASSES

    opened_artifact = load_artifact(retrained, model_classes=MODEL_CLASSES)
    assert not set(gone) & set(opened_artifact.member_ids.external_ids.tolist())
    for path in retrained.rglob("*.parquet"):
        frame = pl.read_parquet(path)
        if "member_id" in frame.columns:
            assert not set(gone) & set(frame["member_id"].cast(pl.Utf8).to_list()), path


def test_a_promotion_is_audited(tmp_path: Path) -> None:
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    result = run_recsys("promote", "7", "--tracking-uri", f"sqlite:///{tmp_path / 'ml.db'}",
                        "--events-url", events_url)  # fmt: skip
    assert result.returncode != 0  # no such registered model
    opened = EventStore.open(events_url)
    try:
        [entry] = AuditLog(opened).read(action="promote")
    finally:
        opened.close()
    assert entry.outcome in ("refused", "failed") and entry.target == (
        "member-recsys@champion -> version 7"
    )
    assert entry.detail["automatic"] is False and entry.actor.startswith("cli:")


def test_forget_erases_the_pseudonym_when_ids_are_pseudonymised(tmp_path: Path) -> None:
    import os
    import subprocess

    from features.pseudonyms import KEY_VARIABLE, MemberPseudonyms
    from tests.cli import RECSYS

    key = "a-retailer-secret-of-some-length"
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    result = subprocess.run(
        [str(RECSYS), "members", "forget", "M0042", "--events-url", events_url],
        capture_output=True, text=True, timeout=120, env={**os.environ, KEY_VARIABLE: key},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    opened = EventStore.open(events_url)
    try:
        assert erased_member_ids(opened) == {MemberPseudonyms(key).of("M0042")}
        assert "M0042" not in json.dumps([entry.target for entry in AuditLog(opened).read()])
    finally:
        opened.close()
