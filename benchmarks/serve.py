"""Serving throughput and latency: our recommendation route against a bare FastAPI route.

Generates a store (100,000 members, 20,000 items), trains popularity and ALS on it (one
tuning trial, no MLflow), then measures, in the same run and with the same uvicorn settings
(uvloop, httptools, 2 workers, no access log):

1. a bare FastAPI app whose route ``/v1/members/{member_id}/recommendations`` returns a fixed
   JSON payload of the same size as ours (a real response of our server);
2. ``recsys serve`` on the trained model artifact, with SQLite events (or the store of
   ``--events-url``, a PostgreSQL server as the compose stack's replicas use) and impressions
   logging on.

wrk (``-t2 -c32``) requests random known members through a Lua script, against each server in
turn, ``--repeat`` rounds (the machine is noisy: the medians of the per-round ratios and p99s
are what is judged). The targets: our route sustains at least 60% of the bare route's requests
per second, with a p99 of at most 25 ms at 32 connections. Results go to docs/benchmarks.md
("Serving").

    uv run python benchmarks/serve.py [--members 100000 --items 20000 --events 2000000]
                                      [--duration 20] [--repeat 3] [--work DIR --reuse]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from docs_section import BENCHMARKS_DOC, machine_description, update_section
from stores import trained_artifact

SECTION_TITLE = "## Serving"
RATIO_TARGET, P99_TARGET_MS = 0.60, 25.0
ROUTE = "/v1/members/{}/recommendations?n=10"

BARE_APP = '''"""A bare FastAPI route returning a fixed payload: the framework's own cost."""
import json
from pathlib import Path

from fastapi import FastAPI

PAYLOAD = json.loads((Path(__file__).parent / "payload.json").read_text())
app = FastAPI()


@app.get("/v1/members/{member_id}/recommendations")
async def recommendations(member_id: str, n: int = 10) -> dict:
    return PAYLOAD
'''

WRK_SCRIPT = """
local members = {}
for line in io.lines("%(members)s") do members[#members + 1] = line end
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("seed", counter) end
init = function(args) math.randomseed(seed * 7919 + os.time()) end
request = function()
  local member = members[math.random(#members)]
  return wrk.format("GET", "/v1/members/" .. member .. "/recommendations?n=10")
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    #: CPU time the server's processes spent per request (user + system), in microseconds:
    #: what the throughput ratio comes down to when the cores are shared.
    cpu_us_per_request: float = 0.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--models", default="popular,als")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=int, default=20, help="Seconds of each measurement.")
    parser.add_argument("--warmup", type=int, default=5, help="Seconds of warm-up per server.")
    parser.add_argument(
        "--repeat", type=int, default=3, help="Rounds (bare, then ours); medians are reported."
    )
    parser.add_argument("--work", type=Path, default=None, help="Keep the store and artifact here.")
    parser.add_argument("--reuse", action="store_true", help="Reuse a model artifact in --work.")
    parser.add_argument(
        "--events-url",
        default=None,
        help="Our server's event store (default: SQLite in the work directory). A PostgreSQL "
        "URL measures a replica of the compose stack; the figures go to their own section.",
    )
    parser.add_argument("--doc", type=Path, default=BENCHMARKS_DOC)
    return parser.parse_args(argv)


def store_name(events_url: str | None) -> str:
    """The event store's engine as the section names it: SQLite or PostgreSQL."""
    return "PostgreSQL" if events_url and events_url.startswith("postgresql") else "SQLite"


def section_title(events_url: str | None) -> str:
    """The section's title: "Serving" for the default SQLite store, its own for another."""
    name = store_name(events_url)
    return SECTION_TITLE if name == "SQLite" else f"{SECTION_TITLE} with {name} events"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, path: str, timeout: float = 180) -> None:
    """Until ``path`` answers 200 twenty times in a row (every worker has loaded)."""
    deadline, streak = time.monotonic() + timeout, 0
    while streak < 20:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}{path} not ready after {timeout} s")
        try:
            with urllib.request.urlopen(url + path, timeout=5) as response:
                streak = streak + 1 if response.status == 200 else 0
        except OSError:
            streak = 0
            time.sleep(0.2)


def start(command: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
    )


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_wrk(url: str, script: Path, args: argparse.Namespace, seconds: int) -> WrkResult:
    command = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def _milliseconds(value: str) -> float:
    """wrk's latency (``812.00us``, ``3.61ms``, ``1.02s``, ``1.50m``) in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if found is None:
        raise SystemExit(f"wrk printed a latency this script cannot read: {value!r}")
    number, unit = found.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _field(pattern: str, output: str) -> str:
    found = re.search(pattern, output)
    if found is None:
        raise SystemExit(f"wrk's output has no {pattern!r}; it was:\n{output}")
    return found.group(1)


def parse_wrk(output: str) -> WrkResult:
    rps = float(_field(r"Requests/sec:\s+([\d.]+)", output))
    p50 = _milliseconds(_field(r"50%\s+(\S+)", output))
    p99 = _milliseconds(_field(r"99%\s+(\S+)", output))
    total = int(_field(r"(\d+) requests in", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(part) for part in socket_errors.groups())
    return WrkResult(rps, p50, p99, total, errors)


def member_sample(artifact: Path, work: Path) -> Path:
    """Every known member id, one per line, for the Lua script."""
    import numpy as np

    members = np.load(artifact / "ids" / "members.npy").tolist()
    path = work / "members.txt"
    path.write_text("\n".join(members) + "\n")
    return path


def measure(
    name: str, command: list[str], ready_path: str, args: argparse.Namespace, work: Path,
    port: int, script: Path,
) -> WrkResult:  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    process = start(command, work / f"{name}.log", work)
    try:
        wait_ready(url, ready_path)
        run_wrk(url, script, args, args.warmup)
        before = server_cpu_seconds(process.pid)
        result = run_wrk(url, script, args, args.duration)
        spent = server_cpu_seconds(process.pid) - before
        return replace(result, cpu_us_per_request=spent / max(result.requests, 1) * 1e6)
    finally:
        stop(process)


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of a server and its worker processes so far."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def ours_command(
    artifact: Path, work: Path, port: int, workers: int, events_url: str | None
) -> list[str]:
    recsys = str(Path(sys.executable).with_name("recsys"))
    events = events_url or f"sqlite:///{work / 'events.db'}"
    return [recsys, "serve", "--artifact", str(artifact), "--port", str(port),
            "--workers", str(workers), "--events-url", events]  # fmt: skip


def bare_command(work: Path, port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(work),
        "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http",
        "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def sample_payload(artifact: Path, work: Path, members: Path) -> bytes:
    """One real response of our server, for the bare route to return."""
    port = free_port()
    process = start(ours_command(artifact, work, port, 1, None), work / "payload.log", work)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, "/readyz")
        member = random.Random(0).choice(members.read_text().split())
        with urllib.request.urlopen(url + ROUTE.format(member), timeout=10) as response:
            return response.read()
    finally:
        stop(process)


def render(args: argparse.Namespace, rounds: list[tuple[WrkResult, WrkResult]], payload: int,
           train_seconds: float, chosen: str) -> str:  # fmt: skip
    ratios = [ours.requests_per_second / bare.requests_per_second for bare, ours in rounds]
    ratio = statistics.median(ratios)
    p99 = statistics.median(ours.p99_ms for _, ours in rounds)
    meets_ratio, meets_p99 = ratio >= RATIO_TARGET, p99 <= P99_TARGET_MS
    verdict = "meets both targets" if meets_ratio and meets_p99 else (
        f"misses {'the throughput ratio' if not meets_ratio else ''}"
        f"{' and ' if not meets_ratio and not meets_p99 else ''}"
        f"{'the p99 target' if not meets_p99 else ''}"
    )  # fmt: skip
    command = "uv run python benchmarks/serve.py" + (
        f" --events-url {store_name(args.events_url).upper()}_URL" if args.events_url else ""
    )
    sizes = f"{args.members:,} members, {args.items:,} items, {args.events:,} events"
    trained = f"generated and trained in {train_seconds:.0f} s" if train_seconds else "reused"
    rows = "\n".join(
        f"| {number} | {name} | {r.requests_per_second:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
        f"{r.requests:,} | {r.errors} | {r.cpu_us_per_request:,.0f} |"
        for number, round_results in enumerate(rounds, start=1)
        for name, r in zip(("bare FastAPI route, same payload", "GET recommendations"),
                           round_results, strict=True)
    )  # fmt: skip
    per_round = ", ".join(f"{value:.0%}" for value in ratios)
    shared = "its server on the same CPUs as ours and wrk, " if args.events_url else ""
    return f"""{section_title(args.events_url)}

`GET /v1/members/{{id}}/recommendations?n=10` over random known members against a bare FastAPI
route returning a JSON payload of the same size ({payload:,} bytes), measured in the same run
with the same uvicorn settings ({args.workers} workers, uvloop, httptools, no access log) and
`wrk -t{args.threads} -c{args.connections} -d{args.duration}s` after a {args.warmup} s warm-up,
in {len(rounds)} rounds (the bare server, then ours, each started afresh).
Our server runs as `recsys serve` with the default settings, {store_name(args.events_url)}
event store ({shared}`--events-url`), live
history read on every request, impressions logged, Prometheus metrics; the model artifact holds the
members' precomputed lists (`recsys train --list-depth 50`, the default), and the storefront
route answers through the fast lane (`RECSYS_FAST_LANE`, on by default).

| | |
|---|---|
| date | {datetime.now(UTC).date().isoformat()} |
| command | `{command}` |
| machine | {machine_description()} |
| model | {sizes}; models {args.models} (chosen: {chosen}); {trained} |

| round | server | requests/s | p50 ms | p99 ms | requests | errors | server CPU µs/request |
|---:|---|---:|---:|---:|---:|---:|---:|
{rows}

Ratio of requests per second, ours to bare in the same round: **{ratio:.0%}** median
({per_round}; target at least {RATIO_TARGET:.0%}); p99 **{p99:.1f} ms** median (target at most
{P99_TARGET_MS:.0f} ms): {verdict}. wrk shares the {machine_description().split(" ")[0]} CPUs with
the servers, so every figure includes its cost.
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed; install it (apt-get install wrk) to run this benchmark")
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="recsys-serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    artifact, train_seconds = trained_artifact(
        work, members=args.members, items=args.items, events=args.events, seed=args.seed,
        models=tuple(args.models.split(",")), reuse=args.reuse,
    )  # fmt: skip
    chosen = json.loads((artifact / "manifest.json").read_text())["chosen"]
    members = member_sample(artifact, work)
    script = work / "members.lua"
    script.write_text(WRK_SCRIPT % {"members": members})
    payload = sample_payload(artifact, work, members)
    (work / "payload.json").write_bytes(payload)
    (work / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    rounds = []
    for _ in range(args.repeat):
        bare = measure("bare", bare_command(work, port, args.workers), "/docs", args, work, port,
                       script)  # fmt: skip
        ours = measure("ours", ours_command(artifact, work, port, args.workers, args.events_url),
                       "/readyz", args,
                       work, port, script)  # fmt: skip
        rounds.append((bare, ours))
    section = render(args, rounds, len(payload), train_seconds, chosen)
    update_section(args.doc, section_title(args.events_url), section)
    print(section)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    ratio = statistics.median(o.requests_per_second / b.requests_per_second for b, o in rounds)
    p99 = statistics.median(ours.p99_ms for _, ours in rounds)
    errors = sum(ours.errors for _, ours in rounds)
    return 0 if ratio >= RATIO_TARGET and p99 <= P99_TARGET_MS and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
