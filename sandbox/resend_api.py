"""The Resend HTTP surface under ``/resend``: emails, batch, webhooks, domains; JSON in and out.

Errors use Resend's ``{"statusCode", "name", "message"}`` body so resend-python
raises the matching exception class (422 validation_error -> ValidationError,
429 rate_limit_exceeded -> RateLimitError, ...).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import idempotency, ids, request_log
from sandbox import resend_domains as domains
from sandbox import resend_limits as limits
from sandbox import resend_mail as mail
from sandbox.context import Sandbox
from sandbox.netguard import url_shape_ok
from sandbox.resend_mail import ResendError, validation
from sandbox.state import Obj

PREFIX = "/resend"
MAX_BATCH = 100
MAX_IDEMPOTENCY_KEY = 256
WEBHOOK_EVENTS = {"email.sent", "email.scheduled", "email.delivered", "email.delivery_delayed",
                  "email.opened", "email.clicked", "email.bounced", "email.complained",
                  "email.failed", "email.suppressed"}


def _fault_error(status: int, message: str | None) -> ResendError:
    if status == 429:
        return ResendError(429, "rate_limit_exceeded", message or
                           "Too many requests. You can only make 2 requests per second. "
                           "(sandbox fault)")
    if status == 409:
        return ResendError(409, "concurrent_idempotent_requests", message or
                           "Same idempotency key used while original request is still in "
                           "progress. (sandbox fault)")
    if status >= 500:
        return ResendError(status, "application_error", message or
                           "An unexpected error occurred. (sandbox fault)")
    return ResendError(status, "sandbox_fault", message or f"Sandbox fault {status}.")


def _get_email(sb: Sandbox, email_id: str) -> Obj:
    email = sb.store.resend_emails.get(email_id)
    if email is None:
        raise ResendError(404, "not_found", "Email not found")
    return email


def _check_sender(sb: Sandbox, clean: Obj) -> None:
    domains.settle(sb)
    limits.require_verified_sender(sb.store.resend_domains, str(clean["from"]))


def send_email(sb: Sandbox, body: Any, headers: dict[str, str]) -> Obj:
    clean = mail.validate(body, sb.store.now_f())
    _check_sender(sb, clean)
    return {"id": mail.create(sb, clean)["id"]}


def send_batch(sb: Sandbox, body: Any, headers: dict[str, str]) -> Obj:
    if not isinstance(body, list):
        raise validation("The batch payload must be an array of emails.")
    if not body:
        raise validation("The batch must contain at least one email.")
    if len(body) > MAX_BATCH:
        raise validation(f"Too many emails in batch: the maximum is {MAX_BATCH}.")
    permissive = headers.get("x-batch-validation", "strict") == "permissive"
    now = sb.store.now_f()
    cleaned: list[Obj | None] = []
    errors = []
    for i, item in enumerate(body):
        try:
            cleaned.append(mail.validate(item, now, allow_schedule=False))
        except ResendError as exc:
            if not permissive:
                raise ResendError(exc.status, exc.name, f"emails[{i}]: {exc.message}") from None
            cleaned.append(None)
            errors.append({"index": i, "message": exc.message})
    for c in cleaned:
        if c is not None:
            _check_sender(sb, c)
    data = [{"id": mail.create(sb, c)["id"]} for c in cleaned if c is not None]
    out: Obj = {"data": data}
    if permissive:
        out["errors"] = errors
    return out


def list_emails(sb: Sandbox) -> Obj:
    emails = sorted(sb.store.resend_emails.values(), key=lambda e: e["created_at"], reverse=True)
    rows = [{k: v for k, v in mail.public(e).items() if k not in ("html", "text", "headers")}
            for e in emails[:100]]
    return {"object": "list", "has_more": len(emails) > 100, "data": rows}


def create_webhook(sb: Sandbox, body: Any) -> Obj:
    if not isinstance(body, dict) or not body.get("endpoint"):
        raise ResendError(422, "missing_required_field", "Missing `endpoint` field.")
    if not url_shape_ok(str(body["endpoint"])):
        raise validation("Invalid `endpoint` field: must be an http(s) URL.")
    events = body.get("events") or []
    if not isinstance(events, list) or not events:
        raise ResendError(422, "missing_required_field", "Missing `events` field.")
    bad = [e for e in events if e not in WEBHOOK_EVENTS]
    if bad:
        raise validation(f"Invalid event types: {bad}")
    wh = mail.set_webhook(sb, ids.resend_id(), str(body["endpoint"]), ids.svix_secret(),
                          [str(e) for e in events])
    return {"object": "webhook", "id": wh["id"], "signing_secret": wh["signing_secret"]}


def _route(sb: Sandbox, method: str, parts: list[str], body: Any,
           headers: dict[str, str]) -> tuple[Obj, bool]:
    """Return (response body, whether the call mutates state)."""
    routed = domains.route(sb, method, parts, body)
    if routed is not None:
        return routed
    if parts == ["emails"] and method == "POST":
        return send_email(sb, body, headers), True
    if parts == ["emails"] and method == "GET":
        return list_emails(sb), False
    if parts == ["emails", "batch"] and method == "POST":
        return send_batch(sb, body, headers), True
    if len(parts) == 2 and parts[0] == "emails":
        email = _get_email(sb, parts[1])
        if method == "GET":
            return mail.public(email), False
        if method == "PATCH":
            if not isinstance(body, dict) or "scheduled_at" not in body:
                raise ResendError(422, "missing_required_field", "Missing `scheduled_at` field.")
            mail.reschedule(sb, email, body["scheduled_at"])
            return {"object": "email", "id": email["id"]}, True
    if len(parts) == 3 and parts[0] == "emails" and parts[2] == "cancel" and method == "POST":
        email = _get_email(sb, parts[1])
        mail.cancel(sb, email)
        return {"object": "email", "id": email["id"]}, True
    if parts == ["webhooks"] and method == "POST":
        return create_webhook(sb, body), True
    if parts == ["webhooks"] and method == "GET":
        rows = [{k: v for k, v in w.items() if k != "signing_secret"}
                for w in sb.store.resend_webhooks.values()]
        return {"object": "list", "has_more": False, "data": rows}, False
    if len(parts) == 2 and parts[0] == "webhooks":
        wh = sb.store.resend_webhooks.get(parts[1])
        if wh is None:
            raise ResendError(404, "not_found", "Webhook not found")
        if method == "GET":
            return dict(wh), False
        if method == "DELETE":
            del sb.store.resend_webhooks[wh["id"]]
            return {"object": "webhook", "id": wh["id"], "deleted": True}, True
        if method == "PATCH" and isinstance(body, dict):
            for key in ("endpoint", "events", "status"):
                if key in body:
                    wh[key] = body[key]
            return {"object": "webhook", "id": wh["id"]}, True
    raise ResendError(404, "not_found", f"Route not found: {method} /{'/'.join(parts)}")


def _check_key(request: Request) -> None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer ") or header[7:].strip() in ("", "None"):
        raise ResendError(401, "missing_api_key", "Missing API key in the authorization header")
    if not header[7:].strip().startswith("re_"):
        raise ResendError(403, "invalid_api_key", "API key is invalid")


def _json(status: int, body: Any, headers: dict[str, str]) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


async def dispatch(request: Request) -> Response:
    sb: Sandbox = request.app.state.sandbox
    method, path = request.method, request.url.path
    sub = path[len(PREFIX):]
    idem_key = request.headers.get("idempotency-key") if method == "POST" else None
    headers: dict[str, str] = {"x-request-id": ids.resend_id()}
    replayed = False

    def done(status: int, body: Any, fault: str | None = None) -> Response:
        request_log.record(sb.store, service="resend", method=method, path=sub,
                           query=request.url.query, idempotency_key=idem_key, status=status,
                           fault=fault, replayed=replayed)
        return _json(status, body, headers)

    plan = sb.faults.plan("resend", method, sub)
    await plan.delay()

    def fault_response() -> Response:
        assert plan.status is not None
        err = _fault_error(plan.status, plan.message)
        if plan.status == 429:
            headers.update({"retry-after": "1", "ratelimit-limit": "2", "ratelimit-remaining": "0",
                            "ratelimit-reset": "1"})
        return done(err.status, err.body(), plan.rule_id)

    if plan.status and plan.phase == "before":
        return fault_response()
    try:
        _check_key(request)
        wait_s = sb.resend_limiter.retry_after()
        if wait_s is not None:
            headers.update(sb.resend_limiter.headers(wait_s))
            raise limits.rate_limited(sb.resend_limiter.per_s)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise validation("Invalid JSON body.") from None
        parts = [p for p in sub.split("/") if p]
        fp = ""
        if idem_key is not None:
            if not 1 <= len(idem_key) <= MAX_IDEMPOTENCY_KEY:
                raise ResendError(400, "invalid_idempotency_key",
                                  "The key must be between 1-256 chars.")
            fp = idempotency.fingerprint(method, sub, body)
            try:
                prior = idempotency.lookup(sb.store, "resend", "team", idem_key, fp)
            except idempotency.KeyReuseMismatch:
                raise ResendError(409, "invalid_idempotent_request",
                                  "Same idempotency key used with a different request payload. "
                                  "Change your idempotency key or payload.") from None
            if prior is not None:
                replayed = True
                return done(prior["status"], prior["body"])
        result, mutated = _route(sb, method, parts, body, dict(request.headers))
        if idem_key is not None:
            idempotency.remember(sb.store, "resend", "team", idem_key, fp, 200, result)
        if mutated:
            sb.store.save()
        if plan.status and plan.phase == "after":
            return fault_response()
        return done(200, result)
    except ResendError as exc:
        return done(exc.status, exc.body())


routes = [Route(PREFIX + "/{path:path}", dispatch, methods=["GET", "POST", "PATCH", "DELETE"])]
