"""Reloads as an operator sees them, against real servers: a refused model artifact fixed in
place is picked up, a truncated manifest is refused, logged and counted once, a reload that
changes nothing is not counted as a swap, every worker converges on the version one worker was
asked to load, a symlink switched to another version is followed, and routes answer from the
loaded snapshot, not from whatever the path holds now."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving_helpers import (
    ADMIN,
    Server,
    copy_artifact,
    corrupt,
    recsys_serve,
    swap_in,
)

RECOMMEND = "/v1/members/{}/recommendations"
SETTLE_SECONDS = 20


@pytest.fixture(scope="module")
def versions(tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three versions of the tiny model; v3's evaluation report differs from the others'."""
    root = tmp_path_factory.mktemp("reloads")
    v1 = copy_artifact(tiny_trained[1], root / "v1")
    v2 = copy_artifact(tiny_trained[1], root / "v2", created_at="2030-01-01T00:00:00+00:00")
    v3 = copy_artifact(tiny_trained[1], root / "v3", created_at="2031-01-01T00:00:00+00:00")
    metrics = json.loads((v3 / "metrics.json").read_text())
    _rewrite(v3, "metrics.json", json.dumps({**metrics, "written_for": "v3"}).encode())
    return {"v1": v1, "v2": v2, "v3": v3, "root": root}


def _rewrite(artifact: Path, relative: str, content: bytes) -> None:
    """Replace one file of an artifact and its checksum in the manifest (a valid new one)."""
    (artifact / relative).write_bytes(content)
    manifest_path = artifact / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][relative] = hashlib.sha256(content).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2))


def _version_of(artifact: Path) -> str:
    from serving.artifact_sources import manifest_version

    return manifest_version(json.loads((artifact / "manifest.json").read_text()))


def _served_versions(server: Server, count: int = 60) -> dict[str, int]:
    """How many of ``count`` answers, each on a new connection (so that every worker takes
    some), carry each version."""
    seen: dict[str, int] = {}
    for _ in range(count):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            version = client.get(RECOMMEND.format("someone")).json()["model_version"]
        seen[version] = seen.get(version, 0) + 1
    return seen


def _reloads(server: Server, outcome: str) -> float:
    """recsys_model_reloads_total for ``outcome``, summed over workers."""
    text = server.client.get("/metrics").text
    series = f'recsys_model_reloads_total{{outcome="{outcome}",variant="default"}}'
    found = re.search(rf"{re.escape(series)} (\S+)", text)
    return float(found.group(1)) if found else 0.0


def _eventually(condition: Callable[[], bool], seconds: float = SETTLE_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def polling(versions: dict) -> Iterator[tuple[Server, Path]]:
    """A server polling its model artifact directory every 0.3 s."""
    root = versions["root"]
    served = copy_artifact(versions["v1"], root / "polled")
    running = Server(
        {"RECSYS_ARTIFACT": str(served), "RECSYS_POLL_SECONDS": "0.3",
         "RECSYS_EVENTS_URL": f"sqlite:///{root / 'polling.db'}"},
        root / "polling.log",
    ).wait()  # fmt: skip
    yield running, served
    running.stop()


def _version(server: Server) -> str:
    return server.client.get("/readyz").json()["versions"]["default"]


def test_a_refused_artifact_fixed_in_place_is_picked_up_by_polling(
    polling: tuple[Server, Path], versions: dict
) -> None:
    server, served = polling
    before, refused = _version(server), _reloads(server, "refused")
    damaged = copy_artifact(versions["v2"], versions["root"] / "v2-damaged")
    corrupt(damaged)
    swap_in(damaged, served)
    assert _eventually(lambda: _reloads(server, "refused") == refused + 1)
    assert _version(server) == before
    intact = (versions["v2"] / "popularity.npy").read_bytes()
    (served / "popularity.npy").write_bytes(intact)  # fixed in place, the manifest unchanged
    assert _eventually(lambda: _version(server) == _version_of(versions["v2"]))


def test_a_truncated_manifest_is_refused_logged_and_counted_once(
    polling: tuple[Server, Path], versions: dict
) -> None:
    server, served = polling
    before, refused = _version(server), _reloads(server, "refused")
    truncated = copy_artifact(versions["v3"], versions["root"] / "v3-truncated")
    manifest = (truncated / "manifest.json").read_bytes()
    (truncated / "manifest.json").write_bytes(manifest[: len(manifest) // 2])
    swap_in(truncated, served)
    assert _eventually(lambda: _reloads(server, "refused") == refused + 1)
    time.sleep(1.5)  # five more polls see the same truncated manifest
    assert _reloads(server, "refused") == refused + 1
    assert _version(server) == before
    assert "manifest.json is unreadable" in server.logs()
    reload = server.client.post("/v1/admin/reload", headers=ADMIN)
    assert reload.status_code == 409 and reload.json()["error"]["code"] == "artifact_refused"


@pytest.fixture(scope="module")
def two_workers(versions: dict) -> Iterator[tuple[Server, Path]]:
    """``recsys serve --workers 2`` without polling: only reload requests move it."""
    root = versions["root"]
    served = copy_artifact(versions["v1"], root / "shared")
    command = recsys_serve("--artifact", str(served), "--workers", "2", "--poll-seconds", "0",
                           "--events-url", f"sqlite:///{root / 'two-workers.db'}")  # fmt: skip
    running = Server({}, root / "two-workers.log", command=command).wait()
    assert _eventually(lambda: _reloads(running, "swapped") == 2)  # both workers loaded
    yield running, served
    running.stop()


def test_every_worker_converges_on_the_version_one_was_asked_to_load(
    two_workers: tuple[Server, Path], versions: dict
) -> None:
    server, served = two_workers
    swapped = _reloads(server, "swapped")
    swap_in(versions["v2"], served)
    reload = server.client.post("/v1/admin/reload", headers=ADMIN)
    assert reload.status_code == 200 and reload.json()["variants"][0]["swapped"]
    assert _eventually(lambda: _reloads(server, "swapped") == swapped + 2)  # each worker once
    assert _served_versions(server) == {_version_of(versions["v2"]): 60}


def test_a_reload_that_changes_nothing_is_not_counted_as_a_swap(
    two_workers: tuple[Server, Path],
) -> None:
    server, _ = two_workers
    swapped, unchanged = _reloads(server, "swapped"), _reloads(server, "unchanged")
    reload = server.client.post("/v1/admin/reload", headers=ADMIN)
    assert reload.status_code == 200 and not reload.json()["variants"][0]["swapped"]
    assert _eventually(lambda: _reloads(server, "unchanged") == unchanged + 2)  # both workers
    assert _reloads(server, "swapped") == swapped


def test_the_evaluation_report_is_the_loaded_artifacts_until_a_reload(
    two_workers: tuple[Server, Path], versions: dict
) -> None:
    server, served = two_workers
    assert "written_for" not in server.client.get("/v1/reports/evaluation").json()
    swap_in(versions["v3"], served)  # on disk now, not loaded yet
    assert "written_for" not in server.client.get("/v1/reports/evaluation").json()
    assert server.client.post("/v1/admin/reload", headers=ADMIN).status_code == 200
    assert _eventually(lambda: _served_versions(server, 20) == {_version_of(versions["v3"]): 20})
    assert server.client.get("/v1/reports/evaluation").json()["written_for"] == "v3"


def _point(link: Path, target: Path) -> None:
    """Switch ``link`` to ``target`` atomically (a new link renamed over the old one)."""
    staged = link.with_name(f".{link.name}.next")
    staged.symlink_to(target)
    os.replace(staged, link)


def test_a_symlink_switched_to_another_version_is_followed(versions: dict) -> None:
    root = versions["root"]
    link = root / "current"
    _point(link, versions["v1"])
    command = recsys_serve("--artifact", str(link), "--poll-seconds", "0",
                           "--events-url", f"sqlite:///{root / 'symlink.db'}")  # fmt: skip
    server = Server({}, root / "symlink.log", command=command).wait()
    try:
        assert _version(server) == _version_of(versions["v1"])
        _point(link, versions["v2"])
        reload = server.client.post("/v1/admin/reload", headers=ADMIN)
        assert reload.status_code == 200, reload.text
        assert reload.json()["variants"][0]["swapped"]
        assert _version(server) == _version_of(versions["v2"])
    finally:
        server.stop()
