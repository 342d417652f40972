"""The application in-process: settings come from the ``get_settings`` dependency, which a
test (or an embedding application) overrides, and a deployment can require keys for reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import polars as pl
import pytest

from serving.app import create_app
from serving.fast_lane import StorefrontLane
from serving.settings import Role, Settings, get_settings


def test_overridden_settings_can_require_a_key_for_reads(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    settings = Settings(
        artifact=tiny_trained[1],
        events_url=f"sqlite:///{tmp_path / 'events.db'}",
        api_keys={"reader": [Role.READ]},
        require_read_key=True,
        poll_seconds=0,
    )
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings

    async def exercise() -> None:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://app") as client,
        ):
            for _ in range(600):
                if (await client.get("/readyz")).status_code == 200:  # probes stay open
                    break
                await asyncio.sleep(0.1)
            assert (await client.get("/v1/models")).status_code == 401
            reader = {"X-API-Key": "reader"}
            answer = await client.get("/v1/members/someone/recommendations", headers=reader)
            assert answer.status_code == 200 and len(answer.json()["items"]) == 10
            report = await client.get("/v1/reports/ctr")
            assert report.json()["error"]["code"] == "unauthorized"

    asyncio.run(exercise())


@pytest.mark.parametrize("fast_lane", [True, False], ids=["fast lane", "FastAPI route"])
def test_the_storefront_route_needs_a_read_key_when_reads_require_one(
    tiny_trained: tuple[Path, Path], tmp_path: Path, fast_lane: bool
) -> None:
    settings = Settings(
        artifact=tiny_trained[1], events_url=f"sqlite:///{tmp_path / 'events.db'}",
        api_keys={"reader": [Role.READ], "writer": [Role.EVENTS]},
        require_read_key=True, poll_seconds=0, fast_lane=fast_lane,
    )  # fmt: skip
    app = create_app(settings)
    storefront = "/v1/members/someone/recommendations?n=3"

    async def statuses() -> list[tuple[int, str | None]]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://app") as client,
        ):
            for _ in range(600):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            answers = []
            for key in (None, "nonsense", "writer", "reader"):
                headers = {"X-API-Key": key} if key else {}
                response = await client.get(storefront, headers=headers)
                answers.append((response.status_code, response.json().get("error", {}).get("code")))
            return answers

    assert asyncio.run(statuses()) == [
        (401, "unauthorized"), (401, "unauthorized"), (403, "forbidden"), (200, None),
    ]  # fmt: skip


def _comparable(response: httpx.Response) -> tuple[int, dict]:
    """Status and body without what differs per request (ids)."""
    body = response.json()
    body.pop("recommendation_id", None)
    if "error" in body:
        body["error"].pop("request_id", None)
    return response.status_code, body


def _answered_200(metrics: httpx.Response) -> float:
    """200s of the storefront route counted under its template (not ``unmatched``)."""
    series = (
        'recsys_http_requests_total{method="GET",'
        'route="/v1/members/{member_id}/recommendations",status="200"} '
    )
    for line in metrics.text.splitlines():
        if line.startswith(series):
            return float(line.removeprefix(series))
    return 0.0


def test_the_fast_lane_answers_exactly_as_the_fastapi_route(
    tiny_trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same model artifact, two apps (lane on, lane off): every answer and every error is the same,
    and both count the requests under the route's template."""
    store, artifact = tiny_trained
    members = pl.read_parquet(store / "interactions.parquet")["member_id"].unique().sort()[:5]
    queries = [
        "", "?n=3", "?n=7&max_per_category=1", "?n=4&category=nope", "?n=0", "?n=abc",
        "?exclude_purchased=false&n=5", "?model=popular", "?model=ghost", "?segment=nope",
    ]  # fmt: skip
    paths = [f"/v1/members/{member}/recommendations{query}" for member in members
             for query in queries]  # fmt: skip
    paths += ["/v1/members/stranger/recommendations?liked=x&n=2", "/v1/members/%20/recommendations"]

    answered_in_lane: list[bytes] = []
    original = StorefrontLane._answer

    async def counted(self: StorefrontLane, scope: dict) -> bytes | None:
        body = await original(self, scope)
        if body is not None:
            answered_in_lane.append(body)
        return body

    monkeypatch.setattr(StorefrontLane, "_answer", counted)

    async def answers(fast_lane: bool) -> list[tuple[int, dict]]:
        settings = Settings(
            artifact=artifact, events_url=f"sqlite:///{tmp_path / f'events-{fast_lane}.db'}",
            poll_seconds=0, fast_lane=fast_lane,
        )  # fmt: skip
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://app") as client,
        ):
            for _ in range(600):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            counted_before = _answered_200(await client.get("/metrics"))
            results = [_comparable(await client.get(path)) for path in paths]
            counted = _answered_200(await client.get("/metrics")) - counted_before
        assert counted == sum(status == 200 for status, _ in results)  # under the template
        return results

    lane = asyncio.run(answers(True))
    in_lane = len(answered_in_lane)
    routed = asyncio.run(answers(False))
    assert lane == routed
    assert in_lane >= 20 and len(answered_in_lane) == in_lane  # used, and only when on
    statuses = {status for status, _ in lane}
    assert {200, 422} <= statuses
