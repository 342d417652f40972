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
import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
from docs_section import BENCHMARKS_DOC, machine_description, update_section
from serve import WRK_SCRIPT, free_port, member_sample, parse_wrk
from stores import trained_artifact

from serving.artifact_sources import manifest_version

SECTION_TITLE = "## Hardening"
KEYS = {"hardening-writer": ["events"], "hardening-admin": ["admin"]}
WRITE = {"X-API-Key": "hardening-writer"}
ADMIN = {"X-API-Key": "hardening-admin"}
ROUTE = "/v1/members/{}/recommendations"
#: The server's defaults (serving/settings.py), which this run keeps.
HEADER_TIMEOUT_SECONDS = 10.0
RELOAD_EVERY_SECONDS = 2.0
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


# -- the server ---------------------------------------------------------------------------------


class Server:
    """``recsys serve --workers 2`` in a process group of its own."""

    def __init__(self, link: Path, events_db: Path, log: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        recsys = str(Path(sys.executable).with_name("recsys"))
        command = [recsys, "serve", "--artifact", str(link), "--workers", "2", "--port", str(port),
                   "--events-url", f"sqlite:///{events_db}", "--poll-seconds", "0"]  # fmt: skip
        environment = {**os.environ, "RECSYS_API_KEYS": json.dumps(KEYS)}
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            command, env=environment, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=log.parent, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> float:
        """Seconds until /readyz answered 200 twenty times in a row (both workers loaded)."""
        started = time.monotonic()
        streak = 0
        while streak < 20:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{self.url} not ready after {timeout} s")
            try:
                with httpx.Client(timeout=5) as client:
                    ok = client.get(f"{self.url}/readyz").status_code == 200
                streak = streak + 1 if ok else 0
            except httpx.TransportError:
                streak = 0
                time.sleep(0.2)
        return time.monotonic() - started

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL to every process of the server: what a crash (or the OOM killer) does."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


def peak_worker_rss(server: Server) -> int:
    """The largest ``VmHWM`` (peak resident memory) among the server's workers, in bytes."""
    peak = 0
    for worker in server.workers():
        try:
            for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            continue
    return peak


# -- 1. kill -9 under event load ---------------------------------------------------------------


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


# -- 2. reloads under wrk ----------------------------------------------------------------------


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


def _served_version(url: str) -> str:
    """The version of one storefront answer, on a connection of its own (so that, over many
    calls, every worker answers some)."""
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as client:
        return client.get(f"{url}{ROUTE.format('hardening-probe')}").json()["model_version"]


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
        if _served_version(url) != version:
            streak = 0
        else:
            streak_began = asked if streak == 0 else streak_began
            streak += 1
    return streak_began - started


def _point(link: Path, target: Path) -> None:
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
            _point(link, versions[target])  # the symlink switched to another version
        else:
            _rename_over(versions[target], live)  # a copy renamed over the linked directory
            if link.resolve() != live.resolve():
                _point(link, live)
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


# -- 3. schemathesis ---------------------------------------------------------------------------


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


# -- 4. hostile input --------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    case: str
    status: int | None
    json_error: bool
    note: str


def _read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.split(":", 1) for line in lines)
    headers = {name.lower(): value.strip() for name, value in fields}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def _json_error_of(headers: dict[str, str], body: bytes) -> bool:
    if headers.get("content-type") != "application/json":
        return False
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError):
        return False
    return bool(error.get("request_id")) and error["request_id"] == headers.get("x-request-id")


def _raw(server: Server, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(data)
        return _read_response(connection)


def big_body(server: Server, *, key: bool, size: int = 75_000_000) -> Hostile:
    """Announce and stream a ``size``-byte body; the answer's status and how long it took,
    and the workers' peak RSS before and after."""
    before = peak_worker_rss(server)
    api_key = b"X-API-Key: hardening-writer\r\n" if key else b""
    head = (b"POST /v1/events HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
            + api_key + f"Content-Length: {size}\r\n\r\n".encode())  # fmt: skip
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(head)
        sent = 0
        chunk = b" " * 1_000_000
        try:
            while sent < size:  # until the server answers and closes
                connection.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        status, headers, body = _read_response(connection)
    seconds = time.monotonic() - started
    growth = (peak_worker_rss(server) - before) / 2**20
    note = (f"answered in {seconds:.2f} s after {sent / 1e6:.0f} MB sent; workers' peak RSS "
            f"{before / 2**20:.0f} MB before, +{growth:.1f} MB after")  # fmt: skip
    label = f"75 MB body, {'with' if key else 'without'} a key"
    return Hostile(label, status, _json_error_of(headers, body), note)


def parser_refusals(server: Server) -> list[Hostile]:
    cases = [
        ("64 KiB URL", b"GET /v1/members/" + b"a" * 65_536 + b"/recommendations HTTP/1.1\r\n"
         b"Host: h\r\n\r\n"),
        ("40 kB header", b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"a" * 40_000
         + b"\r\n\r\n"),
        ("garbage instead of HTTP", b"\x16\x03\x01 not http\r\n\r\n"),
        ("bad UTF-8 in a path (%FF%FE)", b"GET /v1/members/%FF%FE/recommendations HTTP/1.1\r\n"
         b"Host: h\r\n\r\n"),
    ]  # fmt: skip
    found = []
    for label, data in cases:
        status, headers, body = _raw(server, data)
        code = json.loads(body)["error"]["code"] if _json_error_of(headers, body) else "-"
        found.append(Hostile(label, status, _json_error_of(headers, body), f"code {code}"))
    return found


def idle_connections(server: Server, count: int) -> Hostile:
    """Open ``count`` connections that send nothing; seconds until the server closed them."""
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(count)]
    opened = time.monotonic()
    started = time.perf_counter()
    _served_version(server.url)  # the server still answers meanwhile
    answer_ms = (time.perf_counter() - started) * 1000
    closed_at = _wait_closed(sockets, HEADER_TIMEOUT_SECONDS * 3)
    all_closed = len(closed_at) == count
    last = f"{max(closed_at) - opened:.1f} s" if all_closed else "never (within 30 s)"
    note = (f"{len(closed_at):,} of {count:,} closed by the server, the last after {last} "
            f"(header timeout {HEADER_TIMEOUT_SECONDS:g} s); a storefront request meanwhile "
            f"took {answer_ms:.0f} ms")  # fmt: skip
    return Hostile(f"{count:,} connections that send nothing", None, all_closed, note)


def slow_headers(server: Server, count: int) -> Hostile:
    """``count`` connections that send their request line and headers a byte a second."""
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(count)]
    opened = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"a" * 100
    for position in range(len(head)):
        if time.monotonic() - opened > HEADER_TIMEOUT_SECONDS * 2:
            break
        for connection in sockets:
            with contextlib.suppress(OSError):
                connection.sendall(head[position : position + 1])
        time.sleep(1.0)
    statuses: dict[int, int] = {}
    for connection in sockets:
        connection.settimeout(5)
        try:
            status, headers, body = _read_response(connection)
            status = status if _json_error_of(headers, body) else -status
        except (OSError, ConnectionError):
            status = 0  # closed without an answer
        statuses[status] = statuses.get(status, 0) + 1
        connection.close()
    note = (f"answers by status {dict(sorted(statuses.items()))} (all JSON with a request id "
            f"when positive) within {time.monotonic() - opened:.0f} s")  # fmt: skip
    label = f"{count} connections sending headers a byte a second"
    return Hostile(label, 408 if statuses.get(408) == count else None, 408 in statuses, note)


def _wait_closed(sockets: list[socket.socket], timeout: float) -> list[float]:
    """When each socket was closed by its peer (monotonic seconds), within ``timeout``."""
    selector = selectors.DefaultSelector()
    for connection in sockets:
        connection.setblocking(False)
        selector.register(connection, selectors.EVENT_READ)
    closed: list[float] = []
    deadline = time.monotonic() + timeout
    while len(closed) < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            connection = key.fileobj
            try:
                data = connection.recv(65536)  # type: ignore[union-attr]
            except OSError:
                data = b""
            if not data:
                closed.append(time.monotonic())
                selector.unregister(connection)
                connection.close()  # type: ignore[union-attr]
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    return closed


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
    _point(link, versions["v1"])
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


if __name__ == "__main__":
    sys.exit(main())
