"""Refunds from the CRM: an owner gives back all or part of what an invoice was paid, full or
partial, with Stripe's reason, made once however often it is pressed.

Each press carries the token of the form it came from. Before calling Stripe, one record per
Stripe refund is written (crm.refund_requests) under a key made of that token; a second press
of the same form finds those records and calls Stripe with the same keys, so Stripe replays its
first answer instead of refunding twice (invariant 12). The refund is recorded on the invoice
when Stripe's refund events arrive, as every refund is (db/functions/50_payments_refunds.sql).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm.config.settings import load_settings
from crm.money.amounts import format_cents
from crm.send.idempotency import refund_key, refund_key_prefix
from crm.stripe.gateway import StripeGateway, StripeGatewayError, stripe_target
from crm.users.auth import Session
from db import queries_refunds as read
from db import refund_requests as q
from db.pool import connection
from db.queries_invoices import get_invoice
from db.send_steps import install_id

# Stripe's Refund.reason values a refund can be created with.
REASONS: dict[str, str] = {
    "requested_by_customer": "Requested by the customer",
    "duplicate": "Duplicate payment",
    "fraudulent": "Fraudulent payment",
}
MAX_NOTE = 500


class RefundRefused(ValueError):
    """The refund was not asked of Stripe: the message says why (shown to the owner)."""


@dataclass(frozen=True)
class RefundablePayment:
    payment_id: int
    refundable_cents: int


@dataclass
class RefundResult:
    ok: bool
    message: str
    refund_ids: list[str] = field(default_factory=list)
    retryable: bool = False  # Stripe was not reached: pressing again (same form) retries


def check_request(session: Session, amount_cents: int, reason: str, refundable_cents: int,
                  currency: str = "usd") -> None:
    """Refuses what Stripe or the owner's rules would: raises RefundRefused. Pure."""
    if not session.is_owner:
        raise RefundRefused("Only an owner can refund.")
    if reason not in REASONS:
        raise RefundRefused(f"Pick a reason: {', '.join(REASONS.values())}.")
    if amount_cents <= 0:
        raise RefundRefused("The amount to refund must be more than zero.")
    if refundable_cents <= 0:
        raise RefundRefused("Nothing on this invoice can be refunded (no card or bank payment left to give back).")
    if amount_cents > refundable_cents:
        raise RefundRefused(f"At most {format_cents(refundable_cents, currency)} can be refunded.")


def plan_refund(payments: list[RefundablePayment], amount_cents: int) -> list[tuple[int, int]]:
    """(payment id, cents) per Stripe refund: from the newest payment back, each up to what it
    has left, until the amount is covered. Pure; the amount must not exceed the total left."""
    plan: list[tuple[int, int]] = []
    left = amount_cents
    for p in payments:
        if left <= 0:
            break
        take = min(left, p.refundable_cents)
        if take > 0:
            plan.append((p.payment_id, take))
            left -= take
    if left > 0:
        raise RefundRefused("The amount is more than the payments can give back.")
    return plan


def _records(invoice_id: int, amount_cents: int, reason: str, note: str | None, session: Session,
             press: str) -> tuple[str, list[dict[str, Any]]]:
    """The press's records (made now, or found from an earlier press of the same form) and its mode."""
    with connection() as conn:
        invoice = get_invoice(conn, invoice_id)
        if invoice is None or invoice["mode"] is None:
            raise RefundRefused("This invoice was never paid through Stripe.")
        mode, install = str(invoice["mode"]), install_id(conn)
        prefix = refund_key_prefix(install, mode, invoice_id, press)
        found = read.requests_for_key_prefix(conn, prefix)
        if found:
            return mode, found
        q.lock_invoice(conn, invoice_id)  # two owners refunding one invoice at once: one plans at a time
        payments = [RefundablePayment(int(p["id"]), int(p["refundable_cents"]))
                    for p in read.refundable_payments(conn, invoice_id)]
        check_request(session, amount_cents, reason, sum(max(p.refundable_cents, 0) for p in payments),
                      str(invoice["currency"]))
        for payment_id, cents in plan_refund(payments, amount_cents):
            q.record_request(conn, refund_key(install, mode, invoice_id, press, payment_id), invoice_id, payment_id,
                             mode, cents, reason, note, session.email)
        return mode, read.requests_for_key_prefix(conn, prefix)


def refund_invoice(invoice_id: int, amount_cents: int, reason: str, note: str | None, session: Session,
                   press: str, gateway: StripeGateway | None = None) -> RefundResult:
    """Ask Stripe to refund `amount_cents` of the invoice. `press` is the form's token: the same
    token again (a double press, a retry) makes no second refund."""
    if not session.is_owner:
        raise RefundRefused("Only an owner can refund.")
    note = (note or "").strip()[:MAX_NOTE] or None
    mode, records = _records(invoice_id, amount_cents, reason, note, session, press)
    if gateway is None:
        with connection() as conn:
            gateway = StripeGateway(stripe_target(load_settings(conn), mode))
    ids: list[str] = []
    problems: list[str] = []
    retryable = False
    for rec in records:
        if rec["status"] == "sent":
            ids.append(str(rec["stripe_refund_id"]))
            continue
        if rec["status"] == "refused":
            problems.append(str(rec["error"]))
            continue
        params: dict[str, Any] = {"amount": int(rec["amount_cents"]), "reason": rec["reason"],
                                  "metadata": {"crm_invoice_id": str(invoice_id), "crm_refund_request": str(rec["id"])}}
        if rec["stripe_payment_intent_id"]:
            params["payment_intent"] = rec["stripe_payment_intent_id"]
        else:
            params["charge"] = rec["stripe_charge_id"]
        try:
            refund = gateway.create_refund(params, rec["idempotency_key"])
        except StripeGatewayError as exc:
            with connection() as conn:
                (q.mark_error if exc.retryable or exc.in_progress_elsewhere else q.mark_refused)(
                    conn, int(rec["id"]), str(exc))
            retryable = retryable or exc.retryable or exc.in_progress_elsewhere
            problems.append(str(exc) + (" (press Refund again to retry)" if exc.retryable else ""))
            continue
        with connection() as conn:
            q.mark_sent(conn, int(rec["id"]), str(refund["id"]))
        ids.append(str(refund["id"]))
    if problems:
        return RefundResult(False, "Stripe did not refund: " + "; ".join(problems), ids, retryable)
    total = format_cents(sum(int(r["amount_cents"]) for r in records), str(records[0]["currency"]))
    return RefundResult(True, f"Refund of {total} asked of Stripe ({', '.join(ids)}); the invoice shows "
                              "it when Stripe confirms it.", ids)
