"""Helpers of the serving tests: a tiny trained model artifact, real servers in
subprocesses, and atomic artifact swaps.

Servers are real: ``recsys serve`` on a free 127.0.0.1 port (uvicorn with the service's own
HTTP protocol and timeouts), with settings in ``RECSYS_*`` variables. Each server runs in a
process group of its own, so that a multi-worker server is stopped or killed whole.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import polars as pl
import pytest

from features.synthetic import StoreConfig, generate_store
from training.config import TuningBudget
from training.publish import train_generated_store
from training.train import TrainConfig

TINY_STORE = StoreConfig(members=400, items=120, events=20_000, seed=5)
TINY_MODELS = ("popular", "item_knn", "als", "content")
#: Keys of the test servers: one per role.
KEYS = {"reader": ["read"], "writer": ["events"], "boss": ["admin"]}
READ, WRITE, ADMIN = ({"X-API-Key": key} for key in KEYS)
START_TIMEOUT_SECONDS = 90


def train_tiny_artifact(root: Path) -> tuple[Path, Path]:
    """Generate a tiny store and train a model artifact on it; returns (store, artifact)."""
    store, artifact = root / "store", root / "artifact"
    generate_store(TINY_STORE, store)
    config = TrainConfig(models=TINY_MODELS, budget=TuningBudget(trials=1, seconds=10))
    train_generated_store(store, artifact, config, split="last-days:60")
    return store, artifact


def holdout_file(store: Path, out: Path, days: int = 60) -> Path:
    """The last ``days`` of the store's interactions, as a test file for the simulator."""
    frame = pl.read_parquet(store / "interactions.parquet")
    cutoff = frame["timestamp"].max() - pl.duration(days=days)
    frame.filter(pl.col("timestamp") >= cutoff).write_parquet(out)
    return out


def copy_artifact(source: Path, target: Path, *, created_at: str | None = None) -> Path:
    """A copy of an artifact; a new ``created_at`` makes it another version of the same model."""
    shutil.copytree(source, target)
    if created_at is not None:
        edit_manifest(target, created_at=created_at)
    return target


def edit_manifest(artifact: Path, **fields: object) -> dict:
    """Set ``fields`` in an artifact's manifest (a value of None removes the field); returns it."""
    manifest_path = artifact / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name, value in fields.items():
        if value is None:
            manifest.pop(name, None)
        else:
            manifest[name] = value
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return manifest


def swap_in(source: Path, target: Path) -> None:
    """Replace the artifact at ``target`` with a copy of ``source`` the way ``write_artifact`` does:
    copy beside it, then rename (a server that maps the old files keeps reading them)."""
    staging = target.with_name(f".{target.name}.staging-{uuid.uuid4().hex[:6]}")
    shutil.copytree(source, staging)
    retired = target.with_name(f".{target.name}.retired-{uuid.uuid4().hex[:6]}")
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def corrupt(artifact: Path, relative: str = "popularity.npy") -> None:
    """Change bytes of one file of an artifact (its checksum no longer matches)."""
    path = artifact / relative
    data = bytearray(path.read_bytes())
    data[-8:] = b"\xff" * 8
    path.write_bytes(bytes(data))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def recsys_serve(*options: str) -> list[str]:
    """The ``recsys serve`` command line (the port is added by :class:`Server`)."""
    return [str(Path(sys.executable).with_name("recsys")), "serve", *options]


class Server:
    """A service process on 127.0.0.1; stopped with SIGTERM, or killed with SIGKILL (its whole
    process group: every worker)."""

    def __init__(
        self,
        settings: Mapping[str, str],
        log: Path,
        *,
        command: Sequence[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        environment = {
            **os.environ,
            "RECSYS_API_KEYS": json.dumps(KEYS),
            "RECSYS_POLL_SECONDS": "0",
            "RECSYS_IMPRESSION_FLUSH_SECONDS": "0.2",
            **settings,
        }
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        argv = command or recsys_serve()
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(
            [*argv, "--port", str(self.port)],
            env=environment,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            start_new_session=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait(self, path: str = "/readyz") -> Server:
        """Wait until ``path`` answers 200 (the process failing to start is an error)."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if self.client.get(path).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{path} never answered 200:\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()

    def kill(self) -> None:
        """SIGKILL to every process of the server: no shutdown, no flush (what a crash does)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.client.close()
        self._log_file.close()


def serve_tiny(artifact: Path, root: Path, settings: Mapping[str, str] | None = None) -> Server:
    """A ready server of a copy of ``artifact`` under ``root``, with its own SQLite events;
    ``settings`` adds or overrides ``RECSYS_*`` variables."""
    served = copy_artifact(artifact, root / "artifact")
    return Server(
        {
            "RECSYS_ARTIFACT": str(served),
            "RECSYS_EVENTS_URL": f"sqlite:///{root / 'events.db'}",
            **(settings or {}),
        },
        root / "server.log",
    ).wait()


def an_event(kind: str, member: str, item: str, **extra: str) -> dict[str, str]:
    """One event body for POST /v1/events, with a fresh ``event_id``."""
    return {"event_id": uuid.uuid4().hex, "event": kind, "member_id": member, "item_id": item,
            **extra}  # fmt: skip


def post_events(server: Server, *events: dict[str, str]) -> dict[str, int]:
    """Post ``events`` with the writer's key; the counts the server answers."""
    response = server.client.post("/v1/events", json=list(events), headers=WRITE)
    assert response.status_code == 200, response.text
    return response.json()


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL cluster of its own (initdb + pg_ctl) on a free port; yields its URL.

    Skips when the binaries are missing, or when running as root without a ``postgres``
    user to run them as (PostgreSQL refuses to run as root).
    """
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not on PATH")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
        as_user = ["runuser", "-u", "postgres", "--"]
    cluster = Path(tempfile.mkdtemp(prefix="recsys-pg-"))  # /tmp: the postgres user reaches it
    if as_user:
        os.chown(cluster, owner.pw_uid, owner.pw_gid)
    data, port = cluster / "data", free_port()

    def run(*argv: str) -> None:
        subprocess.run([*as_user, *argv], check=True, capture_output=True, timeout=120)

    run(initdb, "-D", str(data), "-A", "trust", "-U", "recsys", "--no-sync")
    options = f"-p {port} -k {cluster} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(cluster / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://recsys@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(cluster, ignore_errors=True)
