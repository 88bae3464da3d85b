"""The external steps of one Send attempt: customer, invoice, lines, finalize, email.

Each step gets the stored invoice and its deterministic idempotency key (`step_key`),
makes its idempotent call(s) and touches no database on success: it returns a
`StepResult` whose `store` the workflow (crm.send_invoice) runs in the step's one
transaction, with the step's record in crm.send_steps (started -> succeeded | skipped |
failed), the lease renewal and the read for the next step. A crash between the call and
the store is safe: the resumed Send repeats the call with the same key and gets the same
object back. `run_step` runs one step on its own (Resend email again).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crm.config.settings import Settings
from crm.email.header_values import flattened, from_header
from crm.email.invoice_email import invoice_tags, render_invoice_email
from crm.email.resend_gateway import EmailError, ResendGateway, resend_target
from crm.send import idempotency
from crm.send.lines import Line, total_cents
from crm.send.result import SendRefused
from crm.send.rules import stripe_due_timestamp, stripe_lines, totals_match
from crm.stripe.gateway import StripeGateway, StripeGatewayError, stripe_target
from crm.stripe.payment_methods import PAYMENT_METHOD_TYPES, default_payment
from db import invoices, send_steps
from db.driver import Conn, LockNotAvailable
from db.pool import connection

log = logging.getLogger("crm.send")
Row = dict[str, Any]


class TotalMismatch(RuntimeError):
    pass


@dataclass
class Attempt:
    """Everything a step needs about the attempt in progress."""

    invoice_id: int
    attempt: int
    actor: str
    install_id: str
    mode: str
    settings: Settings
    stripe: StripeGateway
    resend: ResendGateway
    progress: Callable[[str], None]
    lines: list[Line] = field(default_factory=list)
    lease_s: float = 120.0
    renewed_at: float = field(default_factory=time.monotonic)  # when our lease was last renewed

    def key_invoice(self, inv: Row, step: str) -> str:
        return idempotency.invoice_key(self.install_id, self.mode, self.invoice_id, int(inv["send_generation"]), step)


@dataclass
class StepResult:
    """What a step's call produced: its record's outcome, and what to store (run by the workflow
    in the step's one transaction)."""

    external_id: str | None = None
    status: str = "succeeded"
    note: str | None = None
    store: Callable[[Conn], None] | None = None


def run_step(a: Attempt, inv: Row, step: str) -> StepResult:
    """One step on its own, recorded, in two short transactions (Resend email again)."""
    key = step_key(a, inv, step)
    with connection() as conn:
        step_id = send_steps.start(conn, a.invoice_id, a.attempt, step, key)
    try:
        result = STEP_FUNCTIONS[step](a, inv, key)
    except Exception as exc:
        with connection() as conn:
            send_steps.finish(conn, step_id, "failed", error=str(exc)[:2000])
        raise
    with connection() as conn:
        if result.store is not None:
            result.store(conn)
        send_steps.finish(conn, step_id, result.status, external_id=result.external_id, error=result.note)
    return result


def locked_invoice(conn: Conn, invoice_id: int, busy: str) -> Row:
    """The invoice with its customer, locked for this transaction (never waiting); `busy` is
    what the refusal says when another transaction holds it."""
    try:
        inv = invoices.lock_with_customer(conn, invoice_id)
    except LockNotAvailable:
        raise SendRefused(busy) from None
    if inv is None:
        raise SendRefused(f"There is no invoice #{invoice_id}.")
    return inv


def gateways(settings: Settings) -> tuple[StripeGateway, ResendGateway]:
    resend_backoff = float(os.environ.get("RESEND_RETRY_BACKOFF_S", "").strip() or 0.5)
    return StripeGateway(stripe_target(settings)), ResendGateway(resend_target(settings), backoff_s=resend_backoff)


def customer_column(mode: str) -> str:
    return "stripe_customer_id_live" if mode == "live" else "stripe_customer_id_test"


def digest_column(mode: str) -> str:
    return "stripe_customer_digest_live" if mode == "live" else "stripe_customer_digest_test"


def customer_synced(inv: Row, mode: str) -> bool:
    """The stored Stripe customer was last given this customer's current name and email."""
    current = idempotency.customer_digest(str(inv["customer_name"]), str(inv["customer_email"]))
    return inv[digest_column(mode)] == current


def step_key(a: Attempt, inv: Row, step: str) -> str | None:
    """The idempotency key of the step's write, from what is stored (the same on every resume)."""
    if step == "customer":
        digest = idempotency.customer_digest(str(inv["customer_name"]), str(inv["customer_email"]))
        make = idempotency.customer_update_key if inv[customer_column(a.mode)] else idempotency.customer_key
        return make(a.install_id, a.mode, int(inv["customer_id"]), digest)
    if step == "invoice":
        return a.key_invoice(inv, "create")
    if step == "lines":
        items = stripe_lines(a.lines, str(inv["currency"]))
        return idempotency.lines_key(a.install_id, a.mode, a.invoice_id, int(inv["send_generation"]), items)
    if step == "finalize":
        return a.key_invoice(inv, "finalize")
    if step == "email":
        return idempotency.email_key(a.install_id, a.mode, a.invoice_id, int(inv["email_key_seq"]))
    return None


def step_customer(a: Attempt, inv: Row, key: str) -> StepResult:
    """Create the Stripe customer, or bring the stored one up to the CRM's name and email."""
    name, email, customer_id = str(inv["customer_name"]), str(inv["customer_email"]), int(inv["customer_id"])
    digest = idempotency.customer_digest(name, email)
    existing = inv[customer_column(a.mode)]
    if existing:
        a.progress("Updating the customer's name and email in Stripe…")
        a.stripe.update_customer(str(existing), name, email, key)
        cus = str(existing)
    else:
        a.progress("Creating the customer in Stripe…")
        cus = a.stripe.create_customer(
            name, email, {"crm_customer_id": str(customer_id), "crm_install_id": a.install_id}, key)
    return StepResult(cus, store=lambda conn: invoices.store_stripe_customer(conn, customer_id, a.mode, cus, digest))


def step_invoice(a: Attempt, inv: Row, key: str) -> StepResult:
    params: dict[str, Any] = {
        "customer": inv[customer_column(a.mode)],
        "collection_method": "send_invoice",
        "due_date": stripe_due_timestamp(inv["due_date"], str(a.settings["business.timezone"])),
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "currency": inv["currency"],
        "payment_settings": {"payment_method_types": list(PAYMENT_METHOD_TYPES)},
        "metadata": {"crm_invoice_id": str(a.invoice_id), "crm_job_id": str(inv["job_id"]),
                     "crm_install_id": a.install_id},
    }
    if inv["memo"]:
        params["description"] = inv["memo"]
    a.progress("Creating the Stripe invoice…")
    created = str(a.stripe.create_invoice(params, key)["id"])
    return StepResult(created, store=lambda conn: invoices.store_stripe_invoice(conn, a.invoice_id, created))


def step_lines(a: Attempt, inv: Row, key: str) -> StepResult:
    stripe_id = str(inv["stripe_invoice_id"])
    items = stripe_lines(a.lines, str(inv["currency"]))
    a.progress(f"Adding {len(items)} line(s) to the Stripe invoice…")
    done = StepResult(stripe_id, store=lambda conn: invoices.mark_lines_added(conn, a.invoice_id))
    if a.attempt > 1:
        # An earlier attempt may have added them and died before recording it.
        current = a.stripe.retrieve_invoice(stripe_id)
        if current["lines"]["data"] or current["status"] != "draft":
            done.status, done.note = "skipped", "lines were already on the Stripe invoice"
            if current["status"] == "draft":
                check_draft_total(a, current)
            return done
    draft = a.stripe.add_lines(stripe_id, items, key)
    check_draft_total(a, draft)
    return done


def _mismatch(a: Attempt, ours: int, stripe_total: int, *, finalized: bool) -> TotalMismatch:
    where = ("The invoice was finalized at Stripe but the email was not sent. Check it in Stripe, void it, "
             "and create a new one." if finalized else
             "The Stripe invoice is still a draft (nothing is payable) and the email was not sent. Check it in "
             "Stripe, then void this invoice and create a new one.")
    detail = f"Stripe's total ({stripe_total} minor units) differs from ours ({ours}). {where}"
    with connection() as conn:
        invoices.flag(conn, a.invoice_id, "total_mismatch", detail)
    return TotalMismatch(detail)


def check_draft_total(a: Attempt, draft: dict[str, Any]) -> None:
    """Compare Stripe's total with ours on the draft, before anything is finalized (payable).

    `total`, not `amount_due`: a customer's credit balance at Stripe lowers what is due
    at finalization, and that is Stripe applying the credit, not a wrong invoice.
    """
    ours = total_cents(a.lines)
    if not totals_match(ours, int(draft["total"])):
        raise _mismatch(a, ours, int(draft["total"]), finalized=False)


def step_finalize(a: Attempt, inv: Row, key: str) -> StepResult:
    stripe_id = str(inv["stripe_invoice_id"])
    a.progress("Finalising the Stripe invoice…")
    try:
        final = a.stripe.finalize(stripe_id, key)
    except StripeGatewayError as exc:
        if exc.retryable or exc.code != "invoice_not_editable":
            raise
        # Finalised by an earlier attempt whose idempotent replay has expired.
        final = a.stripe.retrieve_invoice(stripe_id)
        if final["status"] == "draft":
            raise
    # Stripe made the default payment at finalize; every attempt on the hosted page reuses
    # its payment intent, which is how payment_intent.* events find this invoice.
    default = default_payment(a.stripe.list_invoice_payments(stripe_id))
    ours, theirs = total_cents(a.lines), int(final["total"])
    if not totals_match(ours, theirs):
        # The draft was checked at the lines step; this catches a line added at Stripe since.
        # The pay link exists at Stripe: stored first, then stopped.
        with connection() as conn:
            _store_finalized(conn, a, stripe_id, final, default)
        raise _mismatch(a, ours, theirs, finalized=True)
    return StepResult(stripe_id, store=lambda conn: _store_finalized(conn, a, stripe_id, final, default))


def _store_finalized(conn: Conn, a: Attempt, stripe_id: str, final: dict[str, Any],
                     default: tuple[Any, ...] | None) -> None:
    if default is not None:
        invoices.record_default_payment_intent(conn, a.invoice_id, a.mode, *default)
    invoices.store_finalized(conn, a.invoice_id, stripe_id, number=final.get("number"),
                             hosted_url=final.get("hosted_invoice_url"), pdf_url=final.get("invoice_pdf"),
                             stripe_total_cents=int(final["total"]))


# An invoice in one of these no longer wants its email: the customer paid through a link
# shared before the email step, or it was voided or written off while the Send ran.
CLOSED_STATUSES = ("paid", "void", "uncollectible")


def skipped_email(status: str) -> StepResult:
    """The email step's record when the invoice closed before the email went out."""
    return StepResult(status="skipped", note=f"invoice was already {status} before the email went out; no email sent")


def email_params(a: Attempt, inv: Row) -> dict[str, Any]:
    business = str(a.settings["business.name"])
    rendered = render_invoice_email(
        business_name=business, customer_name=str(inv["customer_name"]),
        number=str(inv["stripe_invoice_number"]), amount_cents=total_cents(a.lines),
        currency=str(inv["currency"]), due=inv["due_date"], pay_url=str(inv["hosted_invoice_url"]),
        pdf_url=str(inv["invoice_pdf_url"]), lines=a.lines, memo=str(inv["memo"] or ""))
    params: dict[str, Any] = {
        "from": from_header(str(a.settings["email.from"]), business),
        "to": [str(inv["customer_email"])],
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "tags": invoice_tags(a.invoice_id),
    }
    if a.settings["email.reply_to"]:
        params["reply_to"] = str(a.settings["email.reply_to"])
    return flattened(params)


def step_email(a: Attempt, inv: Row, key: str) -> StepResult:
    """Email the customer. A refusal is settled, not raised: the result stores the failure and
    flags the invoice 'email_not_sent' (it still opens; Resend email tries again)."""
    params = email_params(a, inv)
    a.progress(f"Emailing {inv['customer_email']} through Resend…")
    try:
        email_id = a.resend.send(params, key)
    except EmailError as exc:
        error, new_key = str(exc), not exc.retryable
        detail = f"Email not sent: {error.rstrip('.')}. The invoice is open in Stripe; use Resend email to try again."

        def store_failure(conn: Conn) -> None:
            invoices.record_email_failure(conn, a.invoice_id, idempotency_key=key, from_address=params["from"],
                                          to_address=params["to"][0], subject=params["subject"], error=error,
                                          new_key_next_time=new_key)
            invoices.flag(conn, a.invoice_id, "email_not_sent", detail)

        return StepResult(status="failed", note=detail[:2000], store=store_failure)

    def store_sent(conn: Conn) -> None:
        invoices.store_email(conn, a.invoice_id, resend_id=email_id, idempotency_key=key,
                             from_address=params["from"], to_address=params["to"][0], subject=params["subject"])
        invoices.clear_flag(conn, a.invoice_id, "email_not_sent")

    log.info("invoice %s: email %s accepted by Resend for %s", a.invoice_id, email_id, inv["customer_email"])
    return StepResult(email_id, store=store_sent)


STEP_FUNCTIONS: dict[str, Callable[[Attempt, Row, Any], StepResult]] = {
    "customer": step_customer,
    "invoice": step_invoice,
    "lines": step_lines,
    "finalize": step_finalize,
    "email": step_email,
}
