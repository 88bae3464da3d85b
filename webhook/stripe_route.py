"""POST /webhooks/stripe: size check, raw body, verify, one SQL call, answer.

Every verified event is acknowledged with 200 once it is committed (applied, duplicate,
ignored, unmatched, or rejected for a mode mismatch); a delivery that does not verify
gets 400 and touches nothing; 413 for bodies over 256 KiB; 503 while the database is
unreachable, so Stripe retries. One JSON log line per request.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from crm.stripe_event_rules import event_problem, mode_of
from webhook.database import DatabaseUnavailable, apply_verified_event, signing_secrets
from webhook.request_input import Answer, read_body, refuse_declared_oversize
from webhook.verify import SignatureRejected, verified_mode

# After a failed verification, secrets older than this are reloaded once: a secret the
# owner just saved (rotation) works at once rather than after the cache TTL.
RELOAD_AFTER_S = 5.0

log = logging.getLogger("webhook.stripe")


async def stripe_webhook(request: Request) -> JSONResponse:
    started = time.perf_counter()
    fields: dict[str, Any] = {"route": "stripe", "event_id": None, "type": None, "mode": None}
    try:
        status, body = await _handle(request, fields)
    except Answer as answer:
        status, body = answer.status, {"outcome": answer.outcome, "error": answer.reason}
    fields.update(status=status, outcome=body["outcome"], detail=body.get("error") or body.get("detail"),
                  duration_ms=round((time.perf_counter() - started) * 1000, 1))
    log.log(logging.WARNING if status >= 500 else logging.INFO, "stripe webhook", extra={"fields": fields})
    return JSONResponse(body, status_code=status)


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
    except Exception as exc:
        log.exception("applying a Stripe event failed", extra={"fields": {"event_id": event["id"]}})
        raise Answer(500, "error", "internal error") from exc
    fields.update(invoice_id=result.invoice_id, job_completed=result.job_completed,
                  resend_cancels_queued=len(result.resend_ids_to_cancel))
    return 200, {"outcome": result.outcome, "event_id": event["id"], "detail": result.detail}


async def _verify(raw: bytes, header: str) -> str:
    try:
        secrets = await run_in_threadpool(signing_secrets)
    except DatabaseUnavailable as exc:
        raise Answer(503, "error", "database unavailable, retry later") from exc
    if not secrets:
        log.error("no Stripe webhook signing secret is configured")
        raise Answer(503, "error", "no signing secret configured")
    try:
        return verified_mode(raw, header, secrets)
    except SignatureRejected as first:
        try:
            fresher = await run_in_threadpool(signing_secrets, RELOAD_AFTER_S)
        except DatabaseUnavailable:
            fresher = secrets
        if fresher is secrets:
            raise Answer(400, "rejected", first.reason) from first
        try:
            return verified_mode(raw, header, fresher)
        except SignatureRejected as second:
            raise Answer(400, "rejected", second.reason) from second


def _parse(raw: bytes, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
    try:
        event = json.loads(raw)
    except ValueError as exc:
        raise Answer(400, "rejected", "malformed JSON") from exc
    if isinstance(event, dict):
        fields.update(event_id=event["id"][:100] if isinstance(event.get("id"), str) else None,
                      type=event["type"][:100] if isinstance(event.get("type"), str) else None, mode=mode)
    problem = event_problem(event)
    if problem:
        raise Answer(400, "rejected", problem)
    if mode_of(event["livemode"]) != mode:
        raise Answer(400, "rejected", f"livemode does not match the {mode}-mode secret that verified it")
    return dict(event)
