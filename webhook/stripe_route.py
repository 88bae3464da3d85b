"""POST /webhooks/stripe: size check, raw body, verify, one SQL call, answer.

Every verified event is acknowledged with 200 once it is committed (applied, duplicate,
ignored, unmatched, or rejected for a mode mismatch); a delivery that does not verify
gets 400 and touches nothing, whatever its bytes; so does a verified event whose JSON
cannot be stored (too deep, U+0000, a value Postgres refuses): retrying it would never
succeed. 413 for bodies over 256 KiB, 408 for a body that does not arrive in time; 503
while the database is unreachable or the stored signing secrets cannot be decrypted
with CRM_SECRET_KEY, so Stripe retries. Exactly one JSON log line per request, never
the body.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from crm.stripe_event_rules import event_problem, mode_of
from webhook.database import (
    DatabaseUnavailable,
    EventDataRejected,
    SecretsUndecryptable,
    apply_verified_event,
    cached_signing_secrets,
    signing_secrets,
)
from webhook.request_input import Answer, parse_json, read_body, refuse_declared_oversize
from webhook.verify import SignatureRejected, verified_mode

# After a failed verification, secrets older than this are reloaded once: a secret the
# owner just saved (rotation) works at once rather than after the cache TTL.
RELOAD_AFTER_S = 5.0

UNDECRYPTABLE_REASON = "stored secrets cannot be decrypted with CRM_SECRET_KEY, retry later"

log = logging.getLogger("webhook.stripe")


async def stripe_webhook(request: Request) -> JSONResponse:
    started = time.perf_counter()
    fields: dict[str, Any] = {"route": "stripe", "event_id": None, "type": None, "mode": None}
    headers: dict[str, str] = {}
    try:
        status, body = await _handle(request, fields)
    except Answer as answer:
        status, body = answer.status, {"outcome": answer.outcome, "error": answer.reason}
        headers = {"Connection": "close"} if answer.close else {}
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, the frames but not the message
        status, body = 500, {"outcome": "error", "error": "internal error"}
        fields.update(error_type=type(exc).__name__, frames=traceback.format_tb(exc.__traceback__)[-3:])
    fields.update(status=status, outcome=body["outcome"], detail=body.get("error") or body.get("detail"),
                  duration_ms=round((time.perf_counter() - started) * 1000, 1))
    log.log(logging.WARNING if status >= 500 else logging.INFO, "stripe webhook", extra={"fields": fields})
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle(request: Request, fields: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    refuse_declared_oversize(request)
    header = request.headers.get("stripe-signature")
    if not header:
        raise Answer(400, "rejected", "missing Stripe-Signature header")
    raw = await read_body(request)
    mode = await _verify(raw, header)
    event = _parse(raw, mode, fields)
    try:
        result = await run_in_threadpool(apply_verified_event, event, mode)
    except DatabaseUnavailable as exc:
        raise Answer(503, "error", "database unavailable, retry later") from exc
    except EventDataRejected as exc:
        raise Answer(400, "rejected", exc.reason) from None
    fields.update(invoice_id=result.invoice_id, job_completed=result.job_completed,
                  resend_cancels_queued=len(result.resend_ids_to_cancel))
    return 200, {"outcome": result.outcome, "event_id": event["id"], "detail": result.detail}


async def _verify(raw: bytes, header: str) -> str:
    try:
        # A cache hit needs no thread: one thread-pool hop per event (the apply), not two.
        secrets = cached_signing_secrets() or await run_in_threadpool(signing_secrets)
    except DatabaseUnavailable as exc:
        raise Answer(503, "error", "database unavailable, retry later") from exc
    except SecretsUndecryptable as exc:
        raise Answer(503, "error", UNDECRYPTABLE_REASON) from exc
    if not secrets:
        raise Answer(503, "error", "no signing secret configured")
    try:
        return verified_mode(raw, header, secrets)
    except SignatureRejected as first:
        try:
            fresher = await run_in_threadpool(signing_secrets, RELOAD_AFTER_S)
        except (DatabaseUnavailable, SecretsUndecryptable):
            fresher = secrets
        if fresher is secrets:
            raise Answer(400, "rejected", first.reason) from first
        try:
            return verified_mode(raw, header, fresher)
        except SignatureRejected as second:
            raise Answer(400, "rejected", second.reason) from second


def _parse(raw: bytes, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
    fields.update(mode=mode)
    try:
        event = parse_json(raw)
    except Answer:
        fields.update(event_id=_event_id_of(raw))
        raise
    if isinstance(event, dict):
        fields.update(event_id=_safe_label(event.get("id")), type=_safe_label(event.get("type")))
    problem = event_problem(event)
    if problem:
        raise Answer(400, "rejected", problem)
    if mode_of(event["livemode"]) != mode:
        raise Answer(400, "rejected", f"livemode does not match the {mode}-mode secret that verified it")
    return dict(event)


def _safe_label(value: object) -> str | None:
    """An id or type for the log line: a short evt_-style token, or nothing."""
    if isinstance(value, str) and value.isascii() and value.isprintable():
        return value[:100]
    return None


def _event_id_of(raw: bytes) -> str | None:
    """The event id of a body that does not parse (too deep, U+0000...), when one is visible."""
    match = re.search(rb'"id"\s*:\s*"(evt_[A-Za-z0-9_]{1,100})"', raw[:4096])
    return match.group(1).decode() if match else None
