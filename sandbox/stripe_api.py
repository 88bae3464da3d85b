"""The Stripe ``/v1`` HTTP surface: auth, idempotency, faults, routing and handlers.

Requests are form encoded as stripe-python sends them; responses and errors use
Stripe's JSON shapes and headers (``Request-Id``, ``Idempotency-Key``,
``Stripe-Version``), so the real client library raises its usual exceptions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import idempotency, ids, request_log
from sandbox import stripe_billing as billing
from sandbox import stripe_objects as so
from sandbox.context import Sandbox, StripeCtx
from sandbox.formcodec import FormDecodeError, decode
from sandbox.netguard import url_shape_ok
from sandbox.state import Obj
from sandbox.stripe_errors import StripeError, for_status, missing, param_invalid
from sandbox.stripe_events import emit
from sandbox.stripe_params import (
    LIST_PARAMS,
    as_bool,
    as_int,
    as_list,
    check_allowed,
    created_filter,
    expand,
    kind_of,
    newest_first,
    paginate,
    require,
)

_KEY_RE = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9]{4,}$")
MAX_IDEMPOTENCY_KEY = 255


@dataclass
class Call:
    sb: Sandbox
    ctx: StripeCtx
    p: Obj
    args: list[str]


# ---------------------------------------------------------------- helpers

def _get(call: Call, kind: str, obj_id: str) -> Obj:
    obj = call.sb.store.coll(call.ctx.mode, kind).get(obj_id)
    if obj is None:
        raise missing(kind, obj_id)
    return obj


def _expand_paths(call: Call) -> list[str]:
    return [str(x) for x in as_list(call.p.get("expand"), "expand")]


def _resolver(call: Call) -> Callable[[str], Obj | None]:
    def resolve(obj_id: str) -> Obj | None:
        kind = kind_of(obj_id)
        if kind is None:
            return None
        obj = call.sb.store.coll(call.ctx.mode, kind).get(obj_id)
        if obj is None:
            return None
        if kind == "invoice":
            return billing.render_invoice(call.sb, call.ctx.mode, obj)
        return so.public(obj)
    return resolve


def _render(call: Call, obj: Obj, paths: list[str] | None = None) -> Obj:
    paths = _expand_paths(call) if paths is None else paths
    if obj.get("object") == "invoice":
        wants_payments = any(p == "payments" or p.startswith("payments.") for p in paths)
        out = billing.render_invoice(call.sb, call.ctx.mode, obj, wants_payments)
    else:
        out = so.public(obj)
    return expand(out, [p for p in paths if p != "payments"], _resolver(call))


def _list(call: Call, kind: str, url: str, allowed: tuple[str, ...],
          keep: Callable[[Obj], bool] = lambda _o: True) -> Obj:
    check_allowed(call.p, LIST_PARAMS + allowed)
    in_range = created_filter(call.p.get("created"))
    objs = newest_first(o for o in call.sb.store.coll(call.ctx.mode, kind).values()
                        if in_range(o["created"]) and keep(o))
    item_paths = [p[len("data."):] for p in _expand_paths(call) if p.startswith("data.")]
    return paginate(objs, call.p, url, lambda o: _render(call, o, item_paths))


def _metadata_ok(p: Obj) -> None:
    md = p.get("metadata")
    if md not in (None, "") and not isinstance(md, dict):
        raise param_invalid("metadata", "Invalid hash")


# ---------------------------------------------------------------- customers

CUSTOMER_FIELDS = ("email", "name", "phone", "description", "metadata", "address",
                   "preferred_locales", "shipping", "invoice_settings", "tax_exempt",
                   "invoice_prefix", "payment_method", "test_clock", "balance")


def customers_create(call: Call) -> Obj:
    check_allowed(call.p, CUSTOMER_FIELDS)
    _metadata_ok(call.p)
    email = call.p.get("email")
    if email and "@" not in email:
        raise param_invalid("email", "Invalid email address: " + email, "email_invalid")
    return _render(call, billing.create_customer(call.sb, call.ctx, call.p))


def customers_list(call: Call) -> Obj:
    email = call.p.get("email")
    return _list(call, "customer", "/v1/customers", ("email", "test_clock"),
                 lambda c: email is None or c.get("email") == email)


def customers_retrieve(call: Call) -> Obj:
    check_allowed(call.p, ())
    return _render(call, _get(call, "customer", call.args[0]))


def customers_update(call: Call) -> Obj:
    check_allowed(call.p, CUSTOMER_FIELDS)
    _metadata_ok(call.p)
    cus = _get(call, "customer", call.args[0])
    return _render(call, billing.update_customer(call.sb, call.ctx, cus, call.p))


def customers_delete(call: Call) -> Obj:
    cus = _get(call, "customer", call.args[0])
    del call.sb.store.coll(call.ctx.mode, "customer")[cus["id"]]
    emit(call.sb, call.ctx, "customer.deleted", so.public(cus))
    return {"id": cus["id"], "object": "customer", "deleted": True}


# ---------------------------------------------------------------- invoices

INVOICE_CREATE = ("customer", "collection_method", "days_until_due", "due_date", "auto_advance",
                  "pending_invoice_items_behavior", "currency", "metadata", "description",
                  "footer", "statement_descriptor", "automatic_tax", "custom_fields",
                  "default_payment_method", "payment_settings", "rendering", "number",
                  "effective_at")


def _invoice_params(p: Obj) -> Obj:
    out = dict(p)
    if "days_until_due" in p:
        out["days_until_due"] = as_int(p["days_until_due"], "days_until_due", 0)
    if "due_date" in p:
        out["due_date"] = as_int(p["due_date"], "due_date", 0)
    if "auto_advance" in p:
        out["auto_advance"] = as_bool(p["auto_advance"], "auto_advance")
    if "collection_method" in p and p["collection_method"] not in ("send_invoice",
                                                                     "charge_automatically"):
        raise param_invalid("collection_method", "Invalid collection_method: must be one of "
                                                 "charge_automatically or send_invoice")
    if "currency" in p and not re.fullmatch(r"[a-z]{3}", str(p["currency"])):
        raise param_invalid("currency", f"Invalid currency: {p['currency']}")
    if p.get("pending_invoice_items_behavior") not in (None, "exclude", "include"):
        raise param_invalid("pending_invoice_items_behavior",
                            "Invalid pending_invoice_items_behavior: must be exclude or include")
    return out


def invoices_create(call: Call) -> Obj:
    check_allowed(call.p, INVOICE_CREATE)
    require(call.p, "customer")
    _metadata_ok(call.p)
    return _render(call, billing.create_invoice(call.sb, call.ctx, _invoice_params(call.p)))


def invoices_list(call: Call) -> Obj:
    status, customer = call.p.get("status"), call.p.get("customer")
    method = call.p.get("collection_method")
    if status not in (None, "draft", "open", "paid", "uncollectible", "void"):
        raise param_invalid("status", f"Invalid status: {status}")
    return _list(call, "invoice", "/v1/invoices",
                 ("status", "customer", "collection_method", "due_date", "subscription"),
                 lambda i: (status is None or i["status"] == status)
                 and (customer is None or i["customer"] == customer)
                 and (method is None or i["collection_method"] == method))


def invoices_retrieve(call: Call) -> Obj:
    check_allowed(call.p, ())
    return _render(call, _get(call, "invoice", call.args[0]))


def invoices_update(call: Call) -> Obj:
    check_allowed(call.p, INVOICE_CREATE)
    _metadata_ok(call.p)
    inv = _get(call, "invoice", call.args[0])
    params = _invoice_params(call.p)
    params.pop("customer", None)
    return _render(call, billing.update_invoice(call.sb, call.ctx, inv, params))


def invoices_delete(call: Call) -> Obj:
    inv = _get(call, "invoice", call.args[0])
    return billing.delete_invoice(call.sb, call.ctx, inv)


LINE_FIELDS = {"amount", "description", "discountable", "discounts", "invoice_item", "metadata",
               "period", "price_data", "pricing", "quantity", "tax_amounts", "tax_rates"}


def _parse_line(i: int, line: Any) -> Obj:
    prefix = f"lines[{i}]"
    if not isinstance(line, dict):
        raise param_invalid(prefix, f"Invalid object: {prefix}")
    for key in line:
        if key not in LINE_FIELDS:
            raise StripeError(f"Received unknown parameter: {prefix}[{key}]",
                              code="parameter_unknown", param=f"{prefix}[{key}]")
    if "invoice_item" in line or "pricing" in line:
        raise param_invalid(prefix, "The sandbox supports lines with `price_data` or `amount` "
                                    "only (not invoice_item or pricing.price).")
    out = dict(line)
    if "quantity" in line:
        out["quantity"] = as_int(line["quantity"], f"{prefix}[quantity]", 0)
    if "amount" in line:
        out["amount"] = as_int(line["amount"], f"{prefix}[amount]")
        if out["amount"] < 0:
            raise param_invalid(f"{prefix}[amount]", "Invalid non-negative integer "
                                "(the sandbox does not model credit lines)",
                                "parameter_invalid_integer")
    pd = line.get("price_data")
    if pd is not None:
        if not isinstance(pd, dict):
            raise param_invalid(f"{prefix}[price_data]", "Invalid object")
        if "unit_amount" not in pd:
            raise StripeError(f"Missing required param: {prefix}[price_data][unit_amount].",
                              code="parameter_missing", param=f"{prefix}[price_data][unit_amount]")
        if "currency" not in pd:
            raise StripeError(f"Missing required param: {prefix}[price_data][currency].",
                              code="parameter_missing", param=f"{prefix}[price_data][currency]")
        pd = dict(pd)
        pd["unit_amount"] = as_int(pd["unit_amount"], f"{prefix}[price_data][unit_amount]", 0)
        if not (pd.get("product_data") or {}).get("name") and not pd.get("product"):
            raise StripeError(f"Missing required param: {prefix}[price_data][product_data][name].",
                              code="parameter_missing",
                              param=f"{prefix}[price_data][product_data][name]")
        out["price_data"] = pd
    elif "amount" not in line:
        raise StripeError(f"Missing required param: {prefix}[price_data].",
                          code="parameter_missing", param=f"{prefix}[price_data]")
    if out.get("amount") is not None and not line.get("description"):
        raise StripeError(f"Missing required param: {prefix}[description].",
                          code="parameter_missing", param=f"{prefix}[description]")
    return out


def invoices_add_lines(call: Call) -> Obj:
    check_allowed(call.p, ("lines", "invoice_metadata"))
    inv = _get(call, "invoice", call.args[0])
    raw = call.p.get("lines")
    if not raw:
        raise StripeError("Missing required param: lines.", code="parameter_missing", param="lines")
    lines = [_parse_line(i, line) for i, line in enumerate(as_list(raw, "lines"))]
    billing.add_lines(call.sb, call.ctx, inv, lines)
    if isinstance(call.p.get("invoice_metadata"), dict):
        inv["metadata"] = billing.merge_metadata(inv["metadata"], call.p["invoice_metadata"])
    return _render(call, inv)


def invoices_lines(call: Call) -> Obj:
    check_allowed(call.p, LIST_PARAMS)
    inv = _get(call, "invoice", call.args[0])
    lines = [call.sb.store.coll(call.ctx.mode, "line_item")[lid] for lid in inv["_line_ids"]]
    # Invoice lines are listed in the order they were added, not newest first.
    return paginate(lines, call.p, f"/v1/invoices/{inv['id']}/lines", so.public)


def invoices_finalize(call: Call) -> Obj:
    check_allowed(call.p, ("auto_advance",))
    inv = _get(call, "invoice", call.args[0])
    params = {}
    if "auto_advance" in call.p:
        params["auto_advance"] = as_bool(call.p["auto_advance"], "auto_advance")
    return _render(call, billing.finalize(call.sb, call.ctx, inv, params))


def invoices_pay(call: Call) -> Obj:
    check_allowed(call.p, ("paid_out_of_band", "payment_method", "source", "forgive",
                           "off_session", "mandate"))
    inv = _get(call, "invoice", call.args[0])
    oob = as_bool(call.p.get("paid_out_of_band", False), "paid_out_of_band")
    pm = str(call.p.get("payment_method") or call.p.get("source") or "pm_card_visa")
    decline = None
    if "insufficientfunds" in pm.lower():
        decline = "insufficient_funds"
    elif "declined" in pm.lower():
        decline = "generic_decline"
    return _render(call, billing.pay(call.sb, call.ctx, inv, out_of_band=oob,
                                     decline_code=decline))


def invoices_void(call: Call) -> Obj:
    check_allowed(call.p, ())
    return _render(call, billing.void(call.sb, call.ctx, _get(call, "invoice", call.args[0])))


def invoices_uncollectible(call: Call) -> Obj:
    check_allowed(call.p, ())
    inv = _get(call, "invoice", call.args[0])
    return _render(call, billing.mark_uncollectible(call.sb, call.ctx, inv))


def invoices_send(call: Call) -> Obj:
    check_allowed(call.p, ())
    return _render(call, billing.send(call.sb, call.ctx, _get(call, "invoice", call.args[0])))


# ---------------------------------------------------------------- payments

def invoice_payments_list(call: Call) -> Obj:
    inv, status = call.p.get("invoice"), call.p.get("status")
    pi = (call.p.get("payment") or {}).get("payment_intent") if isinstance(
        call.p.get("payment"), dict) else None
    return _list(call, "invoice_payment", "/v1/invoice_payments", ("invoice", "status", "payment"),
                 lambda o: (inv is None or o["invoice"] == inv)
                 and (status is None or o["status"] == status)
                 and (pi is None or o["payment"].get("payment_intent") == pi))


def _retrieve(kind: str) -> Callable[[Call], Obj]:
    def handler(call: Call) -> Obj:
        check_allowed(call.p, ())
        return _render(call, _get(call, kind, call.args[0]))
    return handler


def payment_intents_list(call: Call) -> Obj:
    cus = call.p.get("customer")
    return _list(call, "payment_intent", "/v1/payment_intents", ("customer",),
                 lambda o: cus is None or o["customer"] == cus)


def charges_list(call: Call) -> Obj:
    cus, pi = call.p.get("customer"), call.p.get("payment_intent")
    return _list(call, "charge", "/v1/charges", ("customer", "payment_intent"),
                 lambda o: (cus is None or o["customer"] == cus)
                 and (pi is None or o["payment_intent"] == pi))


def balance_transactions_list(call: Call) -> Obj:
    src, typ = call.p.get("source"), call.p.get("type")
    return _list(call, "balance_transaction", "/v1/balance_transactions",
                 ("source", "type", "currency", "payout"),
                 lambda o: (src is None or o["source"] == src) and (typ is None or o["type"] == typ))


def refunds_create(call: Call) -> Obj:
    check_allowed(call.p, ("charge", "payment_intent", "amount", "reason", "metadata",
                           "instructions_email", "refund_application_fee", "reverse_transfer"))
    _metadata_ok(call.p)
    params = dict(call.p)
    if "amount" in params:
        params["amount"] = as_int(params["amount"], "amount")
    if params.get("reason") not in (None, "duplicate", "fraudulent", "requested_by_customer"):
        raise param_invalid("reason", "Invalid reason: must be one of duplicate, fraudulent, "
                                      "or requested_by_customer")
    return _render(call, billing.create_refund(call.sb, call.ctx, params))


def refunds_list(call: Call) -> Obj:
    ch, pi = call.p.get("charge"), call.p.get("payment_intent")
    return _list(call, "refund", "/v1/refunds", ("charge", "payment_intent"),
                 lambda o: (ch is None or o["charge"] == ch)
                 and (pi is None or o["payment_intent"] == pi))


# ---------------------------------------------------------------- events & endpoints

def events_list(call: Call) -> Obj:
    from sandbox.stripe_events import type_matches
    etype = call.p.get("type")
    types = [str(t) for t in as_list(call.p.get("types"), "types")]
    if etype and types:
        raise StripeError("You cannot specify both `type` and `types`.", param="types")
    if len(types) > 20:
        raise param_invalid("types", "You may pass at most 20 event types.")
    return _list(call, "event", "/v1/events", ("type", "types", "delivery_success"),
                 lambda e: (not etype or type_matches(etype, e["type"]))
                 and (not types or e["type"] in types))


_EVENT_RE = re.compile(r"^(\*|[a-z_]+(\.[a-z_]+)*(\.\*)?)$")


def webhook_endpoints_create(call: Call) -> Obj:
    check_allowed(call.p, ("url", "enabled_events", "api_version", "description", "metadata",
                           "connect"))
    require(call.p, "url")
    events = [str(e) for e in as_list(call.p.get("enabled_events"), "enabled_events")]
    if not events:
        raise StripeError("Missing required param: enabled_events.", code="parameter_missing",
                          param="enabled_events")
    for e in events:
        if not _EVENT_RE.match(e):
            raise param_invalid("enabled_events", f"Invalid event type: {e}")
    url = str(call.p["url"])
    if not url_shape_ok(url):
        raise param_invalid("url", f"Invalid URL: {url}", "url_invalid")
    params = dict(call.p, enabled_events=events)
    ep = so.webhook_endpoint(call.ctx.livemode, call.sb.store.now(), params)
    ep["_seq"] = call.sb.store.next_seq()
    call.sb.store.coll(call.ctx.mode, "webhook_endpoint")[ep["id"]] = ep
    out = _render(call, ep)
    out["secret"] = ep["_secret"]  # Stripe reveals the signing secret only in this response.
    return out


def webhook_endpoints_list(call: Call) -> Obj:
    return _list(call, "webhook_endpoint", "/v1/webhook_endpoints", ())


def webhook_endpoints_update(call: Call) -> Obj:
    check_allowed(call.p, ("url", "enabled_events", "description", "metadata", "disabled"))
    ep = _get(call, "webhook_endpoint", call.args[0])
    if "url" in call.p:
        ep["url"] = str(call.p["url"])
    if "enabled_events" in call.p:
        ep["enabled_events"] = [str(e) for e in as_list(call.p["enabled_events"], "enabled_events")]
    if "description" in call.p:
        ep["description"] = call.p["description"] or None
    if "metadata" in call.p:
        ep["metadata"] = billing.merge_metadata(ep["metadata"], call.p["metadata"])
    if "disabled" in call.p:
        ep["status"] = "disabled" if as_bool(call.p["disabled"], "disabled") else "enabled"
    return _render(call, ep)


def webhook_endpoints_delete(call: Call) -> Obj:
    ep = _get(call, "webhook_endpoint", call.args[0])
    del call.sb.store.coll(call.ctx.mode, "webhook_endpoint")[ep["id"]]
    return {"id": ep["id"], "object": "webhook_endpoint", "deleted": True}


# ---------------------------------------------------------------- routing

_ID = r"([A-Za-z0-9_]+)"
ROUTES: list[tuple[str, re.Pattern[str], Callable[[Call], Obj]]] = [
    (m, re.compile(f"^/v1/{pattern}$"), h) for m, pattern, h in [
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
    if plan.latency_s or plan.hang_s:
        await asyncio.sleep(plan.latency_s + plan.hang_s)

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
