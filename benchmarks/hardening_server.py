"""The server that ``benchmarks/hardening.py`` drives from outside: ``recsys serve --workers 2``
in a process group of its own, the API keys it is started with, and what every check reads of
it (the version it serves, its workers' peak memory)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

KEYS = {"hardening-writer": ["events"], "hardening-admin": ["admin"]}
WRITE = {"X-API-Key": "hardening-writer"}
ADMIN = {"X-API-Key": "hardening-admin"}
ROUTE = "/v1/members/{}/recommendations"


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


def served_version(url: str) -> str:
    """The version of one storefront answer, on a connection of its own (so that, over many
    calls, every worker answers some)."""
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as client:
        return client.get(f"{url}{ROUTE.format('hardening-probe')}").json()["model_version"]
