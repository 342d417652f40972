"""uvicorn's httptools protocol with the limits a public server needs, and JSON errors.

uvicorn closes a kept-alive connection that stays idle after a response
(``timeout_keep_alive``), but has no timeout before the first request and none for the
headers: a connection that sends nothing, or half a request line, is held forever (2,000 idle
sockets were all still open after 65 s). Neither uvicorn nor httptools offers one (a header
read timeout is what hyper and Go's ``ReadHeaderTimeout`` call it), and an ASGI middleware
cannot help, since the application is only called once the headers are in. So this subclass
arms a timer when a connection opens and when a kept-alive connection starts its next request,
and disarms it when the request's headers are complete: after ``RECSYS_HEADER_TIMEOUT_SECONDS``
the connection is closed (with a JSON 408 if a request had begun).

It also bounds what the headers may hold (httptools has no limit: a client could stream
headers until the worker ran out of memory): beyond ``RECSYS_MAX_HEADER_BYTES`` a URL gets a
414, headers a 431. And where uvicorn answers a request it cannot parse with a text/plain 400
and no request id (a URL of 64 KiB or more, which the URL parser cannot split, did), the
answer here is the API's JSON error with a request id, in the body and the ``X-Request-ID``
header, like every other error.

Timers and counters are per connection; the rest is uvicorn's, unchanged. ``recsys serve``
passes this class to uvicorn (``serving.server``).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from pydantic_core import to_json
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from serving.errors import REQUEST_ID_HEADER, error_body
from serving.settings import get_settings

__all__ = ["GuardedHttpToolsProtocol"]

_MALFORMED = (
    400,
    "malformed_request",
    "the request is not valid HTTP/1.1: check the request line and headers (a URL must be "
    "ASCII, with other bytes percent-encoded)",
)


class _RefusedError(Exception):
    """Raised inside a parser callback to stop parsing; httptools turns it into its own
    error, which uvicorn answers through :meth:`GuardedHttpToolsProtocol.send_400_response`."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a header timeout, bounded headers and JSON errors."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self._header_timeout = settings.header_timeout_seconds
        self._max_header_bytes = settings.max_header_bytes
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = False
        self._refusal: tuple[int, str, str] | None = None

    # -- the header deadline -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        self._arm_header_deadline()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_deadline()
        super().on_headers_complete()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self._header_timeout, self._on_header_timeout
            )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _on_header_timeout(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_deadline()  # a pipelined request waits for the one in flight
            return
        if not self._in_headers:  # nothing sent since the connection opened
            self.transport.close()
            return
        self._send_error(
            408,
            "header_timeout",
            f"the request headers did not arrive within {self._header_timeout:g} s "
            "(RECSYS_HEADER_TIMEOUT_SECONDS)",
        )

    # -- bounded headers -----------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self._max_header_bytes:
            self._refuse(
                414,
                "url_too_long",
                f"the URL is longer than {self._max_header_bytes:,} bytes "
                "(RECSYS_MAX_HEADER_BYTES); send long lists in a POST body",
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if len(self.url) + self._header_bytes > self._max_header_bytes:
            self._refuse(
                431,
                "headers_too_large",
                f"the URL and headers are longer than {self._max_header_bytes:,} bytes "
                "(RECSYS_MAX_HEADER_BYTES)",
            )
        super().on_header(name, value)

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._refusal = (status, code, message)
        raise _RefusedError(message)

    # -- JSON errors ---------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse (``msg`` is its generic text): the
        refusal a callback above raised, else a malformed request; JSON either way."""
        status, code, message = self._refusal or _MALFORMED
        self._send_error(status, code, message)

    def _send_error(self, status: int, code: str, message: str) -> None:
        """Answer outside any request cycle with the API's JSON error, then close."""
        self._disarm_header_deadline()
        request_id = secrets.token_hex(16)
        body = to_json(error_body(code, message, request_id))
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                REQUEST_ID_HEADER.lower().encode() + b": " + request_id.encode() + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
