"""The dashboard's JSON routes against a real server of the tiny model artifact, and the key
figures of ``training.member_kpis`` on a table small enough to check by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tests.serving_helpers import READ, Server, an_event, post_events, serve_tiny
from training.member_kpis import KPIS_FILE, member_kpis
from training.member_profiles import build_member_profiles


@pytest.fixture(scope="module")
def server(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = serve_tiny(
        tiny_trained[1],
        tmp_path_factory.mktemp("dashboard-api"),
        {
            "RECSYS_REQUIRE_READ_KEY": "true",
            "MLFLOW_TRACKING_URI": "",  # no registry, whatever the environment says
        },
    )
    running.client.headers.update(READ)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def members(tiny_trained: tuple[Path, Path]) -> pl.DataFrame:
    return pl.read_parquet(tiny_trained[0] / "members.parquet")


def test_the_overview_reports_the_artifacts_figures(server: Server, members: pl.DataFrame) -> None:
    body = server.client.get("/v1/dashboard/overview").json()
    figures = body["figures"]
    assert figures["members"] == members.height
    assert 0 < figures["active_members"] <= figures["members"]
    assert figures["average_order_value"] == pytest.approx(figures["revenue"] / figures["orders"])
    assert 0 <= figures["repurchase_rate"] <= 1
    assert sum(row["members"] for row in body["members_by_segment_tier"]) == members.height
    tiers = {row["tier"] for row in body["members_by_segment_tier"]}
    assert tiers == set(members["tier"].unique())  # the members file's declared tiers
    months = body["months"]
    assert months and [m["month"] for m in months] == sorted(m["month"] for m in months)
    assert body["reference_time"].startswith(months[-1]["month"])


def test_the_overview_carries_every_figure_of_kpis_json(
    server: Server, tiny_trained: tuple[Path, Path]
) -> None:
    """The schema drops nothing: the dashboard shows what the member report draws."""
    kpis = json.loads((tiny_trained[1] / KPIS_FILE).read_text())
    body = server.client.get("/v1/dashboard/overview").json()
    for key in kpis.keys() - {"reference_time", "data_start"}:  # datetimes: ISO either way
        assert body[key] == kpis[key], key
    cohorts = body["cohorts"]
    assert cohorts["members_by_joined_at"] > 0  # the generated members file has joined_at
    assert sum(row["members"] for row in body["purchase_frequency"]) == body["figures"]["members"]


def test_read_routes_refuse_without_the_read_key(server: Server) -> None:
    for path in ("/v1/dashboard/overview", "/v1/dashboard/members", "/v1/members/M001/profile"):
        response = server.client.get(path, headers={"X-API-Key": ""})
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthorized"
    page = server.client.get("/", headers={"X-API-Key": ""})  # the page holds no data
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert server.client.get("/dashboard/vendor/chart.umd.min.js").status_code == 200


def test_member_search_matches_part_of_an_id_in_any_case(server: Server) -> None:
    body = server.client.get("/v1/dashboard/members", params={"q": "m00", "limit": 3}).json()
    assert [m["member_id"] for m in body["members"]] == ["M001", "M002", "M003"]
    assert body["total"] == 9  # M001 .. M009 among 400 members
    bad = server.client.get("/v1/dashboard/members", params={"limit": 0})
    assert bad.status_code == 422 and "limit" in bad.json()["error"]["message"]


def test_a_profile_carries_segment_and_declared_tier(
    server: Server, members: pl.DataFrame, tiny_trained: tuple[Path, Path]
) -> None:
    member = members.row(1, named=True)
    body = server.client.get(f"/v1/members/{member['member_id']}/profile").json()
    assert body["tier"] == member["tier"]
    profiles = pl.read_parquet(tiny_trained[1] / "member_profiles.parquet")
    expected = profiles.filter(pl.col("member_id") == member["member_id"]).row(0, named=True)
    assert (body["segment"], body["orders"]) == (expected["segment"], expected["frequency"])
    # The scores are the artifact's (null where it has none): never invented by serving.
    assert body.get("churn_risk") == expected.get("churn_risk")
    missing = server.client.get("/v1/members/NOBODY/profile")
    assert missing.status_code == 404 and "NOBODY" in missing.json()["error"]["message"]


def test_history_shows_trained_items_and_events_posted_since(server: Server) -> None:
    before = server.client.get("/v1/members/M002/history").json()
    assert before["trained"] and before["trained"][0]["weight"] >= before["trained"][-1]["weight"]
    item = before["trained"][-1]["item_id"]
    post_events(server, an_event("cart", "M002", item))
    after = server.client.get("/v1/members/M002/history").json()
    assert [(e["item_id"], e["event"]) for e in after["live"]][:1] == [(item, "cart")]
    assert after["live"][0]["title"] == before["trained"][-1]["title"]


def test_the_ctr_report_splits_groups_by_day(server: Server) -> None:
    served = server.client.get("/v1/members/M003/recommendations", params={"n": 4}).json()
    item = served["items"][0]["item_id"]
    post_events(
        server, an_event("click", "M003", item, recommendation_id=served["recommendation_id"])
    )
    response = server.client.get("/v1/reports/ctr", params={"group_by": "model", "per_day": "true"})
    body = response.json()
    assert body["per_day"] is True
    [row] = [g for g in body["groups"] if g["key"] == served["model"]]
    assert row["day"] == datetime.now(UTC).strftime("%Y-%m-%d")  # served just now
    assert row["clicks"] >= 1 and row["impressions"] >= 4
    totals = server.client.get("/v1/reports/ctr", params={"group_by": "model"}).json()
    assert all(g["day"] is None for g in totals["groups"])
    assert totals["total"] == body["total"]


def test_the_registry_says_when_no_tracking_uri_is_configured(server: Server) -> None:
    body = server.client.get("/v1/dashboard/registry").json()
    assert body["configured"] is False and body["versions"] == []
    assert "MLFLOW_TRACKING_URI" in body["message"]


def test_the_routes_are_documented(server: Server) -> None:
    paths = server.client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/dashboard/overview",
        "/v1/dashboard/members",
        "/v1/dashboard/registry",
        "/v1/members/{member_id}/profile",
        "/v1/members/{member_id}/history",
    ):
        assert "200" in paths[path]["get"]["responses"], path
    assert "/" not in paths


def _purchase(member: str, when: str, order: str, price: float, quantity: int = 1) -> dict:
    return {"member_id": member, "item_id": "I1", "event": "purchase",
            "timestamp": datetime.fromisoformat(when), "quantity": quantity, "price": price,
            "order_id": order}  # fmt: skip


def test_key_figures_by_hand() -> None:
    interactions = pl.DataFrame([
        _purchase("A", "2025-06-01T10:00", "o1", 10.0, 2),  # 20
        _purchase("A", "2025-06-20T10:00", "o2", 30.0),
        _purchase("B", "2025-06-25T10:00", "o3", 50.0),
        _purchase("C", "2025-01-10T10:00", "o4", 99.0),  # outside the 90 days
    ])  # fmt: skip
    reference = datetime(2025, 6, 30)
    profiles = build_member_profiles(interactions, reference)
    kpis = member_kpis(interactions, profiles, reference)
    assert kpis["figures"] == {
        "members": 3, "active_members": 2, "orders": 3, "revenue": 100.0,
        "average_order_value": pytest.approx(100.0 / 3), "repurchase_rate": 0.5,
    }  # fmt: skip
    months = {m["month"]: m for m in kpis["months"]}
    assert (months["2025-06"]["revenue"], months["2025-06"]["active_members"]) == (100.0, 2)
    assert months["2025-01"]["complete"] is False  # the data starts on the 10th
    assert months["2025-06"]["complete"] is True  # and runs to the 30th
    assert {row["tier"] for row in kpis["members_by_segment_tier"]} == {None}  # none declared
