"""Reloads under wrk, the check of ``benchmarks/hardening.py`` that puts new model artifact
versions in place while the storefront is under load: the two versions, the two ways of putting
one in place (the symlink switched, a copy renamed over the directory), and how long both
workers take to serve it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from hardening_server import ADMIN, Server, served_version
from serve import WRK_SCRIPT, member_sample, parse_wrk

from serving.artifact_sources import manifest_version

RELOAD_EVERY_SECONDS = 2.0


@dataclass
class ReloadResult:
    requests: int
    requests_per_second: float
    p99_ms: float
    failed: int
    reloads: int
    reloads_ok: int
    converge_seconds: list[float] = field(default_factory=list)
    #: How long each POST /v1/admin/reload took to answer (load and verify under load).
    reload_seconds: list[float] = field(default_factory=list)


def _version_of(artifact: Path) -> str:
    return manifest_version(json.loads((artifact / "manifest.json").read_text()))


def _converged(url: str, version: str, timeout: float = 20) -> float:
    """Seconds from now until the first of 40 answers in a row, each on a new connection,
    that all carry ``version`` (inf when that does not happen within ``timeout``)."""
    started = time.monotonic()
    streak, streak_began = 0, started
    while streak < 40:
        if time.monotonic() - started > timeout:
            return float("inf")
        asked = time.monotonic()
        if served_version(url) != version:
            streak = 0
        else:
            streak_began = asked if streak == 0 else streak_began
            streak += 1
    return streak_began - started


def point_link(link: Path, target: Path) -> None:
    staged = link.with_name(f".{link.name}.next")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target)
    os.replace(staged, link)


def _rename_over(source: Path, target: Path) -> None:
    """A copy of ``source`` renamed over the directory ``target`` (as write_artifact swaps)."""
    staging = target.with_name(f".{target.name}.staging")
    retired = target.with_name(f".{target.name}.retired")
    shutil.copytree(source, staging)
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def reloads_under_wrk(server: Server, versions: dict[str, Path], link: Path, work: Path,
                      seconds: int) -> ReloadResult:  # fmt: skip
    """wrk on the storefront while versions are swapped in and reloaded; what wrk saw, and
    how long both workers took to serve each new version."""
    live = work / "versions" / "live"
    script = work / "hardening.lua"
    script.write_text(WRK_SCRIPT % {"members": member_sample(versions["v1"], work)})
    command = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(script), server.url]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reloads = ok = 0
    converge: list[float] = []
    answered_in: list[float] = []
    deadline = time.monotonic() + seconds - RELOAD_EVERY_SECONDS
    while time.monotonic() < deadline:
        time.sleep(RELOAD_EVERY_SECONDS)
        target = "v2" if reloads % 2 == 0 else "v1"
        if (reloads // 2) % 2 == 0:
            point_link(link, versions[target])  # the symlink switched to another version
        else:
            _rename_over(versions[target], live)  # a copy renamed over the linked directory
            if link.resolve() != live.resolve():
                point_link(link, live)
        asked = time.monotonic()
        with httpx.Client(timeout=60) as client:
            answer = client.post(f"{server.url}/v1/admin/reload", headers=ADMIN)
        answered_in.append(time.monotonic() - asked)
        reloads += 1
        ok += answer.status_code == 200 and answer.json()["variants"][0]["swapped"]
        converge.append(_converged(server.url, _version_of(versions[target])))
    output, _ = wrk.communicate()
    measured = parse_wrk(output)
    return ReloadResult(
        requests=measured.requests,
        requests_per_second=measured.requests_per_second,
        p99_ms=measured.p99_ms,
        failed=measured.errors,
        reloads=reloads,
        reloads_ok=ok,
        converge_seconds=converge,
        reload_seconds=answered_in,
    )


def prepare_versions(artifact: Path, work: Path) -> dict[str, Path]:
    """Two versions of the trained artifact (the second with another ``created_at``)."""
    versions = {}
    for name, created_at in (("v1", None), ("v2", "2030-01-01T00:00:00+00:00")):
        target = work / "versions" / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(artifact, target)
        if created_at is not None:
            manifest = json.loads((target / "manifest.json").read_text())
            manifest["created_at"] = created_at
            (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
        versions[name] = target
    return versions
