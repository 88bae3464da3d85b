"""POST /webhooks/resend: size check, raw body, Svix verify, one SQL call, answer.

A delivery that does not verify (bad or missing signature, timestamp more than 5 minutes
in the past or the future, headers of any bytes) gets 400 and touches nothing; so does a
verified event whose JSON cannot be stored (too deep, U+0000, a value Postgres refuses);
413 over 256 KiB, 408 for a body that does not arrive in time; 503 while the database is
unreachable or the stored webhook secret cannot be decrypted with CRM_SECRET_KEY, so
Resend retries. A verified event is acknowledged with 200 once committed (applied,
duplicate, or unmatched). Exactly one JSON log line per request, without the body.

Signatures are checked by the official `svix` package (svix.webhooks.Webhook), which
reads the wall clock and allows 5 minutes either way.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from svix.webhooks import Webhook, WebhookVerificationError

from crm.secrets_store import SecretKeyError
from webhook.request_input import Answer, parse_json, read_body, refuse_declared_oversize
from webhook.signing_secrets import db_timeout_s

TOLERANCE_S = 300  # svix's own, fixed: five minutes either way
SECRET_TTL_S = 30.0
UNDECRYPTABLE_REASON = "stored secrets cannot be decrypted with CRM_SECRET_KEY, retry later"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SVIX_ID = re.compile(r"[\x21-\x7e]{1,255}")

log = logging.getLogger("webhook.resend")


class SignatureRejected(Exception):
    pass


def _signatures(header: str) -> str:
    """The space-separated `v1,<base64>` list with anything svix would choke on removed."""
    kept = []
    for part in header.split():
        version, sep, sig = part.partition(",")
        if sep and "," not in sig and sig.isascii() and re.fullmatch(r"[A-Za-z0-9+/=]{1,200}", sig):
            kept.append(f"{version},{sig}")
    return " ".join(kept)


def verify_svix(body: bytes, headers: Mapping[str, str], secrets: list[str]) -> None:
    """Svix's scheme, checked by svix: HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the
    base64 part of whsec_...; any of the space-separated v1 signatures may match; the
    timestamp within 5 minutes of now. Raises SignatureRejected with a reason safe to log.

    The headers are checked first so that no value (non-ASCII, '²', 5,000 digits, a
    signature without its comma) reaches svix's parser as anything but a refusal.
    """
    msg_id, stamp, header = (headers.get(h, "") for h in ("svix-id", "svix-timestamp", "svix-signature"))
    if not (msg_id and stamp and header):
        raise SignatureRejected("missing svix-id, svix-timestamp or svix-signature header")
    if not _SVIX_ID.fullmatch(msg_id):
        raise SignatureRejected("malformed svix-id")
    if not _TIMESTAMP.fullmatch(stamp):
        raise SignatureRejected("malformed svix-timestamp")
    offered = _signatures(header)
    if not offered:
        raise SignatureRejected("malformed svix-signature")
    offset = int(stamp) - time.time()
    if offset < -TOLERANCE_S:
        raise SignatureRejected(f"timestamp more than {TOLERANCE_S} s old")
    if offset > TOLERANCE_S:
        raise SignatureRejected(f"timestamp more than {TOLERANCE_S} s in the future")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureRejected("body is not UTF-8") from exc
    clean = {"svix-id": msg_id, "svix-timestamp": stamp, "svix-signature": offered}
    for secret in secrets:
        try:
            hook = Webhook(secret)
        except Exception:  # noqa: BLE001 - a misconfigured secret verifies nothing
            continue
        try:
            hook.verify(body, clean)
            return
        except WebhookVerificationError as exc:
            if "too old" in str(exc) or "too new" in str(exc):  # the clock moved between checks
                raise SignatureRejected(f"timestamp more than {TOLERANCE_S} s away") from exc
        except Exception:  # noqa: BLE001 - svix's parser refusing input is a mismatch
            continue
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
    """Run a database step in the thread pool; what goes wrong becomes an Answer without
    Postgres's message (which can quote the payload)."""
    try:
        return await run_in_threadpool(fn, *args)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        if isinstance(exc, psycopg.OperationalError):
            await run_in_threadpool(_drop_dead_connections)
        raise Answer(503, "error", "database unavailable, retry later") from None
    except psycopg.DataError as exc:
        raise Answer(400, "rejected", f"the database refused a value in the event ({type(exc).__name__})") from None
    except SecretKeyError:
        raise Answer(503, "error", UNDECRYPTABLE_REASON) from None


async def resend_webhook(request: Request) -> JSONResponse:
    started = time.perf_counter()
    svix_id = request.headers.get("svix-id", "")
    fields: dict[str, Any] = {"route": "resend", "svix_id": svix_id[:100] if _SVIX_ID.fullmatch(svix_id) else None,
                              "type": None, "resend_id": None}
    headers: dict[str, str] = {}
    try:
        status, body = await _handle(request, fields)
    except Answer as answer:
        status, body = answer.status, {"outcome": answer.outcome, "error": answer.reason}
        headers = {"Connection": "close"} if answer.close else {}
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, the frames but not the message
        status, body = 500, {"outcome": "error", "error": "internal error"}
        fields.update(error_type=type(exc).__name__, frames=traceback.format_tb(exc.__traceback__)[-3:])
    fields.update(status=status, outcome=body["outcome"], detail=body.get("error"),
                  duration_ms=round((time.perf_counter() - started) * 1000, 1))
    log.log(logging.WARNING if status >= 500 else logging.INFO, "resend webhook", extra={"fields": fields})
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle(request: Request, fields: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    refuse_declared_oversize(request)
    raw = await read_body(request)
    secrets = await _db(SECRETS.get)
    if not secrets:
        raise Answer(400, "rejected", "no webhook secret configured (resend.webhook_secret / RESEND_WEBHOOK_SECRET)")
    try:
        verify_svix(raw, request.headers, secrets)
    except SignatureRejected as exc:
        raise Answer(400, "rejected", str(exc)) from exc
    svix_id = request.headers["svix-id"]
    event_type, resend_id, occurred_at, payload = _parse(raw, request.headers["svix-timestamp"])
    fields.update(type=event_type, resend_id=resend_id)
    outcome = await _db(_apply, svix_id, event_type, resend_id, occurred_at, payload)
    return 200, {"outcome": outcome, "svix_id": svix_id}


def _parse(raw: bytes, stamp: str) -> tuple[str, str | None, datetime, dict[str, Any]]:
    payload = parse_json(raw)
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) \
            or not payload["type"].startswith("email."):
        raise Answer(400, "rejected", "not a Resend email event")
    data = payload["data"] if isinstance(payload.get("data"), dict) else {}
    email_id = data.get("email_id")
    resend_id = email_id[:255] if isinstance(email_id, str) else None
    try:
        occurred_at = datetime.fromisoformat(str(payload.get("created_at")).replace("Z", "+00:00"))
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
        occurred_at.astimezone(UTC)  # an offset that moves it out of datetime's range
    except (ValueError, OverflowError):
        occurred_at = datetime.fromtimestamp(int(stamp), UTC)
    return payload["type"][:100], resend_id, occurred_at, payload


def routes() -> list[Route]:
    return [Route("/webhooks/resend", resend_webhook, methods=["POST"])]
