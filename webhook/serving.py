"""How uvicorn serves the sidecar: read timeouts and a connection limit (env, with defaults).

uvicorn (h11) has no timeout for request headers: a client sending one byte every few
seconds keeps a connection, and its file descriptor, forever. GuardedH11Protocol closes
a connection whose request line and headers have not all arrived WEBHOOK_HEADER_TIMEOUT_S
after it opened (or, on a kept-alive connection, after the next request's first byte; an
idle kept-alive connection is uvicorn's keep-alive timeout's business). The body
has its own deadline (WEBHOOK_BODY_TIMEOUT_S, webhook/request_input.read_body); idle
kept-alive connections close after WEBHOOK_KEEPALIVE_S; beyond WEBHOOK_MAX_CONNECTIONS
open connections uvicorn answers 503 at once rather than queueing without bound.

`python -m webhook` and the tests' sidecar both serve with `uvicorn_options()`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from db.config import env_int

HEADER_TIMEOUT_S_DEFAULT = 10
KEEPALIVE_S_DEFAULT = 5
MAX_CONNECTIONS_DEFAULT = 1000

log = logging.getLogger("webhook.server")

_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     b"connection: close\r\ncontent-length: 31\r\n\r\nrequest headers not received.\r\n")


def header_timeout_s() -> float:
    return float(env_int("WEBHOOK_HEADER_TIMEOUT_S", HEADER_TIMEOUT_S_DEFAULT))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's line and headers."""

    _header_timer: asyncio.TimerHandle | None = None
    _waiting_cycle: object | None = None
    _partial = False  # bytes of a request whose headers are not complete have arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        between_requests = self.cycle is None or self.cycle.response_complete
        if between_requests:
            self._partial = True
            if self._header_timer is None:  # the first byte of the next request on a kept-alive connection
                self._arm_header_timer()
        super().data_received(data)
        # A new cycle exists once h11 has parsed a complete request line and headers.
        if self._header_timer is not None and self.cycle is not self._waiting_cycle:
            self._cancel_header_timer()
            self._partial = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._waiting_cycle = self.cycle
        self._header_timer = self.loop.call_later(header_timeout_s(), self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not self._waiting_cycle and self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served; its body has its own deadline
        if self._partial and (self.cycle is None or self.cycle.response_complete):
            # The client has started a request and no response is pending: a 408 is well-formed.
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()
        log.info("connection closed", extra={"fields": {
            "event": "header timeout", "detail": f"request headers not received within {header_timeout_s():g} s",
            "status": 408}})


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for uvicorn.run / uvicorn.Config."""
    return {
        "http": "webhook.serving:GuardedH11Protocol",  # by name: picklable for --workers
        "timeout_keep_alive": env_int("WEBHOOK_KEEPALIVE_S", KEEPALIVE_S_DEFAULT),
        "limit_concurrency": env_int("WEBHOOK_MAX_CONNECTIONS", MAX_CONNECTIONS_DEFAULT),
        "access_log": False,
    }
