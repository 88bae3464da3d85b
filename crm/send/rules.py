"""What decides a Send: can this invoice go out, its total, due date, Stripe lines. Pure, no I/O.

`sendable_problems` lists every reason an invoice cannot be sent, in words staff
understand; an empty list means it may go. `next_step` reads what a previous attempt
stored and says where a resumed Send starts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from crm.money.amounts import currency_problem
from crm.send.lines import MAX_LINES, Line, total_cents

# Lines are the same value the dashboard's editor produces (crm.invoice_lines).
MAX_STRIPE_LINES = MAX_LINES
# The same shape the customers table checks, so a valid row is a sendable address.
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

STEPS = ("customer", "invoice", "lines", "finalize", "email", "complete")


@dataclass(frozen=True)
class SendContext:
    """What the checks need to know about the invoice, its customer and the configuration."""

    status: str
    lines: Sequence[Line]
    customer_email: str | None
    currency: str
    due_date: date | None
    today: date
    from_address: str
    stripe_mode: str
    stripe_sandboxed: bool
    resend_sandboxed: bool


def valid_email(address: str | None) -> bool:
    return bool(address) and _EMAIL_RE.match(str(address)) is not None


def sendable_problems(ctx: SendContext) -> list[str]:
    problems: list[str] = []
    if ctx.status not in ("draft", "sending"):
        problems.append(f"Only a draft invoice can be sent; this one is {ctx.status}.")
    if not ctx.lines:
        problems.append("The invoice has no lines: add at least one line.")
    elif total_cents(ctx.lines) <= 0:
        problems.append("The invoice total is zero: Stripe needs an amount above zero.")
    if len(ctx.lines) > MAX_STRIPE_LINES:
        problems.append(f"Stripe allows at most {MAX_STRIPE_LINES} lines on one invoice.")
    money_problem = currency_problem(ctx.currency)
    if money_problem:
        problems.append(f"The invoice's currency cannot be billed: {money_problem}")
    if not ctx.customer_email:
        problems.append("The customer has no email address: add one before sending.")
    elif not valid_email(ctx.customer_email):
        problems.append(f"The customer's email address {ctx.customer_email!r} is not valid.")
    # A resumed Send keeps the due date it started with, even if that day has passed.
    if ctx.status == "draft" and ctx.due_date is not None and ctx.due_date < ctx.today:
        problems.append(f"The due date {ctx.due_date.isoformat()} is in the past.")
    if not valid_email(parseaddr(ctx.from_address)[1]):
        problems.append("Set the business's From address in Settings -> Integrations.")
    if ctx.stripe_mode == "live" and ctx.stripe_sandboxed:
        problems.append("Stripe is in live mode but no live secret key is configured.")
    if ctx.stripe_mode == "live" and ctx.resend_sandboxed:
        # A live invoice whose email only reaches the local sandbox would never be seen.
        problems.append("Stripe is in live mode but no Resend API key is configured.")
    return problems


def due_date_for(invoice_due: date | None, today: date, terms_days: int) -> date:
    """The invoice's own due date, else today plus the default payment terms."""
    return invoice_due if invoice_due is not None else today + timedelta(days=max(0, int(terms_days)))


def stripe_due_timestamp(due: date, tz_name: str) -> int:
    """End of the due day in the business's time zone, as Stripe's unix `due_date`."""
    end_of_day = datetime.combine(due, time(23, 59, 59), tzinfo=ZoneInfo(tz_name))
    return int(end_of_day.timestamp())


def stripe_lines(lines: Sequence[Line], currency: str) -> list[dict[str, Any]]:
    """Our lines as `add_lines` items: unit price and quantity, so Stripe shows both."""
    return [
        {
            "description": line.description,
            "quantity": line.quantity,
            "price_data": {
                "currency": currency,
                "unit_amount": line.unit_amount_cents,
                "product_data": {"name": line.description},
            },
        }
        for line in lines
    ]


@dataclass(frozen=True)
class StoredProgress:
    """What earlier attempts left on our rows (ids Stripe and Resend gave back)."""

    stripe_customer_id: str | None
    stripe_invoice_id: str | None
    customer_synced: bool  # the Stripe customer has the CRM's current name and email
    lines_added: bool
    finalized: bool
    resend_email_id: str | None
    email_settled: bool  # sent, or given up on with attention 'email_not_sent'


def next_step(p: StoredProgress) -> str:
    """The first step whose result is not stored yet."""
    if not p.stripe_customer_id and not p.stripe_invoice_id:
        return "customer"
    if p.stripe_customer_id and not p.customer_synced and not p.finalized:
        return "customer"  # edited in the CRM since Stripe last heard: update it before finalizing
    if not p.stripe_invoice_id:
        return "invoice"
    if not p.finalized and not p.lines_added:
        return "lines"
    if not p.finalized:
        return "finalize"
    if not p.resend_email_id and not p.email_settled:
        return "email"
    return "complete"


def totals_match(ours: int, stripe_total: int) -> bool:
    """Stripe's invoice total against ours. Not `amount_due`: a credit balance the customer
    has at Stripe is applied at finalization and lowers what is due, not the total."""
    return ours == stripe_total
