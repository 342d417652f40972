"""The application in-process: settings come from the ``get_settings`` dependency, which a
test (or an embedding application) overrides, and a deployment can require keys for reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from serving.app import create_app
from serving.settings import Role, Settings, get_settings


def test_overridden_settings_can_require_a_key_for_reads(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    settings = Settings(
        bundle=tiny_trained[1],
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
