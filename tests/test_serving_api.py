"""The API of DESIGN section 5 against a real server (uvicorn subprocess, tiny model
artifact)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from serving.schemas import (
    BatchRecommendationResponse,
    RecommendationResponse,
    SimilarItemsResponse,
)
from tests.cli import run_recsys
from tests.serving_helpers import (
    ADMIN,
    READ,
    WRITE,
    Server,
    an_event,
    holdout_file,
    post_events,
    serve_tiny,
)

RECOMMEND = "/v1/members/{}/recommendations"


@pytest.fixture(scope="module")
def server(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = serve_tiny(tiny_trained[1], tmp_path_factory.mktemp("api"))
    yield running
    running.stop()


def test_a_response_carries_what_attribution_needs(server: Server, known_member: str) -> None:
    response = server.client.get(RECOMMEND.format(known_member), headers={"X-Request-ID": "r-1"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "r-1"
    body = response.json()
    assert {"recommendation_id", "variant", "model", "model_version", "fallback", "items"} <= set(
        body
    )
    assert body["member_id"] == known_member and body["variant"] == "default"
    assert not body["fallback"] and len(body["items"]) == 10
    assert {"item_id", "score", "title", "category"} <= set(body["items"][0])
    assert response.headers["content-type"] == "application/json"


def test_list_responses_match_their_documented_schemas(
    server: Server, known_member: str, catalog: pl.DataFrame
) -> None:
    """The list routes serialise plain dicts themselves; the schemas stay the contract."""
    one = server.client.get(RECOMMEND.format(known_member))
    RecommendationResponse.model_validate_json(one.content, strict=True)
    cold = server.client.get(RECOMMEND.format("someone-new"))
    assert RecommendationResponse.model_validate_json(cold.content, strict=True).fallback
    batch = server.client.post("/v1/recommendations/batch", json={"member_ids": [known_member]})
    BatchRecommendationResponse.model_validate_json(batch.content, strict=True)
    similar = server.client.get(f"/v1/items/{catalog['item_id'][0]}/similar")
    SimilarItemsResponse.model_validate_json(similar.content, strict=True)


def test_lists_are_exactly_n_distinct_items_whatever_the_filters(
    server: Server, known_member: str, catalog: pl.DataFrame
) -> None:
    available = catalog.filter(pl.col("available"))
    category = available.group_by("category").len().sort("len", descending=True)["category"][0]
    in_category = set(available.filter(pl.col("category") == category)["item_id"])
    for member in (known_member, "never-seen-before"):
        for model in ("als", "item_knn", "popular", "content"):
            for n in (1, 7, 30):
                params = {"n": n, "model": model}
                items = [i["item_id"] for i in _recommend(server, member, **params)["items"]]
                assert len(items) == len(set(items)) == n
                filtered = _recommend(server, member, category=category, n=100, model=model)
                ids = [item["item_id"] for item in filtered["items"]]
                assert len(ids) == len(set(ids)) and set(ids) <= in_category
                assert len(ids) >= len(in_category) - 10  # all but the member's purchases


def _recommend(server: Server, member: str, **params: object) -> dict:
    response = server.client.get(RECOMMEND.format(member), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_diversify_caps_items_per_category(server: Server, known_member: str) -> None:
    body = _recommend(server, known_member, n=12, max_per_category=1)
    categories = [item["category"] for item in body["items"]]
    assert len(categories) == 12 and len(set(categories)) == 12


def test_a_category_cap_that_keeps_the_same_items_keeps_the_fallback_flag(
    server: Server, tiny_trained: tuple[Path, Path], catalog: pl.DataFrame
) -> None:
    """A one-category list capped at 2 per category gives way to the same items; the cap's
    deeper look at the category (past what the model ranks) must not flag them fallback."""
    sizes = catalog.filter(pl.col("available")).group_by("category").len()
    category = sizes.sort("len")["category"][-1]  # the largest: more items than n
    members = pl.read_parquet(tiny_trained[0] / "interactions.parquet")["member_id"].unique()
    for member in members.sort()[:10]:
        plain = _recommend(server, member, n=3, category=category)
        capped = _recommend(server, member, n=3, category=category, max_per_category=2)
        assert [i["item_id"] for i in capped["items"]] == [i["item_id"] for i in plain["items"]]
        assert capped["fallback"] == plain["fallback"] == (plain["model"] == "popular")


def test_a_purchase_is_excluded_from_the_very_next_answer(
    server: Server, known_member: str
) -> None:
    before = _recommend(server, known_member, model="als")
    top = before["items"][0]["item_id"]
    post_events(
        server,
        an_event("click", known_member, top, recommendation_id=before["recommendation_id"]),
        an_event("purchase", known_member, top, recommendation_id=before["recommendation_id"]),
    )
    after = _recommend(server, known_member, model="als")
    assert top not in [item["item_id"] for item in after["items"]]
    assert len(after["items"]) == 10


@pytest.mark.parametrize("model", ["als", "item_knn"])
def test_a_new_member_with_three_clicks_gets_personal_recommendations(
    server: Server, catalog: pl.DataFrame, model: str
) -> None:
    member = f"newcomer-{model}-{uuid.uuid4().hex[:6]}"
    cold = _recommend(server, member, model=model)
    assert cold["fallback"] and cold["model"] == "popular"
    video = catalog.filter(pl.col("available")).group_by("category").len().sort("len")
    category = video["category"][-1]
    clicked = catalog.filter(pl.col("category") == category)["item_id"][:3].to_list()
    post_events(server, *(an_event("click", member, item) for item in clicked))
    warm = _recommend(server, member, model=model)
    assert not warm["fallback"] and warm["model"] == model
    categories = [item["category"] for item in warm["items"][:5]]
    assert categories.count(category) >= 3
    assert [i["item_id"] for i in warm["items"]] != [i["item_id"] for i in cold["items"]]


def test_cold_start_from_declared_likes_and_segment(server: Server, catalog: pl.DataFrame) -> None:
    liked = catalog["item_id"][:2].to_list()
    answer = server.client.get(RECOMMEND.format("signup-1"), params={"liked": liked})
    assert answer.status_code == 200
    assert answer.json()["model"] == "content" and answer.json()["fallback"]
    models = server.client.get("/v1/models").json()["variants"][0]
    assert models["loaded"] and "als" in models["models"]
    segmented = server.client.get(RECOMMEND.format("signup-2"), params={"segment": "new"})
    assert segmented.status_code == 200 and segmented.json()["fallback"]
    wrong = server.client.get(RECOMMEND.format("signup-3"), params={"segment": "martians"})
    assert wrong.status_code == 422 and "segment" in wrong.json()["error"]["message"]


def test_a_member_without_events_is_answered_by_their_own_segment_as_exports_do(
    server: Server, tiny_trained: tuple[Path, Path]
) -> None:
    carried = pl.read_parquet(tiny_trained[1] / "members.parquet")
    assert carried.height, "the tiny store has members who never shopped"
    for member_id, segment in carried.select("member_id", "segment").head(5).iter_rows():
        own = server.client.get(RECOMMEND.format(member_id)).json()
        stranger = server.client.get(RECOMMEND.format("nobody"), params={"segment": segment})
        assert own["fallback"]
        assert [i["item_id"] for i in own["items"]] == [
            i["item_id"] for i in stranger.json()["items"]
        ]


def test_batch_answers_each_member_in_order(server: Server, known_member: str) -> None:
    members = [known_member, "someone-new", known_member]
    response = server.client.post("/v1/recommendations/batch", json={"member_ids": members, "n": 4})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["member_id"] for r in results] == members
    assert all(len(r["items"]) == 4 for r in results)
    assert results[0]["recommendation_id"] != results[2]["recommendation_id"]
    too_many = server.client.post(
        "/v1/recommendations/batch", json={"member_ids": [f"m{i}" for i in range(101)]}
    )
    assert too_many.status_code == 422


def test_similar_items_and_unknown_items(server: Server, catalog: pl.DataFrame) -> None:
    item = catalog["item_id"][0]
    similar = server.client.get(f"/v1/items/{item}/similar", params={"n": 5})
    assert similar.status_code == 200
    body = similar.json()
    assert body["item_id"] == item and len(body["items"]) == 5
    assert item not in [entry["item_id"] for entry in body["items"]]
    popular = server.client.get(f"/v1/items/{item}/similar", params={"model": "popular"})
    assert popular.status_code == 422 and "similarity" in popular.json()["error"]["message"]
    missing = server.client.get("/v1/items/no-such-item/similar")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["code"] == "not_found" and "no-such-item" in error["message"]
    assert error["request_id"] == missing.headers["x-request-id"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": 1000}, "n"),
        ({"n": "ten"}, "n"),
        ({"model": "gpt"}, "model"),
        ({"category": "Martian Food"}, "category"),
        ({"max_per_category": 0}, "max_per_category"),
    ],
)
def test_invalid_parameters_get_a_422_naming_the_field(
    server: Server, known_member: str, params: dict, field: str
) -> None:
    response = server.client.get(RECOMMEND.format(known_member), params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"].startswith(f"{field}:"), error
    assert error["request_id"]


def test_every_error_is_json(server: Server) -> None:
    for method, path in [("GET", "/nowhere"), ("DELETE", "/v1/models"), ("POST", "/v1/events")]:
        response = server.client.request(method, path, headers=WRITE, content=b"{not json")
        assert response.status_code in (404, 405, 422)
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()["error"]) >= {"code", "message", "request_id"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"event": "clik", "member_id": "m", "item_id": "i"}', "body.event: Input should be"),
        (b'[{"event": "clik", "member_id": "m", "item_id": "i"}]', "body[0].event: Input should"),
        (b'{"event": "click", "member_id": "m"}', "body.item_id: Field required"),
        (b'"click"', "body: expected EventIn or list[EventIn] (got 'click')"),
        (b'{"event": "click",}', "body: not valid JSON: Expecting property name"),
    ],
    ids=["bad type", "bad type in a list", "missing field", "not an object", "malformed JSON"],
)
def test_a_bad_event_gets_a_422_that_leads_with_the_useful_line(
    server: Server, body: bytes, message: str
) -> None:
    headers = {**WRITE, "Content-Type": "application/json"}
    response = server.client.post("/v1/events", content=body, headers=headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"].startswith(message), error
    # The branch of the body's union that did not apply is not reported at all.
    assert "EventIn" not in error["message"].removeprefix(message)
    assert "valid list" not in error["message"] and "(got {})" not in error["message"]


def test_write_and_admin_routes_need_a_key(server: Server) -> None:
    event = an_event("click", "m", "i")
    assert server.client.post("/v1/events", json=event).status_code == 401
    assert server.client.post("/v1/events", json=event, headers={"X-API-Key": "x"}).status_code == (
        401
    )
    assert server.client.post("/v1/events", json=event, headers=READ).status_code == 403
    assert server.client.post("/v1/admin/reload").status_code == 401
    assert server.client.post("/v1/admin/reload", headers=WRITE).status_code == 403
    assert server.client.post("/v1/events", json=event, headers=ADMIN).status_code == 200
    unauthorized = server.client.post("/v1/admin/reload")
    assert unauthorized.json()["error"]["code"] == "unauthorized"
    # A newcomer's first 401 says where keys come from.
    assert "RECSYS_API_KEYS" in unauthorized.json()["error"]["message"]
    invalid = server.client.post("/v1/events", json=event, headers={"X-API-Key": "nope"})
    assert invalid.status_code == 401
    assert "not valid" in invalid.json()["error"]["message"]
    assert "make demo" in invalid.json()["error"]["message"]


def test_ctr_report_counts_served_lists_with_intervals(server: Server, known_member: str) -> None:
    start = datetime.now(UTC)
    lists = [_recommend(server, known_member, n=5) for _ in range(4)]
    for served in lists[:2]:  # two clicks (one repeated) and one purchase, all attributed
        item = served["items"][0]["item_id"]
        click = an_event("click", known_member, item, recommendation_id=served["recommendation_id"])
        post_events(server, click, {**click, "event_id": uuid.uuid4().hex})
    bought = lists[0]["items"][1]["item_id"]
    post_events(
        server,
        an_event("purchase", known_member, bought, recommendation_id=lists[0]["recommendation_id"]),
        an_event("click", known_member, bought, recommendation_id="not-a-served-list"),
    )
    end = datetime.now(UTC)
    params = {"from": start.isoformat(), "to": end.isoformat(), "group_by": "model"}
    report = server.client.get("/v1/reports/ctr", params=params)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["group_by"] == "model" and body["confidence"] == 0.95
    total = body["total"]
    assert (total["impressions"], total["clicks"], total["conversions"]) == (20, 2, 1)
    assert total["ctr"]["value"] == pytest.approx(0.1)
    assert 0 < total["ctr"]["low"] < 0.1 < total["ctr"]["high"] < 1
    assert [group["key"] for group in body["groups"]] == [lists[0]["model"]]
    for group_by in ("variant", "segment", "day"):
        grouped = server.client.get("/v1/reports/ctr", params={**params, "group_by": group_by})
        assert grouped.json()["total"]["impressions"] == 20
    backwards = server.client.get("/v1/reports/ctr", params={"from": end.isoformat(),
                                                             "to": start.isoformat()})  # fmt: skip
    assert backwards.status_code == 422


def test_evaluation_report_as_json_and_html(server: Server) -> None:
    as_json = server.client.get("/v1/reports/evaluation")
    assert as_json.status_code == 200
    assert "models" in as_json.json() and "chosen" in as_json.json()
    as_html = server.client.get("/v1/reports/evaluation", headers={"Accept": "text/html"})
    assert as_html.status_code == 200
    assert as_html.headers["content-type"].startswith("text/html")
    assert "<html" in as_html.text.lower()


def test_health_readiness_and_metrics(server: Server, known_member: str) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok"}
    ready = server.client.get("/readyz").json()
    _recommend(server, "a-stranger-for-the-fallback-counter")
    _recommend(server, known_member)
    text = server.client.get("/metrics").text
    route = 'route="/v1/members/{member_id}/recommendations"'
    assert f'recsys_http_request_duration_seconds_bucket{{le="0.025",method="GET",{route}}}' in (
        text
    )
    assert 'recsys_fallbacks_total{variant="default"}' in text
    assert (
        f'recsys_model_info{{variant="default",version="{ready["versions"]["default"]}"}} 1.0'
        in (text)
    )
    assert 'recsys_events_total{event="click",outcome="stored"}' in text


def test_openapi_documents_every_route_with_examples(server: Server) -> None:
    schema = server.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/v1/members/{member_id}/recommendations", "/v1/recommendations/batch",
        "/v1/items/{item_id}/similar", "/v1/events", "/v1/reports/ctr",
        "/v1/reports/evaluation", "/v1/models", "/v1/admin/reload", "/healthz", "/readyz",
        "/metrics",
    } <= paths  # fmt: skip
    text = json.dumps(schema)
    assert '"examples"' in text and "X-API-Key" in text
    assert server.client.get("/docs").status_code == 200


@pytest.mark.parametrize(("page", "kinds"), [("/docs", {"js", "css"}), ("/redoc", {"js"})])
def test_api_docs_pages_load_their_assets_from_the_server_not_a_cdn(
    server: Server, page: str, kinds: set[str]
) -> None:
    html = server.client.get(page).text
    urls = set(re.findall(r"""(?:src|href|spec-url)=["']([^"']+)["']""", html))
    urls |= set(re.findall(r"""url: ?["']([^"']+)["']""", html))
    assert urls, html
    assert not [url for url in urls if "//" in url], f"{page} loads from elsewhere: {urls}"
    types = {"js": "javascript", "css": "text/css"}
    served = set()
    for url in urls - {"/openapi.json"}:
        asset = server.client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
        served |= {kind for kind, name in types.items() if name in asset.headers["content-type"]}
    assert served >= kinds


def test_simulate_replays_a_test_period_into_the_ctr_report(
    server: Server, tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    test_file = holdout_file(tiny_trained[0], tmp_path / "test.parquet")
    started = time.time()
    result = run_recsys(
        "simulate", "--url", server.url, "--test-file", test_file, "--members", 60,
        "--concurrency", 4, "--api-key", "boss", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["members"] == 60 and summary["failures"] == 0
    assert summary["impressions"] == 600 and summary["clicks"] > 0
    window = {"from": datetime.fromtimestamp(started, UTC).isoformat()}
    report = server.client.get("/v1/reports/ctr", params=window).json()["total"]
    assert report["impressions"] >= 600 and report["clicks"] == summary["clicks"]
