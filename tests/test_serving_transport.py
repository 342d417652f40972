"""In transit: ``recsys serve`` over HTTPS with its own certificate (and the clear refusals of
a wrong one), and an API key rotated with no request refused: two replicas on one event store,
both keys valid at once, then the old one retired by a rolling restart, under load, as
docs/operations.md describes."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from features.errors import ConfigError
from serving.server import tls_options
from serving.settings import Settings
from tests.cli import run_recsys
from tests.serving_helpers import (
    START_TIMEOUT_SECONDS,
    WRITE,
    Server,
    an_event,
    free_port,
    recsys_serve,
)

OLD, NEW = "old-events-key-0123456789", "new-events-key-9876543210"


def _self_signed(root: Path, password: bytes | None = None) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, and the key (PEM; encrypted with
    ``password`` when given)."""
    x509 = pytest.importorskip("cryptography.x509", reason="the cryptography package makes it")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    cert_file, key_file = root / "cert.pem", root / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_file, key_file


def _wait_https(client: httpx.Client, server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.logs()}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"/healthz never answered over HTTPS:\n{server.logs()}")


def test_recsys_serve_answers_https_with_its_certificate_and_nothing_else(
    tmp_path: Path,
) -> None:
    cert, key = _self_signed(tmp_path)
    server = Server(
        {"RECSYS_EVENTS_URL": f"sqlite:///{tmp_path / 'events.db'}"},
        tmp_path / "server.log",
        command=recsys_serve("--ssl-certfile", str(cert), "--ssl-keyfile", str(key)),
    )
    https = f"https://127.0.0.1:{server.port}"
    try:
        trusted = ssl.create_default_context(cafile=cert)
        with httpx.Client(base_url=https, verify=trusted, timeout=10) as client:
            _wait_https(client, server)
            assert client.get("/healthz").json() == {"status": "ok"}
            posted = client.post("/v1/events", json=an_event("view", "M1", "I1"), headers=WRITE)
            assert posted.status_code == 200, posted.text
        with pytest.raises(httpx.TransportError):  # plain HTTP on the HTTPS port: no answer
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{https}/healthz", timeout=10)  # the system's CAs do not know it
    finally:
        server.stop()
    assert f"Uvicorn running on {https}" in server.logs()


def test_a_wrong_certificate_or_key_stops_recsys_serve_with_what_to_fix(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    done = run_recsys("serve", "--ssl-certfile", cert, "--port", str(free_port()))
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stdout
    assert "RECSYS_SSL_CERTFILE is set without RECSYS_SSL_KEYFILE" in message, message
    with pytest.raises(ValidationError, match="RECSYS_SSL_KEYFILE is set without"):
        Settings(ssl_keyfile=key)
    with pytest.raises(ConfigError, match=r"--ssl-keyfile .*missing.pem: No such file"):
        tls_options(Settings(ssl_certfile=cert, ssl_keyfile=tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="do not load together"):
        tls_options(Settings(ssl_certfile=key, ssl_keyfile=cert))  # swapped
    (tmp_path / "other").mkdir()
    other, _ = _self_signed(tmp_path / "other")
    with pytest.raises(ConfigError, match="KEY_VALUES_MISMATCH"):  # another certificate's key
        tls_options(Settings(ssl_certfile=other, ssl_keyfile=key))
    assert tls_options(Settings()) == {}


def test_an_encrypted_key_needs_its_password_in_the_environment(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, password=b"correct horse")
    with pytest.raises(ConfigError, match="needs RECSYS_SSL_KEYFILE_PASSWORD"):
        tls_options(Settings(ssl_certfile=cert, ssl_keyfile=key))  # refused, never prompted
    with pytest.raises(ConfigError, match="do not load together"):
        tls_options(Settings(ssl_certfile=cert, ssl_keyfile=key, ssl_keyfile_password="wrong"))
    options = tls_options(
        Settings(ssl_certfile=cert, ssl_keyfile=key, ssl_keyfile_password="correct horse")
    )
    assert options == {
        "ssl_certfile": str(cert), "ssl_keyfile": str(key),
        "ssl_keyfile_password": "correct horse",
    }  # fmt: skip


# -- key rotation ----------------------------------------------------------------------------


class _Balancer:
    """What deploy/nginx.conf does in front of the replicas: requests take turns, and one that
    cannot reach its replica (refused, dropped) is sent once to the next
    (``proxy_next_upstream error``). Event ids make a retried post safe."""

    def __init__(self, replicas: list[Server]) -> None:
        self.replicas = replicas
        self.turn = 0
        self.retried = 0

    def post(self, key: str) -> int:
        event = an_event("view", "M1", "I1")
        first = self.turn = (self.turn + 1) % len(self.replicas)
        for attempt in range(len(self.replicas)):
            replica = self.replicas[(first + attempt) % len(self.replicas)]
            try:
                response = httpx.post(
                    f"{replica.url}/v1/events", json=event, headers={"X-API-Key": key}, timeout=30
                )
            except httpx.TransportError:
                self.retried += 1
                continue
            return response.status_code
        return 0  # no replica answered: downtime


@contextmanager
def _load(balancer: _Balancer, key: str) -> Iterator[list[int]]:
    """Posts with ``key`` through ``balancer`` while the block runs; yields the statuses."""
    statuses: list[int] = []
    stopping = threading.Event()

    def post_forever() -> None:
        while not stopping.is_set():
            statuses.append(balancer.post(key))

    poster = threading.Thread(target=post_forever, daemon=True)
    poster.start()
    try:
        yield statuses
    finally:
        stopping.set()
        poster.join(timeout=60)


def _replica(root: Path, name: str, keys: list[str], port: int | None = None) -> Server:
    settings = {
        "RECSYS_EVENTS_URL": f"sqlite:///{root / 'events.db'}",  # one store for both
        "RECSYS_API_KEYS": json.dumps({key: ["events"] for key in keys}),
    }
    return Server(settings, root / f"{name}.log", port=port).wait("/healthz")


def _rolling_restart(replicas: list[Server], root: Path, keys: list[str], step: str) -> None:
    """Restart each replica in turn with ``keys``, the next once this one answers again."""
    for number, replica in enumerate(replicas):
        replica.stop()
        replicas[number] = _replica(root, f"{step}-{number}", keys, port=replica.port)


def _status(replica: Server, key: str) -> int:
    event = an_event("view", "M1", "I1")
    return replica.client.post("/v1/events", json=event, headers={"X-API-Key": key}).status_code


def test_a_key_is_rotated_over_two_replicas_with_no_request_refused(tmp_path: Path) -> None:
    replicas = [_replica(tmp_path, f"start-{number}", [OLD]) for number in range(2)]
    balancer = _Balancer(replicas)
    try:
        # 1. Add the new key beside the old: clients on the old key are never refused.
        with _load(balancer, OLD) as statuses:
            _rolling_restart(replicas, tmp_path, [OLD, NEW], "both")
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
        assert all(_status(replica, key) == 200 for replica in replicas for key in (OLD, NEW))
        # 2. Clients move to the new key. 3. The old key is removed: no request with the new
        # key is refused while each replica restarts (the balancer routes around it).
        balancer.retried = 0
        with _load(balancer, NEW) as statuses:
            _rolling_restart(replicas, tmp_path, [NEW], "new")
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
        assert balancer.retried > 0  # a replica was down while requests went on
        assert [_status(replica, OLD) for replica in replicas] == [401, 401]
        assert [_status(replica, NEW) for replica in replicas] == [200, 200]
    finally:
        for replica in replicas:
            replica.stop()
    with sqlite3.connect(tmp_path / "events.db") as store:
        (stored,) = store.execute("SELECT COUNT(*) FROM recsys_events").fetchone()
    assert stored >= len(statuses)  # every acknowledged post is in the one store
