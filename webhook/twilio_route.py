"""POST /webhooks/twilio: Twilio's status callbacks. Size check, raw body, verify
X-Twilio-Signature, one SQL call, answer.

Twilio signs the full URL it called plus the POST parameters (sorted by name) with the
account's auth token; twilio's own `RequestValidator` checks it. The URL must be the public
one Twilio called: behind a proxy or a load balancer the request this process sees has
another scheme, host or port, so the URL verified is the `twilio.status_callback_url` setting
(the same URL the CRM gives Twilio as StatusCallback), and this request's own URL only when
that setting is empty (no proxy). A missing or malformed signature is 400, one that does not
match 403; both write nothing. A verified callback is recorded once per (MessageSid,
MessageStatus) by crm.apply_twilio_callback and acknowledged with 200 (applied, duplicate or
unmatched); 503 while the database is unreachable. Junk never gets a 5xx. One JSON log line
per request, without the body.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import psycopg
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from crm.secrets_store import SecretKeyError
from crm.texts.errors import sentence
from webhook.request_input import Answer, read_body, refuse_declared_oversize, storable_problem
from webhook.signing_secrets import db_timeout_s

SECRET_TTL_S = 30.0
_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
_SIGNATURE = re.compile(r"[A-Za-z0-9+/=]{20,100}")
_ERROR_CODE = re.compile(r"[0-9]{1,6}")
STATUSES = {"queued", "sending", "sent", "failed", "delivered", "undelivered", "receiving", "received", "accepted",
            "scheduled", "read", "partially_delivered", "canceled"}

log = logging.getLogger("webhook.twilio")


@dataclass(frozen=True)
class TwilioVerifier:
    account_sid: str
    auth_token: str
    public_url: str  # '' when unset: the request's own URL is verified


def _load() -> TwilioVerifier:
    from crm.settings import load_settings
    from crm.texts.gateway import twilio_target
    from db.pool import get_pool

    with get_pool().connection(timeout=db_timeout_s()) as conn:
        settings = load_settings(conn)
    target = twilio_target(settings)
    return TwilioVerifier(target.account_sid, target.auth_token, str(settings["twilio.status_callback_url"]))


class VerifierCache:
    """The auth token and public URL from settings (env wins), kept for a short TTL."""

    def __init__(self, loader: Callable[[], TwilioVerifier], ttl_s: float = SECRET_TTL_S) -> None:
        self._loader, self._ttl_s = loader, ttl_s
        self._lock = threading.Lock()
        self._value: TwilioVerifier | None = None
        self._at = 0.0

    def get(self) -> TwilioVerifier:
        with self._lock:
            if self._value is None or time.monotonic() - self._at >= self._ttl_s:
                self._value, self._at = self._loader(), time.monotonic()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None


VERIFIER = VerifierCache(_load)


def _form(raw: bytes) -> list[tuple[str, str]]:
    try:
        text = raw.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise Answer(400, "rejected", "body is not a form-encoded Twilio callback") from None


def _apply(sid: str, status: str, code: int | None, detail: str | None, payload: dict[str, str]) -> str:
    from db.pool import get_pool
    from db.texts import apply_callback

    with get_pool().connection(timeout=db_timeout_s()) as conn:
        return apply_callback(conn, sid, status, code, detail, payload)


async def _db(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except (PoolTimeout, psycopg.OperationalError):
        raise Answer(503, "error", "database unavailable, retry later") from None
    except psycopg.DataError as exc:
        raise Answer(400, "rejected", f"the database refused a value in the callback ({type(exc).__name__})") from None
    except SecretKeyError:
        raise Answer(503, "error", "stored secrets cannot be decrypted with CRM_SECRET_KEY, retry later") from None


async def twilio_webhook(request: Request) -> JSONResponse:
    started = time.perf_counter()
    fields: dict[str, Any] = {"route": "twilio", "sid": None, "message_status": None}
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
    log.log(logging.WARNING if status >= 500 else logging.INFO, "twilio webhook", extra={"fields": fields})
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle(request: Request, fields: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    refuse_declared_oversize(request)
    signature = request.headers.get("x-twilio-signature", "")
    if not signature:
        raise Answer(400, "rejected", "missing X-Twilio-Signature header")
    if not _SIGNATURE.fullmatch(signature):
        raise Answer(400, "rejected", "malformed X-Twilio-Signature header")
    raw = await read_body(request)
    pairs = _form(raw)
    verifier: TwilioVerifier = await _db(VERIFIER.get)
    url = verifier.public_url or str(request.url)
    params = dict(pairs)
    if len(params) != len(pairs) or not RequestValidator(verifier.auth_token).validate(url, params, signature):
        raise Answer(403, "rejected", "signature does not match")
    sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
    if not _SID.fullmatch(sid) or status not in STATUSES:
        raise Answer(400, "rejected", "not a Twilio message status callback (MessageSid, MessageStatus)")
    if params.get("AccountSid") != verifier.account_sid:
        raise Answer(400, "rejected", "callback for another Twilio account")
    raw_code = params.get("ErrorCode", "")
    if raw_code and not _ERROR_CODE.fullmatch(raw_code):
        raise Answer(400, "rejected", "malformed ErrorCode")
    problem = storable_problem(params)
    if problem:
        raise Answer(400, "rejected", problem)
    fields.update(sid=sid, message_status=status)
    code = int(raw_code) if raw_code else None
    outcome = await _db(_apply, sid, status, code, sentence(code), params)
    return 200, {"outcome": outcome, "sid": sid}


def routes() -> list[Route]:
    return [Route("/webhooks/twilio", twilio_webhook, methods=["POST"])]
