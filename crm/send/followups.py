"""What staff can do to an invoice after Send: email it again, or void it.

Both take the same lease as Send, so neither runs while a Send of that invoice does.
"""

from __future__ import annotations

import logging
import uuid

from crm.config.settings import load_settings
from crm.send import idempotency, rules
from crm.send.result import SendRefused, SendResult
from crm.send.steps import Attempt, EmailNotSent, Row, gateways, locked_invoice, step_email
from crm.stripe.gateway import StripeGateway, StripeGatewayError
from db import invoices, send_steps
from db.pool import connection

log = logging.getLogger("crm.send")
LEASE_S = 60.0


def resend_invoice_email(invoice_id: int, actor: str) -> SendResult:
    """Email an open invoice again: the same key if Resend never accepted it, a new one for a deliberate re-send."""
    token = str(uuid.uuid4())
    with connection() as conn:
        inv = locked_invoice(conn, invoice_id, "This invoice is busy right now; try again in a moment.")
        if inv["status"] != "open":
            raise SendRefused(f"Only an open invoice can be emailed again; this one is {inv['status']}.")
        if not rules.valid_email(inv["customer_email"]):
            raise SendRefused("The customer has no valid email address: fix it and try again.")
        if not invoices.take_lease(conn, invoice_id, token, actor, LEASE_S):
            raise SendRefused(f"This invoice is already being emailed by {inv['send_lease_owner']}.")
        if inv["resend_email_id"]:
            invoices.start_new_email(conn, invoice_id)
        invoices.audit(conn, invoice_id, "open", "open", actor, {"action": "resend_email"})
        settings = load_settings(conn)
        install = send_steps.install_id(conn)
        lines = [rules.Line(str(r["description"]), int(r["quantity"]), int(r["unit_amount_cents"]))
                 for r in invoices.lines(conn, invoice_id)]
        fresh = invoices.get_with_customer(conn, invoice_id)
    assert fresh is not None
    inv = fresh
    stripe, resend = gateways(settings)
    a = Attempt(invoice_id=invoice_id, attempt=max(1, int(inv["send_attempt"])), actor=actor, install_id=install,
                mode=str(inv["mode"]), settings=settings, stripe=stripe, resend=resend, progress=lambda _m: None,
                lines=lines)
    try:
        step_email(a, inv)
    except EmailNotSent as exc:
        return SendResult(False, "open", inv["hosted_invoice_url"], "email", str(exc))
    finally:
        with connection() as conn:
            invoices.release_lease(conn, invoice_id, token)
    return SendResult(True, "open", inv["hosted_invoice_url"], None,
                      f"Invoice {inv['stripe_invoice_number']} was emailed again to {inv['customer_email']}.")


def void_invoice(invoice_id: int, actor: str) -> None:
    """Void at Stripe, then here (reminders cancelled, the job completed when every other invoice is
    paid, audited). Voiding a void invoice does nothing."""
    with connection() as conn:
        inv = invoices.get_with_customer(conn, invoice_id)
        settings = load_settings(conn)
        now = invoices.transaction_now(conn)
        install = send_steps.install_id(conn)
    if inv is None:
        raise SendRefused(f"There is no invoice #{invoice_id}.")
    if inv["status"] == "void":
        return
    if inv["status"] in ("paid", "uncollectible"):
        raise SendRefused(f"A {inv['status']} invoice cannot be voided.")
    if inv["send_lease_until"] is not None and inv["send_lease_until"] > now:
        raise SendRefused(f"This invoice is being sent by {inv['send_lease_owner']}; void it when that finishes.")
    if inv["stripe_invoice_id"]:
        if inv["mode"] != settings.stripe_mode:
            raise SendRefused(f"This invoice lives in Stripe {inv['mode']} mode; switch to it to void the invoice.")
        _void_at_stripe(inv, gateways(settings)[0], install)
    with connection() as conn:
        from_status = invoices.mark_void(conn, invoice_id)
        if from_status is not None:
            cancelled = invoices.cancel_reminders(conn, invoice_id, "void")
            invoices.audit(conn, invoice_id, from_status, "void", actor, {"reminders_cancelled": cancelled})
            # The void may close the job's last open invoice (a paid deposit, a voided final):
            # the same completion rule as a payment, in this transaction, the user as actor.
            if invoices.complete_job_after_void(conn, int(inv["job_id"]), invoice_id, actor):
                log.info("job %s completed by the void of invoice %s", inv["job_id"], invoice_id)
    log.info("invoice %s voided by %s (was %s)", invoice_id, actor, inv["status"])


def _void_at_stripe(inv: Row, stripe: StripeGateway, install: str) -> None:
    stripe_id = str(inv["stripe_invoice_id"])
    if inv["hosted_invoice_url"] is None:
        try:
            stripe.delete_draft(stripe_id)
        except StripeGatewayError as exc:  # a draft that is gone, or was finalised meanwhile
            current = stripe.retrieve_invoice(stripe_id) if exc.code != "resource_missing" else None
            if current is not None and current["status"] not in ("draft", "void"):
                raise SendRefused(f"Stripe could not void invoice {stripe_id}: {exc}") from exc
        return
    key = idempotency.invoice_key(install, str(inv["mode"]), int(inv["id"]), int(inv["send_generation"]), "void")
    try:
        stripe.void(stripe_id, key)
    except StripeGatewayError as exc:
        if exc.retryable:
            raise SendRefused(f"Stripe could not be reached to void the invoice ({exc}); try again.") from exc
        if stripe.retrieve_invoice(stripe_id)["status"] != "void":
            raise SendRefused(f"Stripe refused to void invoice {inv['stripe_invoice_number']}: {exc}") from exc
