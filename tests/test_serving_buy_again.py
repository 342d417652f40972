"""``GET /v1/members/{id}/buy-again`` against a real server of the tiny model artifact: the
list the table ranks, a live purchase resetting an item's clock at once, a member known nowhere
a 404 (one known by the members file or by live events a list), bad parameters a 422, older
artifacts a 404, and every list served (a recommendation id, counted in the CTR report)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from serving.schemas.buy_again import BuyAgainResponse
from tests.serving_helpers import (
    Server,
    an_event,
    copy_artifact,
    edit_manifest,
    post_events,
    serve_tiny,
)
from training.artifact import load_artifact
from training.artifact.layout import ITEM_CYCLES_FILE, PURCHASE_CYCLES_FILE
from training.buy_again import BuyAgainTable
from training.models import MODEL_CLASSES
from training.recommend import ArtifactRecommender


@pytest.fixture(scope="module")
def table(tiny_trained: tuple[Path, Path]) -> BuyAgainTable:
    found = BuyAgainTable.of(
        ArtifactRecommender(load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES))
    )
    assert found is not None
    return found


@pytest.fixture(scope="module")
def server(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = serve_tiny(tiny_trained[1], tmp_path_factory.mktemp("buy-again-api"))
    yield running
    running.stop()


def _members_with_lists(tiny_trained: tuple[Path, Path], table: BuyAgainTable) -> list[str]:
    artifact = load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES)
    found = table.answer(np.arange(len(artifact.member_ids)), 10)
    return artifact.member_ids.external_ids[found.counts() >= 2].tolist()


def _at(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def test_the_list_is_the_tables_most_due_first_with_due_dates_and_reasons(
    server: Server, tiny_trained: tuple[Path, Path], table: BuyAgainTable
) -> None:
    member = _members_with_lists(tiny_trained, table)[0]
    response = server.client.get(f"/v1/members/{member}/buy-again", params={"n": 10})
    assert response.status_code == 200, response.text
    body = BuyAgainResponse.model_validate(response.json())
    artifact = load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES)
    expected = table.answer(np.array([artifact.member_ids.index_of(member)]), 10)
    count = int(expected.counts()[0])
    assert [item.item_id for item in body.items] == (
        artifact.item_ids.external_ids[expected.items[0, :count]].tolist()
    )
    assert [item.reason for item in body.items] == expected.reasons()[0]
    scores = [item.score for item in body.items]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert body.known and body.model == "buy-again" and not body.fallback and body.note is None
    assert body.as_of == body.live_since and body.live_purchases == 0
    for item in body.items:
        assert item.due_date == item.last_purchase + timedelta(days=item.cycle_days)
        assert item.due_in_days == pytest.approx((item.due_date - body.as_of) / timedelta(days=1))
        assert item.title is not None and item.reason.startswith("bought ")
    shorter = server.client.get(f"/v1/members/{member}/buy-again", params={"n": 1}).json()
    assert [item["item_id"] for item in shorter["items"]] == [body.items[0].item_id]


def test_a_live_purchase_resets_the_items_clock_at_once(
    server: Server, tiny_trained: tuple[Path, Path], table: BuyAgainTable
) -> None:
    member = _members_with_lists(tiny_trained, table)[1]
    url = f"/v1/members/{member}/buy-again"
    before = server.client.get(url, params={"n": 10}).json()
    item = before["items"][0]
    bought = (_at(before["live_since"]) + timedelta(days=2)).replace(microsecond=0)
    stamp = bought.isoformat().replace("+00:00", "Z")
    post_events(server, an_event("purchase", member, item["item_id"], timestamp=stamp))
    after = server.client.get(url, params={"n": 10}).json()
    assert after["live_purchases"] == 1 and _at(after["as_of"]) == bought
    [again] = [entry for entry in after["items"] if entry["item_id"] == item["item_id"]]
    assert _at(again["last_purchase"]) == bought
    assert again["occasions"] == item["occasions"] + 1
    assert _at(again["due_date"]) == bought + timedelta(days=again["cycle_days"])
    assert again["due_in_days"] == pytest.approx(again["cycle_days"])
    assert "last bought today" in again["reason"]
    # Just bought: no longer the most due (the clock starts again at 0).
    assert after["items"][0]["item_id"] != item["item_id"]
    later = (bought + timedelta(days=again["cycle_days"])).isoformat()
    due = server.client.get(url, params={"n": 10, "as_of": later}).json()
    [judged] = [entry for entry in due["items"] if entry["item_id"] == item["item_id"]]
    assert judged["due_in_days"] == pytest.approx(0.0, abs=1e-6) and judged["score"] > 0


def test_a_member_known_nowhere_is_a_404_and_one_known_since_gets_their_purchases(
    server: Server, tiny_trained: tuple[Path, Path], table: BuyAgainTable
) -> None:
    missing = server.client.get("/v1/members/NOBODY-AT-ALL/buy-again")
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["code"] == "not_found"
    assert "unknown member 'NOBODY-AT-ALL'" in missing.json()["error"]["message"]
    # A member of the members file who never bought anything: an empty, explained list.
    indexed = set(pl.read_parquet(tiny_trained[0] / "interactions.parquet")["member_id"])
    quiet = next(m for m in pl.read_parquet(tiny_trained[0] / "members.parquet")["member_id"]
                 if m not in indexed)  # fmt: skip
    body = server.client.get(f"/v1/members/{quiet}/buy-again").json()
    assert body["items"] == [] and body["known"] is False and "bought nothing" in body["note"]
    # A member newer than the artifact: their live purchase of an item with a cycle is on
    # their list at once, with the item's cycle.
    artifact = load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES)
    available = ArtifactRecommender(artifact).allowed_items()
    cycles = pl.read_parquet(artifact.extra_files[ITEM_CYCLES_FILE])["median_interval_days"]
    item = next(i for i in range(len(artifact.item_ids))
                if available[i] and cycles[i] is not None)  # fmt: skip
    item_id = str(artifact.item_ids.external_ids[item])
    bought = datetime.fromtimestamp(table.since, UTC) + timedelta(hours=5)
    stamp = bought.isoformat().replace("+00:00", "Z")
    post_events(server, an_event("purchase", "NEW-BUYER", item_id, timestamp=stamp))
    new = server.client.get("/v1/members/NEW-BUYER/buy-again").json()
    assert new["known"] is False and new["live_purchases"] == 1
    [listed] = new["items"]
    assert listed["item_id"] == item_id and listed["occasions"] == 1
    assert listed["cycle_days"] == pytest.approx(max(cycles[item], 1.0))
    assert listed["reason"].startswith("bought once today")


def test_bad_parameters_are_a_422_naming_the_field(server: Server) -> None:
    for params, field in (({"n": 0}, "n"), ({"n": 101}, "n"), ({"n": "ten"}, "n"),
                          ({"as_of": "yesterday"}, "as_of")):  # fmt: skip
        response = server.client.get("/v1/members/M001/buy-again", params=params)
        assert response.status_code == 422, params
        assert response.json()["error"]["details"][0]["field"] == field
    early = server.client.get("/v1/members/M001/buy-again", params={"as_of": "2020-01-01"})
    assert early.status_code == 422
    assert early.json()["error"]["code"] == "invalid_parameter"
    assert "before the data's end" in early.json()["error"]["message"]


def test_lists_are_served_and_counted_under_their_model(server: Server) -> None:
    body = server.client.get("/v1/members/M001/buy-again").json()
    assert len(body["recommendation_id"]) == 32
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the impressions flush every 0.2 s
        report = server.client.get("/v1/reports/ctr", params={"group_by": "model"}).json()
        if any(group["key"] == "buy-again" for group in report["groups"]):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no buy-again group in the CTR report: {report}")
    documented = server.client.get("/openapi.json").json()["paths"]
    parameters = documented["/v1/members/{member_id}/buy-again"]["get"]["parameters"]
    assert {p["name"] for p in parameters} >= {"member_id", "n", "as_of"}


def test_an_artifact_without_purchase_cycles_is_a_404_that_says_to_retrain(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    old = copy_artifact(tiny_trained[1], tmp_path / "old")
    manifest = edit_manifest(old)
    for name in (ITEM_CYCLES_FILE, PURCHASE_CYCLES_FILE):
        (old / name).unlink()
        manifest["files"].pop(name)
    kept = [name for name in manifest["extra_files"]
            if name not in (ITEM_CYCLES_FILE, PURCHASE_CYCLES_FILE)]  # fmt: skip
    edit_manifest(old, extra_files=kept, files=manifest["files"])
    running = serve_tiny(old, tmp_path / "serving")
    try:
        response = running.client.get("/v1/members/M001/buy-again")
        assert response.status_code == 404 and "retrain" in response.json()["error"]["message"]
        # Recommendations still answer, their repeatable mask from the catalog alone.
        assert running.client.get("/v1/members/M001/recommendations").status_code == 200
    finally:
        running.stop()
