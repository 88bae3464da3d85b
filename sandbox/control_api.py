"""The ``/_sandbox`` control API used by tests and the demo (not part of either vendor's API).

It injects request faults and delivery faults, exposes the request and delivery
logs, pays or fails invoices with chosen amounts, disables webhook endpoints, moves the clock, flushes
scheduled emails, configures the Resend webhook, adds a Resend domain whose DNS is already in
place, sets Resend's rate limit, and resets everything.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import BANNER, ids, request_log
from sandbox import resend_domains as domains
from sandbox import resend_mail as mail
from sandbox import stripe_account as account
from sandbox import stripe_bank_disputes as bank
from sandbox import stripe_billing as billing
from sandbox import stripe_refunds as refunds
from sandbox import twilio_messages as texting
from sandbox.context import Sandbox, StripeCtx
from sandbox.faults import FaultSpecError
from sandbox.netguard import url_shape_ok
from sandbox.rate_limit import RateLimiter
from sandbox.state import Obj
from sandbox.stripe_api import public_base
from sandbox.stripe_errors import StripeError
from sandbox.stripe_events import redeliver
from sandbox.stripe_objects import public
from sandbox.webhook_delivery import DeliveryFaults


def _sb(request: Request) -> Sandbox:
    sb: Sandbox = request.app.state.sandbox
    return sb


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ControlError("body must be JSON") from None


class ControlError(Exception):
    pass


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True, "sandbox": True, "banner": BANNER})


async def reset(request: Request) -> Response:
    sb = _sb(request)
    await sb.deliverer.cancel_all()
    sb.store.reset()
    sb.faults.clear()
    sb.deliverer.set_faults("stripe", DeliveryFaults())
    sb.deliverer.set_faults("resend", DeliveryFaults())
    sb.deliverer.set_faults("twilio", DeliveryFaults())
    mail.configure_env_webhook(sb)
    sb.settings.bank_settle_delay_s, sb.settings.bank_debits_fail = sb.bank_defaults
    sb.resend_limiter = RateLimiter(sb.settings.resend_rate_per_s)
    sb.settings.resend_verify_delay_s = sb.resend_verify_delay_default
    sb.capabilities = {}
    (sb.settings.card_refund_delay_s, sb.settings.bank_refund_delay_s, sb.settings.refunds_fail,
     sb.settings.refund_failure_reason) = sb.refund_defaults
    sb.store.save()
    return JSONResponse({"ok": True})


async def faults(request: Request) -> Response:
    sb = _sb(request)
    if request.method == "GET":
        return JSONResponse({"data": [r.to_dict() for r in sb.faults.rules]})
    if request.method == "DELETE":
        sb.faults.clear()
        return JSONResponse({"ok": True})
    spec = await _body(request)
    specs = spec if isinstance(spec, list) else [spec]
    try:
        rules = [sb.faults.add(s) for s in specs]
    except (FaultSpecError, TypeError, ValueError) as exc:
        return _bad(str(exc))
    return JSONResponse({"data": [r.to_dict() for r in rules]})


async def fault_delete(request: Request) -> Response:
    sb = _sb(request)
    fault_id = request.path_params["fault_id"]
    return JSONResponse({"deleted": sb.faults.remove(lambda rule: rule.id == fault_id)})


async def requests_log(request: Request) -> Response:
    rows = request_log.query(_sb(request).store, dict(request.query_params))
    return JSONResponse({"data": rows, "count": len(rows)})


async def deliveries(request: Request) -> Response:
    q = request.query_params
    rows = [d for d in _sb(request).store.delivery_log
            if all(not q.get(k) or str(d.get(k)) == q[k]
                   for k in ("service", "event_id", "event_type", "outcome", "endpoint_id"))]
    return JSONResponse({"data": rows, "count": len(rows), "in_flight": _sb(request).deliverer.in_flight})


async def delivery_faults(request: Request) -> Response:
    sb = _sb(request)
    if request.method == "GET":
        return JSONResponse({k: v.to_dict() for k, v in sb.deliverer.faults.items()})
    spec = await _body(request)
    services = [spec.pop("service")] if spec.get("service") else ["stripe", "resend"]
    try:
        faults_obj = DeliveryFaults(**spec)
    except TypeError as exc:
        return _bad(str(exc))
    for rate in (faults_obj.drop_rate, faults_obj.duplicate_rate, faults_obj.delay_rate):
        if not 0 <= rate <= 1:
            return _bad("rates must be between 0 and 1")
    for service in services:
        if service not in ("stripe", "resend"):
            return _bad("service must be stripe or resend")
        sb.deliverer.set_faults(service, faults_obj)
    return JSONResponse({s: sb.deliverer.faults[s].to_dict() for s in services})


async def invoice_pay(request: Request) -> Response:
    """Pay an invoice with a chosen amount (partial payments) or make the attempt fail."""
    sb = _sb(request)
    found = sb.store.find_any_mode("invoice", request.path_params["invoice_id"])
    if found is None:
        return _bad("no such invoice", 404)
    mode, inv = found
    spec = await _body(request)
    ctx = StripeCtx(mode=mode, base_url=public_base(sb, request))
    amount = spec.get("amount")
    try:
        billing.pay(sb, ctx, inv, amount=int(amount) if amount is not None else None,
                    card_number=str(spec.get("card_number", "4242424242424242")),
                    decline_code=(spec.get("decline_code") or "generic_decline")
                    if spec.get("fail") else None)
        error = None
    except StripeError as exc:
        error = exc.body()["error"]
    sb.store.save()
    return JSONResponse({"invoice": billing.render_invoice(sb, mode, inv), "error": error},
                        status_code=200 if error is None else 402)


async def webhook_endpoint_disable(request: Request) -> Response:
    """Disable an endpoint the way Stripe does after days of failed deliveries (status 'disabled':
    nothing is delivered to it until it is re-enabled with webhook_endpoints.update(disabled=false))."""
    sb = _sb(request)
    found = sb.store.find_any_mode("webhook_endpoint", request.path_params["endpoint_id"])
    if found is None:
        return _bad("no such webhook endpoint", 404)
    found[1]["status"] = "disabled"
    sb.store.save()
    return JSONResponse(public(found[1]))


def _stripe_obj(request: Request, kind: str, key: str) -> tuple[Sandbox, StripeCtx, Obj]:
    sb = _sb(request)
    found = sb.store.find_any_mode(kind, request.path_params[key])
    if found is None:
        raise ControlError(f"no such {kind}")
    return sb, StripeCtx(mode=found[0], base_url=public_base(sb, request)), found[1]


async def _stripe_action(request: Request, kind: str, key: str, action: Any) -> Response:
    """Run one Stripe state change of the control API; a StripeError answers 402 with its body."""
    sb, ctx, obj = _stripe_obj(request, kind, key)
    spec = await _body(request)
    try:
        out: Obj = action(sb, ctx, obj, spec)
    except StripeError as exc:
        sb.store.save()
        return JSONResponse({"error": exc.body()["error"]}, status_code=402)
    sb.store.save()
    return JSONResponse(public(out))


async def invoice_pay_by_bank(request: Request) -> Response:
    """Start a bank debit (ACH) for all or part of an invoice: it stays processing until it settles."""
    return await _stripe_action(request, "invoice", "invoice_id", lambda sb, ctx, inv, spec: bank.pay_by_bank(
        sb, ctx, inv, int(spec["amount"]) if spec.get("amount") is not None else None))


async def payment_intent_settle(request: Request) -> Response:
    """Settle a processing bank debit now: {"fail": true} makes it fail (insufficient funds)."""
    return await _stripe_action(request, "payment_intent", "pi_id", lambda sb, ctx, pi, spec: bank.settle(
        sb, ctx, pi, bool(spec["fail"]) if "fail" in spec else None))


async def bank_debits(request: Request) -> Response:
    """How bank debits settle: {"settle_delay_s": seconds, "fail": bool}."""
    sb = _sb(request)
    if request.method == "POST":
        spec = await _body(request)
        if "settle_delay_s" in spec:
            sb.settings.bank_settle_delay_s = float(spec["settle_delay_s"])
        if "fail" in spec:
            sb.settings.bank_debits_fail = bool(spec["fail"])
    return JSONResponse({"settle_delay_s": sb.settings.bank_settle_delay_s, "fail": sb.settings.bank_debits_fail})


async def capabilities(request: Request) -> Response:
    """The account's capabilities: POST {"us_bank_account_ach_payments": "inactive"} changes them (as
    Stripe does while an account is being activated); GET shows them."""
    sb = _sb(request)
    if request.method == "POST":
        spec = await _body(request)
        if not isinstance(spec, dict):
            return _bad("body must be a JSON object of capability: status")
        for status in spec.values():
            if status not in account.CAPABILITY_STATUSES:
                return _bad(f"capability status must be one of {', '.join(account.CAPABILITY_STATUSES)}")
        sb.capabilities = account.capabilities(sb) | {str(k): str(v) for k, v in spec.items()}
    return JSONResponse(account.capabilities(sb))


def _refund_settings(sb: Sandbox) -> dict[str, Any]:
    s = sb.settings
    return {"card_delay_s": s.card_refund_delay_s, "bank_delay_s": s.bank_refund_delay_s, "fail": s.refunds_fail,
            "failure_reason": s.refund_failure_reason}


async def refund_config(request: Request) -> Response:
    """How refunds settle: {"card_delay_s", "bank_delay_s": seconds, "fail": bool, "failure_reason"}."""
    sb = _sb(request)
    if request.method == "POST":
        spec = await _body(request)
        reason = spec.get("failure_reason", sb.settings.refund_failure_reason)
        if reason not in refunds.FAILURE_REASONS:
            return _bad(f"failure_reason must be one of {', '.join(refunds.FAILURE_REASONS)}")
        if "card_delay_s" in spec:
            sb.settings.card_refund_delay_s = float(spec["card_delay_s"])
        if "bank_delay_s" in spec:
            sb.settings.bank_refund_delay_s = float(spec["bank_delay_s"])
        if "fail" in spec:
            sb.settings.refunds_fail = bool(spec["fail"])
        sb.settings.refund_failure_reason = str(reason)
    return JSONResponse(_refund_settings(sb))


async def refund_settle(request: Request) -> Response:
    """Settle a refund now: {"outcome": "succeeded" | "failed" | "canceled", "failure_reason": ...}; a
    succeeded refund can still fail (as a card refund the issuer returns)."""
    return await _stripe_action(request, "refund", "refund_id", lambda sb, ctx, re, spec: refunds.settle(
        sb, ctx, re, spec.get("outcome"), spec.get("failure_reason")))


async def invoice_dispute(request: Request) -> Response:
    """Open a dispute on the invoice's latest succeeded charge: {"amount": cents, "reason": "fraudulent"}."""
    def action(sb: Sandbox, ctx: StripeCtx, inv: Obj, spec: Any) -> Obj:
        ch = bank.disputable_charge(sb, ctx.mode, inv)
        return bank.open_dispute(sb, ctx, ch, int(spec["amount"]) if spec.get("amount") is not None else None,
                                 str(spec.get("reason") or "fraudulent"))
    return await _stripe_action(request, "invoice", "invoice_id", action)


async def dispute_evidence(request: Request) -> Response:
    return await _stripe_action(request, "dispute", "dispute_id",
                                lambda sb, ctx, dp, spec: bank.submit_evidence(sb, ctx, dp))


async def dispute_close(request: Request) -> Response:
    """Close a dispute: {"outcome": "won" | "lost"}."""
    return await _stripe_action(request, "dispute", "dispute_id",
                                lambda sb, ctx, dp, spec: bank.close_dispute(sb, ctx, dp, str(spec.get("outcome"))))


async def send_calls(request: Request) -> Response:
    return JSONResponse({"data": _sb(request).store.invoice_send_calls})


async def redeliver_event(request: Request) -> Response:
    sb = _sb(request)
    found = sb.store.find_any_mode("event", request.path_params["event_id"])
    if found is None:
        return _bad("no such event", 404)
    count = redeliver(sb, found[0], found[1]["id"])
    return JSONResponse({"submitted": count})


async def events(request: Request) -> Response:
    """All events of a mode, oldest first, including undelivered ones (for debugging)."""
    sb = _sb(request)
    mode = request.query_params.get("mode", "test")
    rows = sorted(sb.store.coll(mode, "event").values(), key=lambda e: e["_seq"])
    return JSONResponse({"data": [public(e) for e in rows]})


async def clock(request: Request) -> Response:
    sb = _sb(request)
    if request.method == "POST":
        spec = await _body(request)
        if "offset_s" in spec:
            sb.store.clock_offset_s = float(spec["offset_s"])
        if "advance_s" in spec:
            sb.store.clock_offset_s += float(spec["advance_s"])
        sent = mail.tick(sb)
        texts = texting.tick(sb)
        sb.store.save()
        return JSONResponse({"offset_s": sb.store.clock_offset_s, "now": sb.store.now(),
                             "emails_sent": sent, "texts_released": texts})
    return JSONResponse({"offset_s": sb.store.clock_offset_s, "now": sb.store.now()})


async def resend_flush(request: Request) -> Response:
    return JSONResponse({"emails_sent": mail.tick(_sb(request), flush_all=True)})


async def resend_emails(request: Request) -> Response:
    emails = [{k: v for k, v in e.items() if k != "_scheduled_ts"}
              for e in _sb(request).store.resend_emails.values()]
    return JSONResponse({"data": emails})


async def resend_domain(request: Request) -> Response:
    """Add a domain as a team has it after its DNS records were found: {"name": "acme.example"}.
    Returns it (verified). What a deployment did once, before the CRM's first send."""
    sb = _sb(request)
    if request.method == "DELETE":
        sb.store.resend_domains.clear()
        sb.store.save()
        return JSONResponse({"ok": True})
    spec = await _body(request)
    try:
        domain = domains.create(sb, {"name": spec.get("name")})
    except mail.ResendError as exc:
        return _bad(exc.message)
    sb.store.resend_domains[domain["id"]]["status"] = "verified"
    sb.store.save()
    return JSONResponse(domains.public(sb.store.resend_domains[domain["id"]]))


async def resend_limits(request: Request) -> Response:
    """Resend's team rate limit and DNS check time: {"per_s": requests a second (0: none),
    "verify_delay_s": seconds a verified domain stays pending}; a reset restores the settings."""
    sb = _sb(request)
    if request.method == "POST":
        spec = await _body(request)
        if "per_s" in spec:
            sb.resend_limiter = RateLimiter(float(spec["per_s"] or 0))
        if "verify_delay_s" in spec:
            sb.settings.resend_verify_delay_s = float(spec["verify_delay_s"])
    return JSONResponse({"per_s": sb.resend_limiter.per_s, "verify_delay_s": sb.settings.resend_verify_delay_s})


async def resend_webhook(request: Request) -> Response:
    sb = _sb(request)
    if request.method == "DELETE":
        sb.store.resend_webhooks.pop(mail.CONTROL_WEBHOOK_ID, None)
        return JSONResponse({"ok": True})
    spec = await _body(request)
    url = str(spec.get("url", ""))
    if not url_shape_ok(url):
        return _bad("url must be an http(s) URL")
    secret = spec.get("secret") or ids.svix_secret()
    if not str(secret).startswith("whsec_"):
        return _bad("secret must look like whsec_<base64>")
    wh = mail.set_webhook(sb, mail.CONTROL_WEBHOOK_ID, url, str(secret),
                          list(spec.get("events") or ["*"]))
    sb.store.save()
    return JSONResponse(wh)


async def twilio_messages(request: Request) -> Response:
    """Every message with its status history (the API's fields plus `history`)."""
    rows = sorted(_sb(request).store.twilio_messages.values(), key=lambda m: m["_history"][0]["at"])
    return JSONResponse({"data": [{**texting.public(m), "history": m["_history"],
                                   "status_callback": m["_callback"]} for m in rows]})


async def twilio_numbers(request: Request) -> Response:
    """`{"number": "+1...", "opted_out": true}` (as after STOP), `{"fail": 30003}` (texts to it end
    undelivered with that code), `{"landline": true}` (21614); `{"number": ..}` alone resets it."""
    sb = _sb(request)
    if request.method == "POST":
        spec = await _body(request)
        number = str(spec.get("number") or "")
        if not number.startswith("+"):
            raise ControlError("number must be E.164 (+15125550123)")
        sb.store.twilio_numbers[number] = {k: spec[k] for k in ("opted_out", "fail", "landline") if k in spec}
        sb.store.save()
    return JSONResponse({"data": sb.store.twilio_numbers})


async def twilio_flush(request: Request) -> Response:
    return JSONResponse({"texts_released": texting.tick(_sb(request), flush_all=True)})


_P = "/_sandbox"
_TABLE: list[tuple[str, Any, list[str]]] = [
    ("/health", health, ["GET"]),
    ("/reset", reset, ["POST"]),
    ("/faults", faults, ["GET", "POST", "DELETE"]),
    ("/faults/{fault_id}", fault_delete, ["DELETE"]),
    ("/requests", requests_log, ["GET"]),
    ("/deliveries", deliveries, ["GET"]),
    ("/delivery_faults", delivery_faults, ["GET", "POST"]),
    ("/stripe/invoices/{invoice_id}/pay", invoice_pay, ["POST"]),
    ("/stripe/invoices/{invoice_id}/pay_by_bank", invoice_pay_by_bank, ["POST"]),
    ("/stripe/payment_intents/{pi_id}/settle", payment_intent_settle, ["POST"]),
    ("/stripe/bank_debits", bank_debits, ["GET", "POST"]),
    ("/stripe/capabilities", capabilities, ["GET", "POST"]),
    ("/stripe/refunds", refund_config, ["GET", "POST"]),
    ("/stripe/refunds/{refund_id}/settle", refund_settle, ["POST"]),
    ("/stripe/invoices/{invoice_id}/dispute", invoice_dispute, ["POST"]),
    ("/stripe/disputes/{dispute_id}/evidence", dispute_evidence, ["POST"]),
    ("/stripe/disputes/{dispute_id}/close", dispute_close, ["POST"]),
    ("/stripe/send_calls", send_calls, ["GET"]),
    ("/stripe/webhook_endpoints/{endpoint_id}/disable", webhook_endpoint_disable, ["POST"]),
    ("/stripe/events", events, ["GET"]),
    ("/stripe/events/{event_id}/redeliver", redeliver_event, ["POST"]),
    ("/clock", clock, ["GET", "POST"]),
    ("/resend/flush", resend_flush, ["POST"]),
    ("/resend/emails", resend_emails, ["GET"]),
    ("/resend/webhook", resend_webhook, ["POST", "DELETE"]),
    ("/resend/domains", resend_domain, ["POST", "DELETE"]),
    ("/resend/limits", resend_limits, ["GET", "POST"]),
    ("/twilio/messages", twilio_messages, ["GET"]),
    ("/twilio/numbers", twilio_numbers, ["GET", "POST"]),
    ("/twilio/flush", twilio_flush, ["POST"]),
]
_HANDLERS = {path: handler for path, handler, _m in _TABLE}


def _wrap(path: str) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await _HANDLERS[path](request)
            return response
        except ControlError as exc:
            return _bad(str(exc))
    return endpoint


routes = [Route(_P + path, _wrap(path), methods=methods) for path, _h, methods in _TABLE]
