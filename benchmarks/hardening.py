"""Hardening: ``recsys serve`` with 2 workers, driven from outside, under load.

Generates a store (20,000 members, 2,000 items, 400,000 events by default), trains popularity
and ALS on it, and serves it through a symlink (``current`` -> one of two versions) with
2 workers, SQLite events and the default limits. Then, each check from this separate process:

1. **kill -9 under event load**: 4 clients post batches of 50 events with unique ids; after
   ``--kill-seconds`` every process of the server gets SIGKILL; the server is started again on
   the same event store, and every event that was acknowledged with a 2xx must be in it.
2. **reloads under wrk**: ``wrk -t2 -c32`` on the storefront route (random known members) for
   ``--wrk-seconds`` while a new version is put in place (the symlink switched, or a new copy
   renamed over the directory it points to) and ``POST /v1/admin/reload`` asked of one worker,
   2 s after both workers served the previous one; no response may be other than 2xx/3xx and
   no connection may fail, and both workers must serve the new version (measured: seconds
   until the first of 40 answers in a row on new connections that all carry it).
3. **schemathesis** against ``/openapi.json``: every operation, ``--examples`` generated
   requests each (valid and invalid parameters, bodies and ids) with an admin key; no 5xx, and
   every error must be the API's JSON error with a request id.
4. **hostile input**: 75 MB bodies with and without a key (the workers' peak RSS before and
   after), a 64 KiB URL, a 40 kB header, bad UTF-8 in a path, garbage, 2,000 connections that
   send nothing and 200 that send their headers a byte a second.

It prints a summary and writes the figures to docs/benchmarks.md ("Hardening"). Exit status 0
when every check meets its target.

    uv run python benchmarks/hardening.py [--members 20000 --items 2000 --events 400000]
        [--wrk-seconds 45] [--kill-seconds 8] [--examples 30] [--work DIR --reuse]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from artifact_reloads import (
    RELOAD_EVERY_SECONDS,
    ReloadResult,
    point_link,
    prepare_versions,
    reloads_under_wrk,
)
from docs_section import BENCHMARKS_DOC, machine_description, update_section
from hardening_server import ADMIN, WRITE, Server
from hostile_clients import Hostile, big_body, idle_connections, parser_refusals, slow_headers
from serve import free_port
from stores import trained_artifact

SECTION_TITLE = "## Hardening"
EVENTS_PER_POST = 50


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--wrk-seconds", type=int, default=45)
    parser.add_argument("--kill-seconds", type=float, default=8.0)
    parser.add_argument("--examples", type=int, default=30, help="Schemathesis cases per route.")
    parser.add_argument("--idle", type=int, default=2_000, help="Connections that send nothing.")
    parser.add_argument("--slow", type=int, default=200, help="Connections that trickle headers.")
    parser.add_argument("--work", type=Path, default=None, help="Keep the store and artifact here.")
    parser.add_argument("--reuse", action="store_true", help="Reuse a model artifact in --work.")
    parser.add_argument("--doc", type=Path, default=BENCHMARKS_DOC)
    return parser.parse_args(argv)


# -- kill -9 under event load ------------------------------------------------------------------


@dataclass
class KillResult:
    posts: int
    acknowledged: int
    missing: int
    events_per_second: float
    restart_seconds: float


def kill_under_event_load(server: Server, restart: Callable[[], Server], events_db: Path,
                          seconds: float) -> tuple[KillResult, Server]:  # fmt: skip
    """Post events from 4 clients, SIGKILL the server, start it again: which acknowledged
    events are missing from the store."""
    acknowledged: list[str] = []
    posts = 0
    lock = threading.Lock()
    run = uuid.uuid4().hex[:8]

    def post(client_number: int) -> None:
        nonlocal posts
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for batch in range(1_000_000):
                ids = [f"k9-{run}-{client_number}-{batch}-{i}" for i in range(EVENTS_PER_POST)]
                body = [{"event_id": event_id, "event": "click", "member_id": f"k9-{client_number}",
                         "item_id": "I0001"} for event_id in ids]  # fmt: skip
                try:
                    response = client.post("/v1/events", json=body, headers=WRITE)
                except httpx.TransportError:
                    return  # the server is gone
                with lock:
                    posts += 1
                    if response.is_success:
                        acknowledged.extend(ids)

    with ThreadPoolExecutor(4) as pool:
        posters = [pool.submit(post, number) for number in range(4)]
        started = time.monotonic()
        time.sleep(seconds)
        server.kill()
        elapsed = time.monotonic() - started
        for poster in posters:
            poster.result()
    restarted = restart()
    restart_seconds = restarted.wait_ready()
    with sqlite3.connect(events_db) as database:
        stored = {row[0] for row in database.execute(
            "SELECT event_id FROM recsys_events WHERE event_id LIKE ?", (f"k9-{run}-%",)
        )}  # fmt: skip
    result = KillResult(
        posts=posts,
        acknowledged=len(acknowledged),
        missing=len(set(acknowledged) - stored),
        events_per_second=len(acknowledged) / elapsed,
        restart_seconds=restart_seconds,
    )
    return result, restarted


# -- schemathesis ------------------------------------------------------------------------------


@dataclass
class FuzzResult:
    operations: int
    requests: int
    server_errors: int
    non_json_errors: int
    statuses: dict[int, int]


def _is_api_error(headers: Mapping[str, list[str]], content: bytes) -> bool:
    """The API's error body: JSON ``{"error": {"code", "message", "request_id"}}`` with the
    request id of the ``X-Request-ID`` header (schemathesis gives header lists)."""
    if headers.get("content-type", [""])[0] != "application/json":
        return False
    try:
        error = json.loads(content)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    request_id = headers.get("x-request-id", [None])[0]
    return (
        isinstance(error, dict)
        and {"code", "message"} <= set(error)
        and bool(request_id and error.get("request_id") == request_id)
    )


def fuzz_openapi(server: Server, examples: int) -> FuzzResult:
    """Schemathesis's generated requests for every operation of the published schema."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    statuses: dict[int, int] = {}
    server_errors = non_json = 0

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def call(case: schemathesis.Case) -> None:
            nonlocal server_errors, non_json
            response = case.call(base_url=server.url, headers=ADMIN, timeout=60)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            server_errors += response.status_code >= 500
            if response.status_code >= 400 and not _is_api_error(
                response.headers, response.content
            ):
                non_json += 1

        call()
    return FuzzResult(len(operations), sum(statuses.values()), server_errors, non_json, statuses)


# -- the report --------------------------------------------------------------------------------


def render(args: argparse.Namespace, kill: KillResult, reloads: ReloadResult, fuzz: FuzzResult,
           hostile: list[Hostile], sizes: str) -> str:  # fmt: skip
    converge = reloads.converge_seconds
    hostile_rows = "\n".join(
        f"| {h.case} | {h.status if h.status is not None else '-'} | "
        f"{'yes' if h.json_error else '-'} | {h.note} |"
        for h in hostile
    )
    statuses = ", ".join(f"{status}: {count:,}" for status, count in sorted(fuzz.statuses.items()))
    return f"""{SECTION_TITLE}

`recsys serve` with 2 workers (uvloop, httptools through `serving/protocol.py`), SQLite
events, every limit at its default, serving the artifact through a symlink, driven from a
separate process by `benchmarks/hardening.py`.

| | |
|---|---|
| date | {datetime.now(UTC).date().isoformat()} |
| command | `uv run python benchmarks/hardening.py` |
| machine | {machine_description()} |
| model | {sizes}; popular and ALS |

**kill -9 under event load**: 4 clients posting {EVENTS_PER_POST} events a request for
{args.kill_seconds:g} s, then SIGKILL to every process of the server, then a restart on the
same store: {kill.posts:,} posts, **{kill.acknowledged:,} events acknowledged
({kill.events_per_second:,.0f}/s), {kill.missing} missing after the restart** (target 0);
ready again {kill.restart_seconds:.1f} s after the restart.

**Reloads under wrk** (`wrk -t2 -c32 -d{args.wrk_seconds}s`, random known members): a new
version put in place {RELOAD_EVERY_SECONDS:g} s after the previous one was served everywhere
(the symlink switched, or a copy renamed over the directory it points to) and reloaded
through one worker: **{reloads.reloads_ok} of {reloads.reloads} reloads swapped** (each
answered in {min(reloads.reload_seconds):.1f} to {max(reloads.reload_seconds):.1f} s: the
artifact loaded and verified under load);
{reloads.requests:,} requests ({reloads.requests_per_second:,.0f}/s, p99
{reloads.p99_ms:.1f} ms) with **{reloads.failed} non-2xx/3xx or failed connections** (target
0); both workers served the new version (the first of 40 answers in a row on new
connections) {min(converge):.2f} to {max(converge):.2f} s after the reload was answered.

**Schemathesis** against `/openapi.json`, {args.examples} generated cases for each of
{fuzz.operations} operations with an admin key: {fuzz.requests:,} requests (statuses
{statuses}); **{fuzz.server_errors} 5xx** (target 0); **{fuzz.non_json_errors} errors that are
not the API's JSON error with a request id** (target 0).

**Hostile input**:

| case | status | JSON error with request id | what happened |
|---|---:|---|---|
{hostile_rows}
"""


def targets_met(kill: KillResult, reloads: ReloadResult, fuzz: FuzzResult,
                hostile: list[Hostile]) -> bool:  # fmt: skip
    expected = {"75 MB body, without a key": 401, "75 MB body, with a key": 413}
    statuses_ok = all(h.status == expected[h.case] for h in hostile if h.case in expected)
    every_case_ok = all(h.json_error for h in hostile)
    return (
        kill.missing == 0 and kill.acknowledged > 0
        and reloads.failed == 0 and reloads.reloads_ok == reloads.reloads > 0
        and max(reloads.converge_seconds) < float("inf")
        and fuzz.server_errors == 0 and fuzz.non_json_errors == 0
        and statuses_ok and every_case_ok
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed; install it (apt-get install wrk) to run this harness")
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="recsys-hardening-"))
    work.mkdir(parents=True, exist_ok=True)
    artifact, _ = trained_artifact(
        work, members=args.members, items=args.items, events=args.events, seed=args.seed,
        models=("popular", "als"), reuse=args.reuse,
    )  # fmt: skip
    versions = prepare_versions(artifact, work)
    link = work / "current"
    point_link(link, versions["v1"])
    events_db = work / "hardening-events.db"
    for stale in work.glob("hardening-events.db*"):
        stale.unlink()
    port = free_port()

    def start() -> Server:
        return Server(link, events_db, work / "hardening-server.log", port)

    server = start()
    server.wait_ready()
    try:
        kill, server = kill_under_event_load(server, start, events_db, args.kill_seconds)
        print(f"kill -9: {kill}")
        reloads = reloads_under_wrk(server, versions, link, work, args.wrk_seconds)
        print(f"reloads under wrk: {reloads}")
        fuzz = fuzz_openapi(server, args.examples)
        print(f"schemathesis: {fuzz}")
        hostile = [big_body(server, key=False), big_body(server, key=True),
                   *parser_refusals(server), idle_connections(server, args.idle),
                   slow_headers(server, args.slow)]  # fmt: skip
        for found in hostile:
            print(f"hostile: {found}")
    finally:
        server.stop()
    sizes = f"{args.members:,} members, {args.items:,} items, {args.events:,} events"
    section = render(args, kill, reloads, fuzz, hostile, sizes)
    update_section(args.doc, SECTION_TITLE, section)
    print(section)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if targets_met(kill, reloads, fuzz, hostile) else 1


if __name__ == "__main__":
    sys.exit(main())
