"""Stripe state changes: customers, invoices and payments, with their events (refunds:
``stripe_refunds``).

Every function here runs synchronously on the event loop thread, so each state
change and the events it emits happen atomically with respect to other requests.
HTTP parsing lives in ``stripe_api``; this module only validates state.
"""

from __future__ import annotations

from typing import Any

from sandbox import ids
from sandbox import stripe_objects as so
from sandbox.context import Sandbox, StripeCtx
from sandbox.state import Obj
from sandbox.stripe_errors import StripeError, card_declined, missing, param_invalid
from sandbox.stripe_events import emit

MAX_INVOICE_LINES = 250

# Stripe's documented test cards; anything else that is 16 digits behaves like 4242.
DECLINING_CARDS = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000009987": "lost_card",
    "4000000000000069": "expired_card",
}


def merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Stripe merges metadata; an empty string deletes a key; ``metadata=""`` clears all."""
    if update == "" or update is None:
        return {} if update == "" else current
    if not isinstance(update, dict):
        raise param_invalid("metadata", "Invalid metadata: must be a hash of keys to strings.")
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[str(key)] = str(value)
    if len(merged) > 50:
        raise param_invalid("metadata", "Metadata can have at most 50 keys.")
    return merged


def previous_attributes(before: Obj, after: Obj) -> Obj:
    return {k: v for k, v in before.items()
            if k not in ("lines", "object") and not k.startswith("_") and after.get(k) != v}


# ---------------------------------------------------------------- rendering

def render_invoice(sb: Sandbox, mode: str, inv: Obj, expand_payments: bool = False) -> Obj:
    out = so.public(inv)
    lines = [sb.store.coll(mode, "line_item")[lid] for lid in inv["_line_ids"]]
    out["lines"] = {
        "object": "list",
        "data": [so.public(li) for li in lines[:so.EMBEDDED_LINES]],
        "has_more": len(lines) > so.EMBEDDED_LINES,
        "url": f"/v1/invoices/{inv['id']}/lines",
    }
    if expand_payments:
        pays = [so.public(p) for p in sb.store.coll(mode, "invoice_payment").values()
                if p["invoice"] == inv["id"]]
        out["payments"] = {"object": "list", "data": list(reversed(pays)), "has_more": False,
                           "url": f"/v1/invoices/{inv['id']}/payments"}
    return out


def _snapshot(sb: Sandbox, ctx: StripeCtx, inv: Obj) -> Obj:
    return render_invoice(sb, ctx.mode, inv)


def _put(sb: Sandbox, ctx: StripeCtx, kind: str, obj: Obj) -> Obj:
    obj["_seq"] = sb.store.next_seq()
    sb.store.coll(ctx.mode, kind)[obj["id"]] = obj
    return obj


# ---------------------------------------------------------------- customers

def create_customer(sb: Sandbox, ctx: StripeCtx, p: Obj) -> Obj:
    cus = so.customer(ctx.livemode, sb.store.now(), p)
    cus["metadata"] = merge_metadata({}, p.get("metadata", {}))
    _put(sb, ctx, "customer", cus)
    emit(sb, ctx, "customer.created", so.public(cus))
    return cus


def update_customer(sb: Sandbox, ctx: StripeCtx, cus: Obj, p: Obj) -> Obj:
    before = so.public(cus)
    for key in ("email", "name", "phone", "description"):
        if key in p:
            cus[key] = p[key] or None
    if "balance" in p:
        cus["balance"] = int(p["balance"] or 0)
    if "preferred_locales" in p:
        cus["preferred_locales"] = list(p["preferred_locales"] or [])
    if "metadata" in p:
        cus["metadata"] = merge_metadata(cus["metadata"], p["metadata"])
    after = so.public(cus)
    prev = previous_attributes(before, after)
    if prev:
        emit(sb, ctx, "customer.updated", after, prev)
    return cus


# ---------------------------------------------------------------- invoices

def get_customer(sb: Sandbox, ctx: StripeCtx, cus_id: str, param: str = "customer") -> Obj:
    cus = sb.store.coll(ctx.mode, "customer").get(cus_id)
    if cus is None:
        raise missing("customer", cus_id, param=param, status=400)
    return cus


def create_invoice(sb: Sandbox, ctx: StripeCtx, p: Obj) -> Obj:
    cus = get_customer(sb, ctx, p["customer"])
    collection = p.get("collection_method", "charge_automatically")
    has_days, has_due = p.get("days_until_due") is not None, p.get("due_date") is not None
    if collection == "send_invoice" and not (has_days or has_due):
        raise StripeError("Invoices with `collection_method=send_invoice` must have a "
                          "`days_until_due` or `due_date`.", param="days_until_due")
    if has_days and has_due:
        raise StripeError("You can not pass both `days_until_due` and `due_date`.",
                          param="due_date")
    if collection == "charge_automatically" and (has_days or has_due):
        raise StripeError("`days_until_due` and `due_date` can only be set when "
                          "`collection_method=send_invoice`.", param="collection_method")
    now = sb.store.now()
    if has_due and p["due_date"] < now:
        raise param_invalid("due_date", "The due_date must be in the future.")
    inv = so.invoice(ctx.livemode, now, cus, p, sb.settings.business_name)
    inv["metadata"] = merge_metadata({}, p.get("metadata", {}))
    if p.get("payment_settings"):
        inv["payment_settings"].update(p["payment_settings"])
    if has_days:
        inv["due_date"] = now + int(p["days_until_due"]) * 86400
    _put(sb, ctx, "invoice", inv)
    emit(sb, ctx, "invoice.created", _snapshot(sb, ctx, inv))
    return inv


def _require_draft(inv: Obj) -> None:
    if inv["status"] != "draft":
        raise StripeError(
            f"This invoice is no longer editable because it is `{inv['status']}`; only draft "
            "invoices can have their lines changed.", code="invoice_not_editable")


def update_invoice(sb: Sandbox, ctx: StripeCtx, inv: Obj, p: Obj) -> Obj:
    draft_only = {"collection_method", "currency", "days_until_due", "due_date", "footer",
                  "statement_descriptor"}
    touched = draft_only & set(p)
    if touched and inv["status"] != "draft":
        raise StripeError(f"Finalized invoices can't be updated in this way ({sorted(touched)[0]}).",
                          code="invoice_not_editable", param=sorted(touched)[0])
    if inv["status"] in ("void", "paid") and (set(p) - {"metadata", "expand"}):
        raise StripeError(f"This invoice is `{inv['status']}`; only metadata can be updated.",
                          code="invoice_not_editable")
    before = _snapshot(sb, ctx, inv)
    for key in ("description", "footer", "statement_descriptor", "auto_advance",
                "collection_method", "due_date"):
        if key in p:
            inv[key] = p[key]
    if "days_until_due" in p:
        inv["_days_until_due"] = p["days_until_due"]
        inv["due_date"] = sb.store.now() + int(p["days_until_due"]) * 86400
    if "metadata" in p:
        inv["metadata"] = merge_metadata(inv["metadata"], p["metadata"])
    after = _snapshot(sb, ctx, inv)
    prev = previous_attributes(before, after)
    if prev:
        emit(sb, ctx, "invoice.updated", after, prev)
    return inv


def _recompute_totals(sb: Sandbox, ctx: StripeCtx, inv: Obj) -> None:
    lines = [sb.store.coll(ctx.mode, "line_item")[lid] for lid in inv["_line_ids"]]
    subtotal = sum(li["amount"] for li in lines)
    inv.update(subtotal=subtotal, subtotal_excluding_tax=subtotal, total=subtotal,
               total_excluding_tax=subtotal, amount_due=subtotal,
               amount_remaining=subtotal - inv["amount_paid"])


def add_lines(sb: Sandbox, ctx: StripeCtx, inv: Obj, lines: list[Obj]) -> Obj:
    _require_draft(inv)
    if len(inv["_line_ids"]) + len(lines) > MAX_INVOICE_LINES:
        raise StripeError(f"An invoice can have at most {MAX_INVOICE_LINES} line items.",
                          param="lines", code="invoice_not_editable")
    before = _snapshot(sb, ctx, inv)
    now = sb.store.now()
    new = []
    for i, line in enumerate(lines):
        currency = (line.get("price_data") or {}).get("currency", inv["currency"])
        if currency != inv["currency"]:
            raise param_invalid(f"lines[{i}][price_data][currency]",
                                f"The line currency ({currency}) must match the invoice "
                                f"currency ({inv['currency']}).")
        li = so.line_item(ctx.livemode, now, inv["id"], inv["currency"], line)
        new.append(li)
    for li in new:
        _put(sb, ctx, "line_item", li)
        inv["_line_ids"].append(li["id"])
    _recompute_totals(sb, ctx, inv)
    after = _snapshot(sb, ctx, inv)
    emit(sb, ctx, "invoice.updated", after, previous_attributes(before, after))
    return inv


def delete_invoice(sb: Sandbox, ctx: StripeCtx, inv: Obj) -> Obj:
    if inv["status"] != "draft":
        raise StripeError("You can only delete draft invoices. Finalized invoices can be "
                          "voided instead.", code="invoice_not_editable")
    del sb.store.coll(ctx.mode, "invoice")[inv["id"]]
    emit(sb, ctx, "invoice.deleted", _snapshot(sb, ctx, inv))
    return {"id": inv["id"], "object": "invoice", "deleted": True}


def finalize(sb: Sandbox, ctx: StripeCtx, inv: Obj, p: Obj) -> Obj:
    if inv["status"] != "draft":
        raise StripeError("This invoice is already finalized, you can't re-finalize a "
                          "non-draft invoice.", code="invoice_not_editable")
    store = sb.store
    now = store.now()
    cus = store.coll(ctx.mode, "customer").get(inv["customer"])
    if cus is not None:
        seq = cus["next_invoice_sequence"]
        cus["next_invoice_sequence"] = seq + 1
        inv["number"] = f"{cus['invoice_prefix']}-{seq:04d}"
    if "auto_advance" in p:
        inv["auto_advance"] = p["auto_advance"]
    if inv.get("_days_until_due") is not None:
        inv["due_date"] = now + int(inv["_days_until_due"]) * 86400
    inv["status"] = "open"
    inv["effective_at"] = now
    inv["status_transitions"]["finalized_at"] = now
    inv["hosted_invoice_url"] = f"{ctx.base_url}/i/{inv['id']}"
    inv["invoice_pdf"] = f"{ctx.base_url}/i/{inv['id']}/pdf"
    inv["webhooks_delivered_at"] = now
    _recompute_totals(sb, ctx, inv)
    _apply_customer_balance(inv, cus)
    if inv["amount_due"] > 0:
        _create_default_payment(sb, ctx, inv, now)
    emit(sb, ctx, "invoice.finalized", _snapshot(sb, ctx, inv))
    if inv["amount_due"] == 0:
        # Stripe marks a zero-amount invoice paid as soon as it is finalized.
        before = _snapshot(sb, ctx, inv)
        inv["status"] = "paid"
        inv["status_transitions"]["paid_at"] = now
        after = _snapshot(sb, ctx, inv)
        emit(sb, ctx, "invoice.updated", after, previous_attributes(before, after))
        emit(sb, ctx, "invoice.paid", after)
        emit(sb, ctx, "invoice.payment_succeeded", after)
    return inv


def _apply_customer_balance(inv: Obj, cus: Obj | None) -> None:
    """As Stripe does at finalization: a credit balance (negative) pays what it can of the
    total; `amount_due` drops, `total` does not, and the customer keeps the rest."""
    starting = int(cus["balance"]) if cus is not None else 0
    applied = min(inv["total"], -starting) if starting < 0 else 0
    inv["starting_balance"] = starting
    inv["ending_balance"] = starting + applied
    inv["amount_due"] = inv["total"] - applied
    inv["amount_remaining"] = inv["amount_due"] - inv["amount_paid"]
    if cus is not None:
        cus["balance"] = starting + applied


def _create_default_payment(sb: Sandbox, ctx: StripeCtx, inv: Obj, now: int) -> None:
    """As Stripe does at finalization: the invoice's default InvoicePayment and its payment
    intent, for the amount due, reused by every attempt on the hosted page."""
    pi = so.payment_intent(ctx.livemode, now, inv, inv["amount_due"])
    pi.update(payment_method=None, payment_method_types=list(
        (inv.get("payment_settings") or {}).get("payment_method_types") or ["card"]))
    pi["_invoice"] = inv["id"]
    _put(sb, ctx, "payment_intent", pi)
    inpay = _put(sb, ctx, "invoice_payment", so.invoice_payment(ctx.livemode, now, inv, pi, inv["amount_due"]))
    pi["_inpay"] = inpay["id"]
    inv["_default_pi"] = pi["id"]
    emit(sb, ctx, "payment_intent.created", so.public(pi))


def default_payment_intent(sb: Sandbox, mode: str, inv: Obj) -> Obj | None:
    """The invoice's default payment intent while an attempt can still use it."""
    pi = sb.store.coll(mode, "payment_intent").get(inv.get("_default_pi") or "")
    return pi if pi is not None and pi["status"] == "requires_payment_method" else None


def attempt_intent(sb: Sandbox, ctx: StripeCtx, inv: Obj, amount: int, now: int) -> tuple[Obj, Obj]:
    """The payment intent and InvoicePayment one attempt uses: the default pair for the amount
    remaining, a new non-default pair for any other amount."""
    pi = default_payment_intent(sb, ctx.mode, inv)
    if pi is not None and amount == inv["amount_remaining"]:
        pi.update(amount=amount, payment_method=ids.stripe_id("pm"), last_payment_error=None)
        return pi, sb.store.coll(ctx.mode, "invoice_payment")[pi["_inpay"]]
    pi = _put(sb, ctx, "payment_intent", so.payment_intent(ctx.livemode, now, inv, amount))
    pi["_invoice"] = inv["id"]
    emit(sb, ctx, "payment_intent.created", so.public(pi))
    inpay = _put(sb, ctx, "invoice_payment", so.invoice_payment(ctx.livemode, now, inv, pi, amount))
    inpay["is_default"] = False
    pi["_inpay"] = inpay["id"]
    return pi, inpay


def _require_payable(inv: Obj) -> None:
    if inv["status"] == "paid":
        raise StripeError("Invoice is already paid.", param="invoice")
    if inv["status"] not in ("open", "uncollectible"):
        raise StripeError(f"You can only pay an invoice that is open or uncollectible; this "
                          f"invoice is `{inv['status']}`.", param="invoice")


def pay(sb: Sandbox, ctx: StripeCtx, inv: Obj, *, amount: int | None = None,
        card_number: str = "4242424242424242", out_of_band: bool = False,
        decline_code: str | None = None) -> Obj:
    """Pay all or part of an invoice by test card; a declining card raises a 402 card error."""
    _require_payable(inv)
    store = sb.store
    now = store.now()
    if out_of_band:
        before = _snapshot(sb, ctx, inv)
        inv.update(status="paid", amount_remaining=0)
        inv["status_transitions"]["paid_at"] = now
        after = _snapshot(sb, ctx, inv)
        emit(sb, ctx, "invoice.updated", after, previous_attributes(before, after))
        emit(sb, ctx, "invoice.paid", after)
        return inv
    remaining = inv["amount_remaining"]
    amount = remaining if amount is None else amount
    if amount < 1 or amount > remaining:
        raise param_invalid("amount", f"The amount must be between 1 and the amount remaining "
                                      f"on the invoice ({remaining}).")
    digits = "".join(ch for ch in card_number if ch.isdigit())
    decline_code = decline_code or DECLINING_CARDS.get(digits)
    last4 = digits[-4:] if len(digits) >= 4 else "4242"
    pi, inpay = attempt_intent(sb, ctx, inv, amount, now)
    receipt = f"{ctx.base_url}/receipts/{{id}}"
    before = _snapshot(sb, ctx, inv)
    inv["attempt_count"] += 1
    inv["attempted"] = True
    if decline_code:
        ch = _put(sb, ctx, "charge", so.charge(ctx.livemode, now, pi, succeeded=False, last4=last4,
                                               txn_id=None, receipt_url=receipt,
                                               decline_code=decline_code))
        pi["latest_charge"] = ch["id"]
        pi["last_payment_error"] = {
            "charge": ch["id"], "code": "card_declined", "decline_code": decline_code,
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": "Your card was declined.", "type": "card_error",
        }
        emit(sb, ctx, "charge.failed", so.public(ch))
        emit(sb, ctx, "payment_intent.payment_failed", so.public(pi))
        inv["next_payment_attempt"] = None
        after = _snapshot(sb, ctx, inv)
        emit(sb, ctx, "invoice.payment_failed", after)
        emit(sb, ctx, "invoice.updated", after, previous_attributes(before, after))
        raise card_declined(decline_code, charge=ch["id"], payment_intent=so.public(pi))
    fee = so.stripe_fee(amount)
    ch = so.charge(ctx.livemode, now, pi, succeeded=True, last4=last4, txn_id=None,
                   receipt_url=receipt)
    txn = so.balance_transaction(now, amount=amount, fee=fee, currency=inv["currency"],
                                 source=ch["id"], kind="charge", description=pi["description"])
    ch["balance_transaction"] = txn["id"]
    _put(sb, ctx, "balance_transaction", txn)
    _put(sb, ctx, "charge", ch)
    pi.update(status="succeeded", amount_received=amount, latest_charge=ch["id"])
    inpay.update(status="paid", amount_paid=amount)
    inpay["status_transitions"]["paid_at"] = now
    settle_payment(sb, ctx, inv, before, ch, pi, inpay, amount, now)
    return inv


def settle_payment(sb: Sandbox, ctx: StripeCtx, inv: Obj, before: Obj, ch: Obj, pi: Obj, inpay: Obj,
                   amount: int, now: int) -> None:
    """A succeeded payment of `amount` on the invoice, and the events Stripe sends for it (by
    card at once, by bank debit when it settles)."""
    inv["amount_paid"] += amount
    inv["amount_remaining"] -= amount
    fully_paid = inv["amount_remaining"] == 0
    default = default_payment_intent(sb, ctx.mode, inv)
    if default is not None and not fully_paid:
        # Stripe keeps the default payment in step with the invoice's amount_remaining.
        default["amount"] = inv["amount_remaining"]
        sb.store.coll(ctx.mode, "invoice_payment")[default["_inpay"]]["amount_requested"] = inv["amount_remaining"]
    if fully_paid:
        inv["status"] = "paid"
        inv["status_transitions"]["paid_at"] = now
    emit(sb, ctx, "charge.succeeded", so.public(ch))
    emit(sb, ctx, "payment_intent.succeeded", so.public(pi))
    emit(sb, ctx, "invoice_payment.paid", so.public(inpay))
    after = _snapshot(sb, ctx, inv)
    emit(sb, ctx, "invoice.updated", after, previous_attributes(before, after))
    if fully_paid:
        emit(sb, ctx, "invoice.paid", after)
        emit(sb, ctx, "invoice.payment_succeeded", after)


def void(sb: Sandbox, ctx: StripeCtx, inv: Obj) -> Obj:
    if inv["status"] not in ("open", "uncollectible"):
        raise StripeError(f"You can only void an open or uncollectible invoice; this invoice "
                          f"is `{inv['status']}`.", param="invoice")
    before = _snapshot(sb, ctx, inv)
    now = sb.store.now()
    inv["status"] = "void"
    inv["status_transitions"]["voided_at"] = now
    after = _snapshot(sb, ctx, inv)
    emit(sb, ctx, "invoice.voided", after)
    emit(sb, ctx, "invoice.updated", after, previous_attributes(before, after))
    pi = default_payment_intent(sb, ctx.mode, inv)
    if pi is not None:
        # Voiding cancels the default payment: its intent can no longer be paid.
        pi.update(status="canceled", canceled_at=now, cancellation_reason="void_invoice")
        inpay = sb.store.coll(ctx.mode, "invoice_payment")[pi["_inpay"]]
        inpay["status"] = "canceled"
        inpay["status_transitions"]["canceled_at"] = now
        emit(sb, ctx, "payment_intent.canceled", so.public(pi))
    return inv


def mark_uncollectible(sb: Sandbox, ctx: StripeCtx, inv: Obj) -> Obj:
    if inv["status"] != "open":
        raise StripeError(f"You can only mark an open invoice as uncollectible; this invoice "
                          f"is `{inv['status']}`.", param="invoice")
    before = _snapshot(sb, ctx, inv)
    inv["status"] = "uncollectible"
    inv["status_transitions"]["marked_uncollectible_at"] = sb.store.now()
    after = _snapshot(sb, ctx, inv)
    emit(sb, ctx, "invoice.marked_uncollectible", after)
    emit(sb, ctx, "invoice.updated", after, previous_attributes(before, after))
    return inv


def send(sb: Sandbox, ctx: StripeCtx, inv: Obj) -> Obj:
    """Stripe would email the customer. The sandbox records the call so tests can forbid it."""
    sb.store.invoice_send_calls.append({"invoice": inv["id"], "mode": ctx.mode,
                                        "time": sb.store.now(), "request_id": ctx.request_id})
    if inv["status"] == "draft":
        finalize(sb, ctx, inv, {})
    if inv["status"] not in ("open",):
        raise StripeError(f"You can only send an open invoice; this invoice is "
                          f"`{inv['status']}`.", param="invoice")
    emit(sb, ctx, "invoice.sent", _snapshot(sb, ctx, inv))
    return inv


def announce_reduction(sb: Sandbox, ctx: StripeCtx, inv: Obj, before: Obj, now: int, event: str, obj: Obj) -> None:
    """After money lowered what an invoice still asks (a payment record, a credit note): paid
    once nothing remains, then the object's own event, `invoice.updated` and, if so, `invoice.paid`."""
    settled = inv["amount_remaining"] == 0
    if settled:
        inv["status"] = "paid"
        inv["status_transitions"]["paid_at"] = now
    emit(sb, ctx, event, obj)
    after = _snapshot(sb, ctx, inv)
    emit(sb, ctx, "invoice.updated", after, previous_attributes(before, after))
    if settled:
        emit(sb, ctx, "invoice.paid", after)
