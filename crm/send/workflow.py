"""Send via Stripe: the workflow behind the button, safe to click twice and to resume after a crash.

`send_invoice` checks the invoice can go, takes the invoice's lease in one short
transaction (draft -> sending), then runs the external steps (crm.send_steps) outside any
transaction, and finally marks it open with its reminders and audit rows in one
transaction. A Send that stopped anywhere resumes from what is stored, with the same
idempotency keys. Stripe refusing a request puts the invoice back to draft with the
message; Stripe unreachable leaves it sending for a later resume; an email that could
not be sent leaves it open with attention 'email_not_sent' (see `resend_invoice_email`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from crm.config.settings import Settings, load_settings
from crm.email.invoice_email import format_due
from crm.money.amounts import format_cents
from crm.reminders.schedule import plan_reminders
from crm.send import rules
from crm.send.followups import resend_invoice_email, void_invoice
from crm.send.result import SendRefused, SendResult
from crm.send.steps import (
    CLOSED_STATUSES,
    STEP_FUNCTIONS,
    Attempt,
    EmailNotSent,
    Row,
    TotalMismatch,
    customer_column,
    customer_synced,
    gateways,
    locked_invoice,
    skip_email,
)
from crm.stripe.gateway import StripeGatewayError, configured_call_budget_s
from db import invoices, reminders, send_steps
from db.pool import connection

log = logging.getLogger("crm.send")
__all__ = ["SendOptions", "SendRefused", "SendResult", "SimulatedCrash", "resend_invoice_email", "send_invoice",
           "void_invoice"]
# The lease outlives the longest Stripe call (every retry timing out) with a margin, and is
# renewed before every Stripe try and after every step, so no second Send takes over while
# a step is still running; never shorter than DEFAULT_LEASE_S.
DEFAULT_LEASE_S = 120.0
LEASE_MARGIN_S = 60.0
SANDBOX_NOTE = "SANDBOX: emulated Stripe and Resend; no real money moves and no real email is sent."


class SimulatedCrash(BaseException):
    """Raised by a test's `after_step` hook: the workflow stops as if the process died."""


class LeaseLost(RuntimeError):
    """Another Send took the invoice over (ours had run out): stop before the next Stripe call."""


def send_lease_s() -> float:
    """How long a Send's lease lasts: longer than the worst Stripe call of the configured gateway."""
    return max(DEFAULT_LEASE_S, configured_call_budget_s() + LEASE_MARGIN_S)


@dataclass(frozen=True)
class SendOptions:
    lease_s: float | None = None  # None: send_lease_s()
    after_step: Callable[[str], None] | None = None  # tests: kill the workflow after a step
    now: datetime | None = None  # the claim's clock (tests: a later moment, after a lease ran out)


def _stored_progress(inv: Row, mode: str) -> rules.StoredProgress:
    return rules.StoredProgress(
        stripe_customer_id=inv[customer_column(mode)],
        customer_synced=customer_synced(inv, mode),
        stripe_invoice_id=inv["stripe_invoice_id"],
        lines_added=inv["stripe_lines_added_at"] is not None,
        finalized=inv["hosted_invoice_url"] is not None,
        resend_email_id=inv["resend_email_id"],
        email_settled=inv["attention"] == "email_not_sent",
    )


def _lines(rows: list[Row]) -> list[rules.Line]:
    return [rules.Line(str(r["description"]), int(r["quantity"]), int(r["unit_amount_cents"])) for r in rows]


def _local(ts: datetime, tz: str) -> str:
    return ts.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


def unfinished(inv: Row) -> bool:
    """A Send that has not completed: sending, or opened by Stripe's invoice.finalized webhook
    before our last step ran (open but never marked sent)."""
    return inv["status"] == "sending" or (inv["status"] == "open" and inv["sent_at"] is None
                                          and inv["stripe_invoice_id"] is not None)


def _refuse_if_busy(inv: Row, settings: Settings, now: datetime) -> None:
    tz = str(settings["business.timezone"])
    if not unfinished(inv):
        return
    until = inv["send_lease_until"]
    if until is not None and until > now:
        raise SendRefused(f"This invoice is already being sent by {inv['send_lease_owner']} since "
                          f"{_local(inv['send_started_at'], tz)}.")
    if inv["attention"] == "total_mismatch":
        raise SendRefused(f"Send stopped: {inv['attention_detail']}")
    if inv["mode"] and inv["stripe_invoice_id"] and inv["mode"] != settings.stripe_mode:
        raise SendRefused(f"This invoice was started in Stripe {inv['mode']} mode; switch back to it to resume.")


def _claim(invoice_id: int, actor: str, token: str, opts: SendOptions, lease_s: float) -> tuple[Settings, int, str]:
    """Check, lock and mark sending in one short transaction; returns (settings, attempt, install id)."""
    with connection() as conn:
        inv = locked_invoice(conn, invoice_id,
                             "This invoice is being sent right now by someone else; try again in a moment.")
        settings = load_settings(conn)
        now = opts.now or invoices.transaction_now(conn)
        _refuse_if_busy(inv, settings, now)
        tz = str(settings["business.timezone"])
        lines = _lines(invoices.lines(conn, invoice_id))
        problems = rules.sendable_problems(rules.SendContext(
            status="sending" if unfinished(inv) else inv["status"], lines=lines,
            customer_email=inv["customer_email"], currency=inv["currency"],
            due_date=inv["due_date"], today=now.astimezone(ZoneInfo(tz)).date(),
            from_address=str(settings["email.from"]), stripe_mode=settings.stripe_mode,
            stripe_sandboxed=settings.stripe_sandboxed, resend_sandboxed=settings.resend_sandboxed))
        if problems:
            raise SendRefused("Cannot send this invoice: " + " ".join(problems))
        due = rules.due_date_for(inv["due_date"], now.astimezone(ZoneInfo(tz)).date(),
                                 int(settings["invoice.payment_terms_days"]))
        attempt = invoices.claim_send(
            conn, invoice_id, token=token, owner=actor, lease_s=lease_s, mode=settings.stripe_mode, due_date=due,
            amount_due_cents=rules.total_cents(lines), sandboxed=settings.stripe_sandboxed or settings.resend_sandboxed,
            now=opts.now)
        invoices.audit(conn, invoice_id, inv["status"], "open" if inv["status"] == "open" else "sending", actor,
                       {"attempt": attempt, "resumed": inv["status"] != "draft"})
        install = send_steps.install_id(conn)
    return settings, attempt, install


def _complete(a: Attempt, token: str) -> Row:
    """Step 6 in one transaction: open, reminders, audit; never moves an invoice backwards."""
    with connection() as conn:
        step_id = send_steps.start(conn, a.invoice_id, a.attempt, "complete", None)
        # Waits: a webhook for this invoice holds the row only for its one short transaction.
        inv = invoices.lock_with_customer(conn, a.invoice_id, nowait=False)
        assert inv is not None
        was = invoices.mark_open(conn, a.invoice_id)
        if was is not None:
            sent_at = invoices.transaction_now(conn)
            planned = plan_reminders(inv["due_date"], list(a.settings["reminders.offsets_days"]),
                                     int(a.settings["reminders.send_hour"]), str(a.settings["business.timezone"]),
                                     sent_at)
            reminders.insert_planned(conn, a.invoice_id, planned, opted_out=bool(inv["reminders_opt_out"]))
            invoices.audit(conn, a.invoice_id, was, "open", a.actor, {
                "stripe_invoice_id": inv["stripe_invoice_id"], "number": inv["stripe_invoice_number"],
                "resend_email_id": inv["resend_email_id"], "reminders": len(planned), "attempt": a.attempt,
                "send_completed": True})
            send_steps.finish(conn, step_id, "succeeded", external_id=inv["stripe_invoice_id"])
        else:
            invoices.release_lease(conn, a.invoice_id, token)
            send_steps.finish(conn, step_id, "skipped", error=f"invoice was already {inv['status']}")
        done = invoices.get_with_customer(conn, a.invoice_id)
    assert done is not None
    return done


def _stripe_refused(a: Attempt, step: str, exc: StripeGatewayError, token: str) -> SendResult:
    with connection() as conn:
        inv = invoices.get_with_customer(conn, a.invoice_id)
    assert inv is not None
    discard = bool(inv["stripe_invoice_id"]) and inv["hosted_invoice_url"] is None
    if discard:
        try:  # A Stripe draft never reaches the customer; deleting it keeps Stripe tidy.
            a.stripe.delete_draft(str(inv["stripe_invoice_id"]))
        except StripeGatewayError as del_exc:
            log.warning("invoice %s: could not delete Stripe draft %s: %s", a.invoice_id, inv["stripe_invoice_id"],
                        del_exc)
            # Gone already is as good as deleted; anything else (finalized meanwhile, Stripe
            # away) keeps the link, so the next Send resumes that invoice instead of a new one.
            discard = del_exc.code == "resource_missing"
    message = f"Stripe refused the {step} step: {exc}. The invoice is a draft again; fix it and Send again."
    stale_customer = inv[f"stripe_customer_id_{a.mode}"]
    # Unknown to this Stripe account: named as the invoice's customer, or the customer updated.
    forget_customer = exc.code == "resource_missing" and (exc.param == "customer" or step == "customer") \
        and stale_customer
    if forget_customer:
        # The stored customer was made with other keys (typically the sandbox, before real keys
        # were entered): forget it so the next Send creates the customer at this Stripe account.
        message = (f"Stripe does not know customer {stale_customer} (it was created with other keys, e.g. in the "
                   "sandbox). It has been forgotten: press Send again to create the customer at Stripe.")
    with connection() as conn:
        if forget_customer:
            invoices.forget_stripe_customer(conn, int(inv["customer_id"]), a.mode, str(stale_customer))
        invoices.back_to_draft(conn, a.invoice_id, message, discard_stripe_draft=discard)
        invoices.audit(conn, a.invoice_id, "sending", "draft", a.actor, {"step": step, "error": str(exc)})
    return SendResult(False, "draft", None, step, message)


def _stopped(a: Attempt, step: str, attention: str | None, message: str, token: str) -> SendResult:
    with connection() as conn:
        if attention:
            invoices.flag(conn, a.invoice_id, attention, message)
        invoices.release_lease(conn, a.invoice_id, token)
    return SendResult(False, "sending", None, step, message)


def closed_before_email_message(status: str) -> str:
    """What staff read when the invoice was paid (voided, written off) before its email went out."""
    said = {"paid": "Paid", "void": "Voided", "uncollectible": "Marked uncollectible"}.get(status, status.capitalize())
    return f"{said} before the email went out; no email sent."


def _run(a: Attempt, token: str, opts: SendOptions) -> SendResult:
    closed_before_email: str | None = None
    while True:
        # Read after every step, so the email step sees a payment webhook (or a void) that
        # landed while the earlier steps ran: no invoice email reaches a customer who paid.
        with connection() as conn:
            inv = invoices.get_with_customer(conn, a.invoice_id)
        assert inv is not None
        step = rules.next_step(_stored_progress(inv, a.mode))
        if step == "complete":
            break
        if step == "email" and inv["status"] in CLOSED_STATUSES:
            closed_before_email = str(inv["status"])
            skip_email(a, closed_before_email)
            break
        try:
            STEP_FUNCTIONS[step](a, inv)
        except LeaseLost:
            return SendResult(False, "sending", None, step, "Another Send took over this invoice.")
        except StripeGatewayError as exc:
            if exc.in_progress_elsewhere:
                # Stripe is still running the same request for another attempt: not a refusal.
                return _stopped(a, step, None, f"Another Send of this invoice is still at the {step} step in Stripe. "
                                "Nothing was changed; press Send again in a minute to resume.", token)
            if not exc.retryable:
                return _stripe_refused(a, step, exc, token)
            return _stopped(a, step, "send_failed", f"Stripe could not be reached at the {step} step ({exc}). "
                            "Nothing was duplicated; press Send again to resume.", token)
        except TotalMismatch as exc:
            return _stopped(a, step, None, str(exc), token)
        except EmailNotSent:
            pass  # settled: the invoice still opens, flagged 'email_not_sent'
        if opts.after_step is not None:
            opts.after_step(step)
        with connection() as conn:
            if not invoices.renew_lease(conn, a.invoice_id, token, a.lease_s):
                return SendResult(False, "sending", None, step, "Another Send took over this invoice.")
    done = _complete(a, token)
    if opts.after_step is not None:
        opts.after_step("complete")
    if closed_before_email is not None:
        # _complete left the status as the webhook set it (never back to open) and released the lease.
        return SendResult(True, str(done["status"]), done["hosted_invoice_url"], None,
                          closed_before_email_message(closed_before_email))
    amount = format_cents(int(done["amount_due_cents"]), str(done["currency"]))
    if done["attention"] == "email_not_sent":
        message = (f"Invoice {done['stripe_invoice_number']} is open in Stripe, but the email was not sent: "
                   f"{done['attention_detail']}")
        return SendResult(False, str(done["status"]), done["hosted_invoice_url"], "email", message)
    message = (f"Invoice {done['stripe_invoice_number']} for {amount}, due {format_due(done['due_date'])}, "
               f"was emailed to {done['customer_email']}.")
    if done["sent_via_sandbox"]:
        message += " " + SANDBOX_NOTE
    return SendResult(True, str(done["status"]), done["hosted_invoice_url"], None, message)


def send_invoice(invoice_id: int, actor: str, progress: Callable[[str], None] | None = None,
                 *, options: SendOptions | None = None) -> SendResult:
    """Send (or resume sending) a draft invoice. Raises SendRefused when it will not start."""
    opts = options or SendOptions()
    token = str(uuid.uuid4())
    lease_s = opts.lease_s if opts.lease_s is not None else send_lease_s()
    settings, attempt, install = _claim(invoice_id, actor, token, opts, lease_s)
    stripe, resend = gateways(settings)

    def keep_lease() -> None:
        with connection() as conn:
            if not invoices.renew_lease(conn, invoice_id, token, lease_s):
                raise LeaseLost(f"invoice {invoice_id}: another Send took over")

    stripe.before_call = keep_lease
    where = "the SANDBOX" if stripe.target.sandboxed or resend.target.sandboxed else "Stripe and Resend"
    log.info("invoice %s: send attempt %s by %s via %s (Stripe: %s; Resend: %s)", invoice_id, attempt, actor,
             where, stripe.target.describe(), "SANDBOX" if resend.target.sandboxed else "Resend")
    with connection() as conn:
        lines = _lines(invoices.lines(conn, invoice_id))
    a = Attempt(invoice_id=invoice_id, attempt=attempt, actor=actor, install_id=install, mode=settings.stripe_mode,
                settings=settings, stripe=stripe, resend=resend, progress=progress or (lambda _m: None), lines=lines,
                lease_s=lease_s)
    try:
        result = _run(a, token, opts)
    except Exception as exc:
        # Unexpected: keep the invoice 'sending' (resumable) and say so, rather than leaving a live lease.
        log.exception("invoice %s: send attempt %s failed unexpectedly", invoice_id, attempt)
        return _stopped(a, "unknown", "send_failed", f"Send stopped unexpectedly ({exc}); press Send again to "
                        "resume.", token)
    log.info("invoice %s: send attempt %s finished: ok=%s status=%s step=%s", invoice_id, attempt, result.ok,
             result.invoice_status, result.failed_step)
    return result
