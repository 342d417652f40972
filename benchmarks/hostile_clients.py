"""The hostile clients of ``benchmarks/hardening.py``: raw sockets that send what a well-behaved
HTTP client never would (75 MB bodies, a 64 KiB URL, a 40 kB header, bad UTF-8, garbage,
connections that send nothing or their headers a byte a second), and what the server answered."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import time
from dataclasses import dataclass

from hardening_server import Server, peak_worker_rss, served_version

#: The server's defaults (serving/settings.py), which this run keeps.
HEADER_TIMEOUT_SECONDS = 10.0


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
    served_version(server.url)  # the server still answers meanwhile
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
