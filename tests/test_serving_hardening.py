"""A real server defending itself against hostile clients: idle and slow connections, huge
URLs and headers, bodies too big or too slow, keyless writes, and URLs that are not UTF-8.
Every refusal is the API's JSON error with a request id. These are the fast, deterministic
versions of what ``benchmarks/hardening.py`` does under load."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving_helpers import WRITE, Server, serve_tiny

TIMEOUT_SECONDS = 1.0
MAX_BODY_BYTES = 100_000


@pytest.fixture(scope="module")
def server(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = serve_tiny(
        tiny_trained[1],
        tmp_path_factory.mktemp("hardening"),
        {
            "RECSYS_HEADER_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
            "RECSYS_BODY_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
            "RECSYS_KEEP_ALIVE_SECONDS": str(TIMEOUT_SECONDS),
            "RECSYS_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        },
    )
    yield running
    running.stop()


def _connect(server: Server) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def _response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response read off a raw connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.split(":", 1) for line in lines)
    headers = {name.lower(): value.strip() for name, value in fields}
    while len(body) < int(headers.get("content-length", 0)):
        body += connection.recv(65536)
    return int(status_line.split()[1]), headers, body


def _json_error(status: int, headers: dict[str, str], body: bytes) -> dict:
    """The error body, checked to be the API's: JSON, with the request id of the header."""
    assert headers["content-type"] == "application/json", (status, headers, body)
    error = json.loads(body)["error"]
    assert error["request_id"] == headers["x-request-id"] and error["message"]
    return error


def _closed_within(connection: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes ``connection`` (reading what it sends), None if it
    stays open that long."""
    started = time.monotonic()
    connection.settimeout(seconds)
    try:
        while connection.recv(65536):
            pass
    except TimeoutError:
        return None
    return time.monotonic() - started


def test_connections_that_send_nothing_are_closed_after_the_header_timeout(
    server: Server,
) -> None:
    idle = [_connect(server) for _ in range(20)]
    waited = [_closed_within(connection, 10 * TIMEOUT_SECONDS) for connection in idle]
    assert all(seconds is not None for seconds in waited), waited
    for connection in idle:
        connection.close()


def test_a_kept_alive_connection_is_closed_once_idle(server: Server) -> None:
    connection = _connect(server)
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert _response(connection)[0] == 200
    assert _closed_within(connection, 10 * TIMEOUT_SECONDS) is not None
    connection.close()


def test_headers_sent_too_slowly_get_a_json_408(server: Server) -> None:
    connection = _connect(server)
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # and never the blank line
    error = _json_error(*_response(connection))
    assert error["code"] == "header_timeout"
    connection.close()


@pytest.mark.parametrize(
    ("request_head", "status", "code"),
    [
        (b"GET /v1/members/" + b"a" * 65_536 + b"/recommendations HTTP/1.1\r\nHost: t\r\n\r\n",
         414, "url_too_long"),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Padding: " + b"a" * 40_000 + b"\r\n\r\n",
         431, "headers_too_large"),
        (b"GET /v1/members/\xc3\xa9/recommendations HTTP/1.1\r\nHost: t\r\n\r\n",
         400, "malformed_request"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "malformed_request"),
    ],
    ids=["64 KiB URL", "40 kB header", "raw UTF-8 in the path", "garbage"],
)  # fmt: skip
def test_requests_the_parser_refuses_get_json_errors_with_a_request_id(
    server: Server, request_head: bytes, status: int, code: str
) -> None:
    connection = _connect(server)
    connection.sendall(request_head)
    answered = _response(connection)
    assert answered[0] == status
    assert _json_error(*answered)["code"] == code
    connection.close()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/members/%FF%FE/recommendations", "member_id"),
        ("/v1/items/%C3%28/similar", "item_id"),
        ("/v1/members/m1/recommendations?category=%FF", "category"),
        ("/v1/members/m1/recommendations?liked=ok&liked=%E9t%E9", "liked"),
    ],
)
def test_ids_that_are_not_utf8_get_a_422_naming_the_field(
    server: Server, path: str, field: str
) -> None:
    response = server.client.get(path)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["message"].startswith(f"{field}:") and error["details"][0]["field"] == field
    assert error["request_id"] == response.headers["x-request-id"]


def _post_head(length: int, *, key: bool) -> bytes:
    api_key = b"X-API-Key: writer\r\n" if key else b""
    return (
        b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + api_key
        + f"Content-Length: {length}\r\n\r\n".encode()
    )


def test_a_write_without_a_key_is_refused_before_its_body_is_read(server: Server) -> None:
    """75 MB announced, a few bytes sent: the 401 comes without the body."""
    connection = _connect(server)
    connection.sendall(_post_head(75_000_000, key=False) + b"[")
    status, headers, body = _response(connection)
    assert status == 401 and headers["connection"] == "close"
    assert _json_error(status, headers, body)["code"] == "unauthorized"
    connection.close()


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: Server) -> None:
    connection = _connect(server)
    connection.sendall(_post_head(MAX_BODY_BYTES + 1, key=True) + b"[")
    status, headers, body = _response(connection)
    assert status == 413 and headers["connection"] == "close"
    assert _json_error(status, headers, body)["code"] == "body_too_large"
    connection.close()


def test_a_chunked_body_is_refused_once_it_passes_the_limit(server: Server) -> None:
    connection = _connect(server)
    head = _post_head(0, key=True).replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
    chunk = b" " * 30_000
    connection.sendall(head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)))
    status, headers, body = _response(connection)
    assert status == 413 and _json_error(status, headers, body)["code"] == "body_too_large"
    connection.close()


def test_a_body_sent_too_slowly_gets_a_json_408(server: Server) -> None:
    connection = _connect(server)
    connection.sendall(_post_head(100, key=True) + b"[")  # 99 bytes never come
    status, headers, body = _response(connection)
    assert status == 408 and _json_error(status, headers, body)["code"] == "body_timeout"
    connection.close()


def test_a_body_that_is_not_utf8_json_gets_a_documented_400(server: Server) -> None:
    body = b'[{"event": "click", "member_id": "\xff", "item_id": "I001"}]'
    response = server.client.post(
        "/v1/events", content=body, headers={**WRITE, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unparseable_body"
    documented = server.client.get("/openapi.json").json()["paths"]["/v1/events"]["post"]
    assert {"400", "408", "413"} <= set(documented["responses"])


def test_a_valid_write_within_the_limits_is_stored(server: Server) -> None:
    events = [{"event": "click", "member_id": f"h-{i}", "item_id": "I001"} for i in range(100)]
    response = server.client.post("/v1/events", json=events, headers=WRITE)
    assert response.status_code == 200 and response.json()["stored"] == 100
