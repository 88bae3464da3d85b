"""What both webhook routes share: the early answer, the bounded raw body, safe JSON.

A body over 256 KiB is refused with 413 as soon as it is declared or streamed past the
limit, without buffering the rest; a Content-Length that is not a number is a 400. The
whole body must arrive within WEBHOOK_BODY_TIMEOUT_S (408 and the connection closed
otherwise); a client that disconnects mid-body is logged like any other request.

`parse_json` turns a verified body into Python values that Postgres can store as jsonb,
or refuses it with 400: nesting deeper than MAX_JSON_DEPTH (json.loads would raise
RecursionError, which is not a ValueError), U+0000 or a lone surrogate in any string
(jsonb refuses the first, UTF-8 cannot encode the second), NaN or Infinity.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from starlette.requests import ClientDisconnect, Request

from db.config import env_int

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 64  # Stripe and Resend events nest about 8 levels deep
BODY_TIMEOUT_S_DEFAULT = 10


class Answer(Exception):
    """Ends a request early with a status and a short reason; `close` drops the connection
    after the answer (used when the rest of the body was not read)."""

    def __init__(self, status: int, outcome: str, reason: str, close: bool = False) -> None:
        super().__init__(reason)
        self.status, self.outcome, self.reason, self.close = status, outcome, reason, close


def body_timeout_s() -> float:
    return float(env_int("WEBHOOK_BODY_TIMEOUT_S", BODY_TIMEOUT_S_DEFAULT))


def refuse_declared_oversize(request: Request) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    # str.isdigit() accepts '²' and other digits int() refuses: ASCII digits only.
    if not (declared.isascii() and declared.isdigit()):
        raise Answer(400, "rejected", "invalid Content-Length", close=True)
    if len(declared) > 12 or int(declared) > MAX_BODY_BYTES:
        raise Answer(413, "rejected", "body larger than 256 KiB", close=True)


async def read_body(request: Request) -> bytes:
    """The raw body, refusing (without reading on) once it passes the limit or the deadline."""
    body = bytearray()
    limit = body_timeout_s()
    try:
        async with asyncio.timeout(limit):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise Answer(413, "rejected", "body larger than 256 KiB", close=True)
    except TimeoutError as exc:
        raise Answer(408, "rejected", f"body not received within {limit:g} s", close=True) from exc
    except ClientDisconnect as exc:
        raise Answer(400, "rejected", "client disconnected before the body was complete", close=True) from exc
    return bytes(body)


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf, which jsonb cannot store
        raise _NotFinite(text)
    return value


def parse_json(raw: bytes) -> Any:
    """The body as JSON that jsonb accepts, or Answer(400) saying why not (never quoting it)."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise Answer(400, "rejected", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except _NotFinite as exc:
        raise Answer(400, "rejected", "JSON number out of range") from exc
    except ValueError as exc:  # includes UnicodeDecodeError and over-long integers
        raise Answer(400, "rejected", "malformed JSON") from exc
    # Every webhook pays for this check, so the walk runs only when the bytes allow a problem:
    # U+0000 and lone surrogates can only come from a \u escape (json.loads refuses raw control
    # characters) or from UTF-8-encoded surrogates (0xED 0xA0-0xBF; json.loads decodes bytes
    # with 'surrogatepass'), and nesting deeper than the limit needs more brackets than it.
    strings = b"\\u" in raw or b"\xed" in raw
    deep = raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH
    problem = storable_problem(value, strings=strings) if strings or deep else None
    if problem:
        raise Answer(400, "rejected", problem)
    return value


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "JSON string contains \\u0000, which Postgres cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "JSON string contains a lone surrogate"
    return None


def storable_problem(value: Any, strings: bool = True) -> str | None:
    """Why a parsed JSON value cannot be stored as jsonb, or None. Iterative: no recursion.
    strings=False checks only the nesting and the numbers (the bytes ruled string problems out)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, str):
            problem = _string_problem(item) if strings else None
            if problem:
                return problem
        elif isinstance(item, float) and not math.isfinite(item):
            return "JSON number out of range"
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = _string_problem(key) if strings else None
                if problem:
                    return problem
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return None
