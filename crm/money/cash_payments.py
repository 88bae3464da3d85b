"""Recording a cash or check payment on an invoice sent through Stripe, the ways Stripe offers.

All of what is left: `POST /v1/invoices/{id}/pay` with `paid_out_of_band` (Stripe charges
nothing and marks the invoice paid). Part of it: a PaymentRecord reported with
`POST /v1/payment_records/report_payment` and attached with `POST /v1/invoices/{id}/attach_payment`,
so Stripe's own `amount_paid` and `amount_remaining` include it and the customer's hosted page
asks only for the rest. (Not a credit note with `out_of_band_amount`: that records money
returned to the customer outside Stripe after a payment, not money received.)

Stripe stays the source of truth: nothing is written here; the invoice, its payments,
Collections and the export follow from the webhooks (`invoice_payment.paid`, `invoice.paid`),
as for a card payment. Every write carries a deterministic idempotency key, so a double tap
records one payment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from crm.config.settings import Settings, load_settings
from crm.money.amounts import decimal_amount
from crm.send import idempotency
from crm.stripe.gateway import StripeGateway, StripeGatewayError, stripe_target
from db import send_steps
from db.pool import connection
from db.queries_invoices import get_invoice, invoice_payments

METHODS = ("cash", "check")


@dataclass(frozen=True)
class CashOutcome:
    ok: bool
    message: str


def cash_payment_problem(invoice: dict[str, Any], amount_cents: int, method: str, reference: str) -> str | None:
    """Why this payment cannot be recorded, or None. Pure."""
    if invoice.get("status") not in ("open", "uncollectible") or not invoice.get("stripe_invoice_id"):
        return "Only an invoice sent through Stripe and not yet paid or voided can take a cash or check payment."
    remaining = int(invoice["amount_due_cents"]) - int(invoice["amount_paid_cents"])
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents < 1:
        return "Enter the amount received."
    if amount_cents > remaining:
        return f"That is more than the {decimal_amount(remaining, str(invoice['currency']))} still owed."
    if method not in METHODS:
        return f"Choose how it was paid: {', '.join(METHODS)}."
    if method == "check" and not reference.strip():
        return "Enter the check number."
    if len(reference) > 100:
        return "The reference is at most 100 characters."
    return None


def record_cash_payment(invoice_id: int, amount_cents: int, method: str, reference: str = "", *,
                        settings: Settings | None = None, gateway: StripeGateway | None = None) -> CashOutcome:
    """Record the payment at Stripe; the CRM shows it when Stripe's webhook arrives."""
    with connection() as conn:
        settings = settings or load_settings(conn)
        invoice = get_invoice(conn, invoice_id)
        payments_so_far = len(invoice_payments(conn, invoice_id))
        install_id = send_steps.install_id(conn)
    if invoice is None:
        return CashOutcome(False, f"Invoice #{invoice_id} does not exist.")
    problem = cash_payment_problem(invoice, amount_cents, method, reference)
    if problem:
        return CashOutcome(False, problem)
    mode = str(invoice["mode"])
    stripe = gateway or StripeGateway(stripe_target(settings, mode))
    remaining = int(invoice["amount_due_cents"]) - int(invoice["amount_paid_cents"])
    reference = reference.strip() or method

    def key(step: str) -> str:
        return idempotency.cash_payment_key(install_id, mode, int(invoice["id"]), payments_so_far, amount_cents,
                                            method, reference, step)

    shown = decimal_amount(amount_cents, str(invoice["currency"]))
    try:
        if amount_cents == remaining:
            stripe.pay_out_of_band(str(invoice["stripe_invoice_id"]), key("pay"))
            return CashOutcome(True, f"{shown} by {method} recorded at Stripe: the invoice is paid in full. "
                                     "It shows as Paid when Stripe's event arrives.")
        # The day it was received, not the second: a double tap must send the same parameters
        # with the same idempotency key, or Stripe refuses the second request.
        received = int(time.time()) // 86_400 * 86_400
        record = stripe.report_payment(amount_cents, str(invoice["currency"]), received, method, reference,
                                       key("report"))
        stripe.attach_payment_record(str(invoice["stripe_invoice_id"]), record, key("attach"))
    except StripeGatewayError as exc:
        return CashOutcome(False, f"Stripe refused the {method} payment: {exc}")
    return CashOutcome(True, f"{shown} by {method} recorded at Stripe; "
                             f"{decimal_amount(remaining - amount_cents, str(invoice['currency']))} still owed.")
