"""Stripe handlers for payments, charges, refunds, events and webhook endpoints."""

from __future__ import annotations

import re
from collections.abc import Callable

from sandbox import stripe_billing as billing
from sandbox import stripe_objects as so
from sandbox import stripe_refunds as refunds
from sandbox.netguard import url_shape_ok
from sandbox.state import Obj
from sandbox.stripe_call import Call, get_obj, list_response, metadata_ok, render
from sandbox.stripe_errors import StripeError, param_invalid
from sandbox.stripe_params import (
    as_bool,
    as_int,
    as_list,
    check_allowed,
    require,
)

# ---------------------------------------------------------------- payments

def invoice_payments_list(call: Call) -> Obj:
    inv, status = call.p.get("invoice"), call.p.get("status")
    pi = (call.p.get("payment") or {}).get("payment_intent") if isinstance(
        call.p.get("payment"), dict) else None
    return list_response(call, "invoice_payment", "/v1/invoice_payments", ("invoice", "status", "payment"),
                 lambda o: (inv is None or o["invoice"] == inv)
                 and (status is None or o["status"] == status)
                 and (pi is None or o["payment"].get("payment_intent") == pi))


def _retrieve(kind: str) -> Callable[[Call], Obj]:
    def handler(call: Call) -> Obj:
        check_allowed(call.p, ())
        return render(call, get_obj(call, kind, call.args[0]))
    return handler


def payment_intents_list(call: Call) -> Obj:
    cus = call.p.get("customer")
    return list_response(call, "payment_intent", "/v1/payment_intents", ("customer",),
                 lambda o: cus is None or o["customer"] == cus)


def charges_list(call: Call) -> Obj:
    cus, pi = call.p.get("customer"), call.p.get("payment_intent")
    return list_response(call, "charge", "/v1/charges", ("customer", "payment_intent"),
                 lambda o: (cus is None or o["customer"] == cus)
                 and (pi is None or o["payment_intent"] == pi))


def balance_transactions_list(call: Call) -> Obj:
    src, typ = call.p.get("source"), call.p.get("type")
    return list_response(call, "balance_transaction", "/v1/balance_transactions",
                 ("source", "type", "currency", "payout"),
                 lambda o: (src is None or o["source"] == src) and (typ is None or o["type"] == typ))


def disputes_list(call: Call) -> Obj:
    ch, pi = call.p.get("charge"), call.p.get("payment_intent")
    return list_response(call, "dispute", "/v1/disputes", ("charge", "payment_intent"),
                 lambda o: (ch is None or o["charge"] == ch)
                 and (pi is None or o["payment_intent"] == pi))


def refunds_create(call: Call) -> Obj:
    check_allowed(call.p, ("charge", "payment_intent", "amount", "reason", "metadata",
                           "instructions_email", "refund_application_fee", "reverse_transfer"))
    metadata_ok(call.p)
    params = dict(call.p)
    if "amount" in params:
        params["amount"] = as_int(params["amount"], "amount")
    if params.get("reason") not in (None, "duplicate", "fraudulent", "requested_by_customer"):
        raise param_invalid("reason", "Invalid reason: must be one of duplicate, fraudulent, "
                                      "or requested_by_customer")
    return render(call, refunds.create_refund(call.sb, call.ctx, params))


def refunds_list(call: Call) -> Obj:
    ch, pi = call.p.get("charge"), call.p.get("payment_intent")
    return list_response(call, "refund", "/v1/refunds", ("charge", "payment_intent"),
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
    return list_response(call, "event", "/v1/events", ("type", "types", "delivery_success"),
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
    out = render(call, ep)
    out["secret"] = ep["_secret"]  # Stripe reveals the signing secret only in this response.
    return out


def webhook_endpoints_list(call: Call) -> Obj:
    return list_response(call, "webhook_endpoint", "/v1/webhook_endpoints", ())


def webhook_endpoints_update(call: Call) -> Obj:
    check_allowed(call.p, ("url", "enabled_events", "description", "metadata", "disabled"))
    ep = get_obj(call, "webhook_endpoint", call.args[0])
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
    return render(call, ep)


def webhook_endpoints_delete(call: Call) -> Obj:
    ep = get_obj(call, "webhook_endpoint", call.args[0])
    del call.sb.store.coll(call.ctx.mode, "webhook_endpoint")[ep["id"]]
    return {"id": ep["id"], "object": "webhook_endpoint", "deleted": True}
