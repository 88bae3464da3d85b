"""Money the business received outside Stripe (cash, a check), the way Stripe records it.

`POST /v1/payment_records/report_payment` reports a payment that happened elsewhere (a
PaymentRecord, `pr_...`: `processor_details.type` `custom` with the business's reference,
`payment_method_details.type` `custom`); `POST /v1/invoices/{id}/attach_payment` with
`payment_record` attaches it to an open invoice: an InvoicePayment (`payment.type`
`payment_record`) of that amount, `amount_paid` up and `amount_remaining` down, Paid when nothing
is left. More than the amount remaining is refused. The whole invoice settled outside Stripe is
`POST /v1/invoices/{id}/pay` with `paid_out_of_band` (sandbox/stripe_billing.py).
"""

from __future__ import annotations

from typing import Any

from sandbox import ids
from sandbox import stripe_billing as billing
from sandbox.state import Obj
from sandbox.stripe_call import Call, get_obj, render
from sandbox.stripe_errors import StripeError, param_invalid
from sandbox.stripe_objects import public
from sandbox.stripe_params import as_int, check_allowed, require


def _dict(value: Any, param: str) -> Obj:
    if not isinstance(value, dict):
        raise param_invalid(param, f"Invalid object: `{param}` must be a hash.")
    return value


def payment_records_report_payment(call: Call) -> Obj:
    check_allowed(call.p, ("amount_requested", "initiated_at", "outcome", "guaranteed", "payment_method_details",
                           "processor_details", "customer_details", "customer_presence", "description",
                           "metadata", "expand"))
    require(call.p, "amount_requested", "initiated_at", "payment_method_details")
    requested = _dict(call.p["amount_requested"], "amount_requested")
    require(requested, "currency", "value")
    value = as_int(requested["value"], "amount_requested[value]", minimum=1)
    currency = str(requested["currency"]).lower()
    outcome = str(call.p.get("outcome") or "")
    if outcome not in ("", "guaranteed"):
        raise param_invalid("outcome", "Only `guaranteed` payments can be attached to an invoice in the sandbox.")
    now = call.sb.store.now()
    processor = _dict(call.p.get("processor_details") or {"type": "custom", "custom": {}}, "processor_details")
    method = _dict(call.p["payment_method_details"], "payment_method_details")
    amount = {"currency": currency, "value": value}
    record: Obj = {
        "id": ids.stripe_id("pr"), "object": "payment_record",
        "amount": amount, "amount_authorized": amount, "amount_canceled": {"currency": currency, "value": 0},
        "amount_failed": {"currency": currency, "value": 0},
        "amount_guaranteed": amount if outcome == "guaranteed" else {"currency": currency, "value": 0},
        "amount_refunded": {"currency": currency, "value": 0}, "amount_requested": amount,
        "application": None, "created": now, "customer_details": call.p.get("customer_details"),
        "customer_presence": call.p.get("customer_presence"), "description": call.p.get("description"),
        "latest_payment_attempt_record": ids.stripe_id("par"), "livemode": call.ctx.livemode,
        "metadata": dict(call.p.get("metadata") or {}),
        "payment_method_details": {"type": str(method.get("type") or "custom"), "custom": method.get("custom")},
        "processor_details": {"type": str(processor.get("type") or "custom"), "custom": processor.get("custom")},
        "reported_by": "user", "shipping_details": None,
        "_guaranteed": outcome == "guaranteed", "_invoice": None,
    }
    record["_seq"] = call.sb.store.next_seq()
    call.sb.store.coll(call.ctx.mode, "payment_record")[record["id"]] = record
    return public(record)


def invoices_attach_payment(call: Call) -> Obj:
    check_allowed(call.p, ("payment_record", "payment_intent", "expand"))
    inv = get_obj(call, "invoice", call.args[0])
    if "payment_intent" in call.p:
        raise param_invalid("payment_intent", "The sandbox attaches payment records only (cash and checks).")
    require(call.p, "payment_record")
    record = get_obj(call, "payment_record", str(call.p["payment_record"]))
    billing._require_payable(inv)
    if record["_invoice"] is not None:
        raise StripeError("This payment record is already attached to an invoice.", param="payment_record")
    if not record["_guaranteed"]:
        raise StripeError("Only a guaranteed payment record can be attached to an invoice.", param="payment_record")
    if record["amount"]["currency"] != inv["currency"]:
        raise param_invalid("payment_record", "The payment record's currency does not match the invoice's.")
    amount = int(record["amount"]["value"])
    if amount > inv["amount_remaining"]:
        raise param_invalid("payment_record", f"The payment record's amount ({amount}) is more than the amount "
                                              f"remaining on the invoice ({inv['amount_remaining']}).")
    now = call.sb.store.now()
    record["_invoice"] = inv["id"]
    inpay: Obj = {
        "id": ids.stripe_id("inpay"), "object": "invoice_payment", "amount_paid": amount, "amount_requested": amount,
        "created": now, "currency": inv["currency"], "invoice": inv["id"], "is_default": False,
        "livemode": call.ctx.livemode, "payment": {"type": "payment_record", "payment_record": record["id"]},
        "status": "paid", "status_transitions": {"canceled_at": None, "paid_at": now},
    }
    inpay["_seq"] = call.sb.store.next_seq()
    call.sb.store.coll(call.ctx.mode, "invoice_payment")[inpay["id"]] = inpay
    before = billing._snapshot(call.sb, call.ctx, inv)
    inv["amount_paid"] += amount
    inv["amount_remaining"] -= amount
    billing.announce_reduction(call.sb, call.ctx, inv, before, now, "invoice_payment.paid", public(inpay))
    return render(call, inv)
