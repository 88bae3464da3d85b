"""POST /webhooks/resend: size check, raw body, Svix verify, one SQL call, answer.

A delivery that does not verify (bad or missing signature, timestamp more than 5 minutes
off) gets 400 and touches nothing; 413 over 256 KiB; 503 while the database is
unreachable, so Resend retries. A verified event is acknowledged with 200 once committed
(applied, duplicate, or unmatched). One JSON log line per request, without the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from webhook.request_input import Answer, read_body, refuse_declared_oversize
from webhook.signing_secrets import db_timeout_s

TOLERANCE_S = 300
SECRET_TTL_S = 30.0

log = logging.getLogger("webhook.resend")


class SignatureRejected(Exception):
    pass


def verify_svix(body: bytes, headers: Mapping[str, str], secrets: list[str], now: float,
                tolerance_s: int = TOLERANCE_S) -> None:
    """Svix's scheme: HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the base64 part of
    whsec_...; any of the space-separated v1 signatures may match. Raises SignatureRejected.

    Ours rather than resend.Webhooks.verify because that one reads the wall clock, and the
    tolerance is part of what the tests check with `now` passed in.
    """
    msg_id, stamp, header = (headers.get(h, "") for h in ("svix-id", "svix-timestamp", "svix-signature"))
    if not (msg_id and stamp and header):
        raise SignatureRejected("missing svix-id, svix-timestamp or svix-signature header")
    if not stamp.isdigit():
        raise SignatureRejected("malformed svix-timestamp")
    if abs(now - int(stamp)) > tolerance_s:
        raise SignatureRejected(f"timestamp more than {tolerance_s} s away")
    signed = f"{msg_id}.{stamp}.".encode() + body
    offered = [part.split(",", 1)[1] for part in header.split() if part.startswith("v1,")]
    for secret in secrets:
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            log.error("the Resend webhook secret is not whsec_<base64>")
            continue
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            return
    raise SignatureRejected("signature does not match")


class SecretCache:
    """The webhook secret from settings (env RESEND_WEBHOOK_SECRET wins), kept for a short TTL."""

    def __init__(self, loader: Callable[[], list[str]], ttl_s: float = SECRET_TTL_S) -> None:
        self._loader, self._ttl_s = loader, ttl_s
        self._lock = threading.Lock()
        self._value: list[str] | None = None
        self._at = 0.0

    def get(self) -> list[str]:
        with self._lock:
            if self._value is None or time.monotonic() - self._at >= self._ttl_s:
                self._value, self._at = self._loader(), time.monotonic()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None


def _load_secrets() -> list[str]:
    from crm.settings import load_settings
    from db.pool import get_pool

    with get_pool().connection(timeout=db_timeout_s()) as conn:
        raw = str(load_settings(conn)["resend.webhook_secret"])
    return [s.strip() for s in raw.split(",") if s.strip()]


SECRETS = SecretCache(_load_secrets)


def _drop_dead_connections() -> None:
    from db.pool import get_pool

    try:
        get_pool().check()  # connections that died with a restarted server
    except Exception:  # noqa: BLE001 - best effort; the 503 is the answer either way
        log.warning("pool check failed")


def _apply(svix_id: str, event_type: str, resend_id: str | None, occurred_at: datetime,
           payload: dict[str, Any]) -> str:
    from db.email_events import apply_resend_event
    from db.pool import get_pool

    with get_pool().connection(timeout=db_timeout_s()) as conn:
        return apply_resend_event(conn, svix_id, event_type, resend_id, occurred_at, payload)


async def _db(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        if isinstance(exc, psycopg.OperationalError):
            await run_in_threadpool(_drop_dead_connections)
        raise Answer(503, "error", "database unavailable, retry later") from exc


async def resend_webhook(request: Request) -> JSONResponse:
    started = time.perf_counter()
    fields: dict[str, Any] = {"route": "resend", "svix_id": request.headers.get("svix-id", "")[:100] or None,
                              "type": None, "resend_id": None}
    try:
        status, body = await _handle(request, fields)
    except Answer as answer:
        status, body = answer.status, {"outcome": answer.outcome, "error": answer.reason}
    fields.update(status=status, outcome=body["outcome"], detail=body.get("error"),
                  duration_ms=round((time.perf_counter() - started) * 1000, 1))
    log.log(logging.WARNING if status >= 500 else logging.INFO, "resend webhook", extra={"fields": fields})
    return JSONResponse(body, status_code=status)


async def _handle(request: Request, fields: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    refuse_declared_oversize(request)
    raw = await read_body(request)
    secrets = await _db(SECRETS.get)
    if not secrets:
        log.error("no Resend webhook secret is configured (resend.webhook_secret / RESEND_WEBHOOK_SECRET)")
        raise Answer(400, "rejected", "no webhook secret configured")
    try:
        verify_svix(raw, request.headers, secrets, time.time())
    except SignatureRejected as exc:
        raise Answer(400, "rejected", str(exc)) from exc
    svix_id = request.headers["svix-id"]
    event_type, resend_id, occurred_at, payload = _parse(raw, request.headers["svix-timestamp"])
    fields.update(type=event_type, resend_id=resend_id)
    outcome = await _db(_apply, svix_id, event_type, resend_id, occurred_at, payload)
    return 200, {"outcome": outcome, "svix_id": svix_id}


def _parse(raw: bytes, stamp: str) -> tuple[str, str | None, datetime, dict[str, Any]]:
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise Answer(400, "rejected", "malformed JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) \
            or not payload["type"].startswith("email."):
        raise Answer(400, "rejected", "not a Resend email event")
    data = payload["data"] if isinstance(payload.get("data"), dict) else {}
    resend_id = data.get("email_id") if isinstance(data.get("email_id"), str) else None
    try:
        occurred_at = datetime.fromisoformat(str(payload.get("created_at")).replace("Z", "+00:00"))
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
    except ValueError:
        occurred_at = datetime.fromtimestamp(int(stamp), UTC)
    return payload["type"][:100], resend_id, occurred_at, payload


def routes() -> list[Route]:
    return [Route("/webhooks/resend", resend_webhook, methods=["POST"])]
