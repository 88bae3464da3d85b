"""What both webhook routes share before verification: the early answer and the bounded raw body.

A body over 256 KiB is refused with 413 as soon as it is declared or streamed past the
limit, without buffering the rest; a Content-Length that is not a number is a 400.
"""

from __future__ import annotations

from starlette.requests import Request

MAX_BODY_BYTES = 256 * 1024


class Answer(Exception):
    """Ends a request early with a status and a short reason."""

    def __init__(self, status: int, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.outcome, self.reason = status, outcome, reason


def refuse_declared_oversize(request: Request) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise Answer(400, "rejected", "invalid Content-Length")
    if int(declared) > MAX_BODY_BYTES:
        raise Answer(413, "rejected", "body larger than 256 KiB")


async def read_body(request: Request) -> bytes:
    """The raw body, refusing (without reading on) once it passes the limit."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Answer(413, "rejected", "body larger than 256 KiB")
    return bytes(body)
