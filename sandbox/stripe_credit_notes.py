"""Credit notes on an open invoice (`POST /v1/credit_notes`, `GET /v1/credit_notes/{id}`), what a
business issues from Stripe's Dashboard after sending: a pre-payment credit note lowers the
invoice's `amount_due` and `amount_remaining` (and raises `pre_payment_credit_notes_amount`); one
that covers all that is left makes the invoice paid. Events: `credit_note.created`,
`invoice.updated` (and `invoice.paid`). By `amount` only (no lines); the refund, credit and
out-of-band amounts of a post-payment credit note are refused, as on an invoice that is not paid.
"""

from __future__ import annotations

from sandbox import ids
from sandbox import stripe_billing as billing
from sandbox.state import Obj
from sandbox.stripe_call import Call, get_obj
from sandbox.stripe_errors import StripeError, param_invalid
from sandbox.stripe_objects import public
from sandbox.stripe_params import as_int, check_allowed, require

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")


def credit_notes_create(call: Call) -> Obj:
    check_allowed(call.p, ("invoice", "amount", "reason", "memo", "metadata", "refund_amount", "credit_amount",
                           "out_of_band_amount", "expand"))
    require(call.p, "invoice", "amount")
    inv = get_obj(call, "invoice", str(call.p["invoice"]))
    if inv["status"] != "open":
        raise StripeError(f"The sandbox issues credit notes on open invoices only; this invoice is "
                          f"`{inv['status']}`.", param="invoice")
    for post_payment in ("refund_amount", "credit_amount", "out_of_band_amount"):
        if post_payment in call.p:
            raise param_invalid(post_payment, f"`{post_payment}` applies to a paid invoice only.")
    amount = as_int(call.p["amount"], "amount", minimum=1)
    if amount > inv["amount_remaining"]:
        raise param_invalid("amount", f"The credit note's amount ({amount}) is more than the invoice's amount "
                                      f"remaining ({inv['amount_remaining']}).")
    reason = call.p.get("reason")
    if reason is not None and reason not in REASONS:
        raise param_invalid("reason", f"Invalid reason: must be one of {', '.join(REASONS)}.")
    now = call.sb.store.now()
    notes = call.sb.store.coll(call.ctx.mode, "credit_note")
    seq = 1 + sum(1 for n in notes.values() if n["invoice"] == inv["id"])
    cn: Obj = {
        "id": ids.stripe_id("cn"), "object": "credit_note", "amount": amount, "amount_shipping": 0,
        "created": now, "currency": inv["currency"], "customer": inv["customer"], "invoice": inv["id"],
        "livemode": call.ctx.livemode, "memo": call.p.get("memo"), "metadata": dict(call.p.get("metadata") or {}),
        "number": f"{inv.get('number') or inv['id']}-CN-{seq:02d}",
        "out_of_band_amount": None, "pdf": f"{call.ctx.base_url}/credit_notes/pdf", "post_payment_amount": 0,
        "pre_payment_amount": amount, "reason": reason, "refunds": [], "status": "issued", "subtotal": amount,
        "total": amount, "type": "pre_payment", "voided_at": None,
    }
    cn["_seq"] = call.sb.store.next_seq()
    notes[cn["id"]] = cn
    before = billing._snapshot(call.sb, call.ctx, inv)
    inv["amount_due"] -= amount
    inv["amount_remaining"] -= amount
    inv["pre_payment_credit_notes_amount"] = int(inv.get("pre_payment_credit_notes_amount") or 0) + amount
    billing.announce_reduction(call.sb, call.ctx, inv, before, now, "credit_note.created", public(cn))
    return public(cn)
