"""A/B variants on a real server, and readiness before and after a model artifact is
loaded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.variants import VariantAssigner
from tests.serving_helpers import ADMIN, Server, copy_artifact

SPLIT = {"champion": 0.9, "challenger": 0.1}


@pytest.fixture(scope="module")
def paths(tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("variants")
    return {
        "root": root,
        "champion": copy_artifact(tiny_trained[1], root / "champion"),
        "challenger": root / "challenger",  # absent at start: the server is not ready
        "trained": tiny_trained[1],
    }


@pytest.fixture(scope="module")
def server(paths: dict) -> Iterator[Server]:
    variants = {
        name: {"source": str(paths[name]), "weight": weight} for name, weight in SPLIT.items()
    }
    running = Server(
        {
            "RECSYS_VARIANTS": json.dumps(variants),
            "RECSYS_AB_SALT": "test-experiment",
            "RECSYS_EVENTS_URL": f"sqlite:///{paths['root'] / 'events.db'}",
        },
        paths["root"] / "server.log",
    ).wait("/healthz")
    yield running
    running.stop()


def _loaded(server: Server) -> dict[str, bool]:
    return {v["variant"]: v["loaded"] for v in server.client.get("/v1/models").json()["variants"]}


def test_not_ready_until_every_variant_has_an_artifact(server: Server, paths: dict) -> None:
    deadline = time.monotonic() + 60
    while not _loaded(server)["champion"] and time.monotonic() < deadline:
        time.sleep(0.1)  # model artifacts load in the background after start-up
    assert _loaded(server) == {"champion": True, "challenger": False}
    waiting = server.client.get("/readyz")
    assert waiting.status_code == 503
    assert "challenger" in waiting.json()["error"]["message"]
    assert server.client.get("/healthz").status_code == 200

    copy_artifact(paths["trained"], paths["challenger"], created_at="2030-01-01T00:00:00+00:00")
    reloaded = server.client.post("/v1/admin/reload", params={"variant": "challenger"},
                                  headers=ADMIN)  # fmt: skip
    assert reloaded.status_code == 200, reloaded.text
    ready = server.client.get("/readyz")
    assert ready.status_code == 200
    versions = ready.json()["versions"]
    assert set(versions) == set(SPLIT) and versions["champion"] != versions["challenger"]


def test_members_split_by_a_stable_hash_in_proportion(server: Server) -> None:
    if server.client.get("/readyz").status_code != 200:
        pytest.skip("needs both variants loaded (previous test)")
    members = [f"ab-{i:05d}" for i in range(2_000)]
    variants = []
    for start in range(0, len(members), 100):
        body = {"member_ids": members[start : start + 100], "n": 1}
        response = server.client.post("/v1/recommendations/batch", json=body)
        assert response.status_code == 200
        variants += [result["variant"] for result in response.json()["results"]]
    assigner = VariantAssigner(SPLIT, salt="test-experiment")
    assert variants == [assigner.assign(member) for member in members]
    share = variants.count("challenger") / len(variants)
    assert 0.08 <= share <= 0.12
    again = server.client.get(f"/v1/members/{members[0]}/recommendations").json()
    assert again["variant"] == variants[0]
    models = {v["variant"]: v["weight"] for v in server.client.get("/v1/models").json()["variants"]}
    assert models == pytest.approx(SPLIT)


def test_an_unknown_variant_is_a_422(server: Server) -> None:
    response = server.client.post("/v1/admin/reload", params={"variant": "nope"}, headers=ADMIN)
    assert response.status_code == 422
    assert "champion" in response.json()["error"]["message"]
