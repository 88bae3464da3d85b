"""The Stripe ``/v1`` HTTP surface: auth, idempotency, faults and routing.
The handlers live in stripe_customers_invoices and stripe_money_events.

Requests are form encoded as stripe-python sends them; responses and errors use
Stripe's JSON shapes and headers (``Request-Id``, ``Idempotency-Key``,
``Stripe-Version``), so the real client library raises its usual exceptions.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import idempotency, ids, request_log
from sandbox.context import Sandbox, StripeCtx
from sandbox.formcodec import FormDecodeError, decode
from sandbox.state import Obj
from sandbox.stripe_account import account_retrieve, accounts_retrieve
from sandbox.stripe_call import Call
from sandbox.stripe_credit_notes import credit_notes_create
from sandbox.stripe_customers_invoices import (
    customers_create,
    customers_delete,
    customers_list,
    customers_retrieve,
    customers_update,
    invoices_add_lines,
    invoices_create,
    invoices_delete,
    invoices_finalize,
    invoices_lines,
    invoices_list,
    invoices_pay,
    invoices_retrieve,
    invoices_send,
    invoices_uncollectible,
    invoices_update,
    invoices_void,
)
from sandbox.stripe_errors import StripeError, for_status
from sandbox.stripe_money_events import (
    _retrieve,
    balance_transactions_list,
    charges_list,
    disputes_list,
    events_list,
    invoice_payments_list,
    payment_intents_list,
    refunds_create,
    refunds_list,
    webhook_endpoints_create,
    webhook_endpoints_delete,
    webhook_endpoints_list,
    webhook_endpoints_update,
)
from sandbox.stripe_payment_records import invoices_attach_payment, payment_records_report_payment

_KEY_RE = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9]{4,}$")
MAX_IDEMPOTENCY_KEY = 255


# ---------------------------------------------------------------- routing

_ID = r"([A-Za-z0-9_]+)"
ROUTES: list[tuple[str, re.Pattern[str], Callable[[Call], Obj]]] = [
    (m, re.compile(f"^/v1/{pattern}$"), h) for m, pattern, h in [
        ("GET", "account", account_retrieve),
        ("GET", f"accounts/{_ID}", accounts_retrieve),
        ("POST", "customers", customers_create),
        ("GET", "customers", customers_list),
        ("GET", f"customers/{_ID}", customers_retrieve),
        ("POST", f"customers/{_ID}", customers_update),
        ("DELETE", f"customers/{_ID}", customers_delete),
        ("POST", "invoices", invoices_create),
        ("GET", "invoices", invoices_list),
        ("GET", f"invoices/{_ID}", invoices_retrieve),
        ("POST", f"invoices/{_ID}", invoices_update),
        ("DELETE", f"invoices/{_ID}", invoices_delete),
        ("POST", f"invoices/{_ID}/add_lines", invoices_add_lines),
        ("GET", f"invoices/{_ID}/lines", invoices_lines),
        ("POST", f"invoices/{_ID}/finalize", invoices_finalize),
        ("POST", f"invoices/{_ID}/pay", invoices_pay),
        ("POST", f"invoices/{_ID}/void", invoices_void),
        ("POST", f"invoices/{_ID}/mark_uncollectible", invoices_uncollectible),
        ("POST", f"invoices/{_ID}/send", invoices_send),
        ("POST", f"invoices/{_ID}/attach_payment", invoices_attach_payment),
        ("POST", "payment_records/report_payment", payment_records_report_payment),
        ("GET", f"payment_records/{_ID}", _retrieve("payment_record")),
        ("POST", "credit_notes", credit_notes_create),
        ("GET", f"credit_notes/{_ID}", _retrieve("credit_note")),
        ("GET", "invoice_payments", invoice_payments_list),
        ("GET", f"invoice_payments/{_ID}", _retrieve("invoice_payment")),
        ("GET", "payment_intents", payment_intents_list),
        ("GET", f"payment_intents/{_ID}", _retrieve("payment_intent")),
        ("GET", "charges", charges_list),
        ("GET", f"charges/{_ID}", _retrieve("charge")),
        ("GET", "balance_transactions", balance_transactions_list),
        ("GET", f"balance_transactions/{_ID}", _retrieve("balance_transaction")),
        ("POST", "refunds", refunds_create),
        ("GET", "refunds", refunds_list),
        ("GET", f"refunds/{_ID}", _retrieve("refund")),
        ("GET", "disputes", disputes_list),
        ("GET", f"disputes/{_ID}", _retrieve("dispute")),
        ("GET", "events", events_list),
        ("GET", f"events/{_ID}", _retrieve("event")),
        ("POST", "webhook_endpoints", webhook_endpoints_create),
        ("GET", "webhook_endpoints", webhook_endpoints_list),
        ("GET", f"webhook_endpoints/{_ID}", _retrieve("webhook_endpoint")),
        ("POST", f"webhook_endpoints/{_ID}", webhook_endpoints_update),
        ("DELETE", f"webhook_endpoints/{_ID}", webhook_endpoints_delete),
    ]
]


def _route(method: str, path: str) -> tuple[Callable[[Call], Obj], list[str]]:
    for m, rx, handler in ROUTES:
        match = rx.match(path)
        if match and m == method:
            return handler, list(match.groups())
    raise StripeError(f"Unrecognized request URL ({method}: {path}). Please see "
                      "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                      status=404)


def _auth_mode(request: Request) -> str:
    header = request.headers.get("authorization", "")
    key = ""
    if header.lower().startswith("bearer "):
        key = header[7:].strip()
    elif header.lower().startswith("basic "):
        try:
            key = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            key = ""
    if not header:
        raise StripeError("You did not provide an API key. You need to provide your API key in "
                          "the Authorization header, using Bearer auth (e.g. 'Authorization: "
                          "Bearer YOUR_SECRET_KEY').", status=401)
    match = _KEY_RE.match(key)
    if not match:
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else key
        raise StripeError(f"Invalid API Key provided: {shown}", status=401,
                          code="api_key_invalid" if key else None)
    return match.group(2)


def _json(status: int, body: Any, headers: dict[str, str]) -> Response:
    return Response(json.dumps(body, indent=2), status_code=status,
                    media_type="application/json", headers=headers)


def public_base(sb: Sandbox, request: Request) -> str:
    return sb.settings.public_url or str(request.base_url).rstrip("/")


async def dispatch(request: Request) -> Response:
    """One keyed POST at a time per key: a second while the first runs gets Stripe's 409."""
    sb: Sandbox = request.app.state.sandbox
    key = request.headers.get("idempotency-key") if request.method == "POST" else None
    if not key:
        return await _dispatch(request)
    slot = f"{request.headers.get('authorization', '')}\x1f{key}"
    if slot in sb.inflight_keys:
        req_id = ids.request_id()
        err = StripeError("There is currently another in-progress request using this idempotency key (the same "
                          "request was probably sent twice, and the first is still going through): "
                          f"{key}. Try again later.", status=409, type="idempotency_error",
                          code="idempotency_key_in_use")
        request_log.record(sb.store, service="stripe", method=request.method, path=request.url.path,
                           query=request.url.query, idempotency_key=key, status=409, mode=None, fault=None,
                           replayed=False, request_id=req_id)
        return _json(409, err.body(req_id), {"Request-Id": req_id, "Idempotency-Key": key})
    sb.inflight_keys.add(slot)
    try:
        return await _dispatch(request)
    finally:
        sb.inflight_keys.discard(slot)


async def _dispatch(request: Request) -> Response:
    sb: Sandbox = request.app.state.sandbox
    method, path = request.method, request.url.path
    req_id = ids.request_id()
    idem_key = request.headers.get("idempotency-key") if method == "POST" else None
    headers = {"Request-Id": req_id,
               "Stripe-Version": request.headers.get("stripe-version",
                                                     sb.settings.stripe_api_version)}
    if idem_key:
        headers["Idempotency-Key"] = idem_key
    mode: str | None = None
    replayed = False

    def done(status: int, body: Any, fault: str | None = None) -> Response:
        request_log.record(sb.store, service="stripe", method=method, path=path,
                           query=request.url.query, idempotency_key=idem_key, status=status,
                           mode=mode, fault=fault, replayed=replayed, request_id=req_id)
        return _json(status, body, headers)

    plan = sb.faults.plan("stripe", method, path)
    await plan.delay()

    def fault_response() -> Response:
        assert plan.status is not None
        err = for_status(plan.status, plan.message)
        if plan.should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if plan.should_retry else "false"
        return done(err.status, err.body(req_id), plan.rule_id)

    if plan.status and plan.phase == "before":
        return fault_response()
    try:
        mode = _auth_mode(request)
        raw = (await request.body()).decode() if method == "POST" else request.url.query
        try:
            params = decode(raw)
        except FormDecodeError as exc:
            raise StripeError(str(exc), param=exc.key) from None
        handler, args = _route(method, path)
        ctx = StripeCtx(mode=mode, base_url=public_base(sb, request), request_id=req_id,
                        idempotency_key=idem_key)
        fp = ""
        if idem_key:
            if len(idem_key) > MAX_IDEMPOTENCY_KEY:
                raise StripeError(f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} "
                                  "characters.", param="Idempotency-Key")
            fp = idempotency.fingerprint(method, path, params)
            try:
                prior = idempotency.lookup(sb.store, "stripe", mode, idem_key, fp)
            except idempotency.KeyReuseMismatch:
                raise StripeError(
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with. Try using a key other than "
                    f"'{idem_key}' if you meant to execute a different request.",
                    type="idempotency_error") from None
            if prior is not None:
                replayed = True
                headers["Idempotent-Replayed"] = "true"
                headers["Original-Request"] = prior.get("request_id", "")
                return done(prior["status"], prior["body"])
        try:
            status, body = 200, handler(Call(sb, ctx, params, args))
        except StripeError as exc:
            if exc.status != 402:
                raise
            status, body = exc.status, exc.body(req_id)
        if idem_key:
            idempotency.remember(sb.store, "stripe", mode, idem_key, fp, status, body,
                                 request_id=req_id)
        if method != "GET":
            sb.store.save()
        if plan.status and plan.phase == "after":
            return fault_response()
        return done(status, body)
    except StripeError as exc:
        return done(exc.status, exc.body(req_id))


routes = [Route("/v1/{path:path}", dispatch, methods=["GET", "POST", "DELETE"])]
