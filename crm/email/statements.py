"""Customer statements: one email listing a customer's open invoices (amount, due date, days
overdue, each pay link), sent through Resend like an invoice email (same sender, tags for
tracking, a deterministic idempotency key), and a printable HTML page of the same statement.

`build_statement` and the renderers are pure over what the database returned;
`send_statement` is the workflow: build, render, send, record (email_messages kind
'statement' and an audit row on the customer, in one transaction).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from crm.config.settings import Settings, load_settings
from crm.email.header_values import flattened, from_header
from crm.email.invoice_email import render_statement_email, statement_tags
from crm.email.resend_gateway import EmailError, ResendGateway, resend_target
from crm.money.amounts import format_cents
from crm.money.collections import days_overdue
from crm.send.rules import valid_email
from db import send_steps, statements
from db.pool import Conn, connection

log = logging.getLogger("crm.email.statements")


class StatementRefused(RuntimeError):
    """Nothing was sent: no customer, no valid email, or nothing open to list."""


@dataclass(frozen=True)
class StatementLine:
    invoice_id: int
    number: str
    job: str
    sent_on: date | None
    due: date | None
    days_overdue: int | None
    balance_cents: int
    currency: str
    pay_url: str | None

    @property
    def balance(self) -> str:
        return format_cents(self.balance_cents, self.currency)


@dataclass(frozen=True)
class Statement:
    customer_id: int
    customer_name: str
    customer_email: str | None
    customer_address: str | None
    business_name: str
    as_of: date
    mode: str
    lines: list[StatementLine] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """Balance per currency (a statement never adds dollars to euros)."""
        out: dict[str, int] = {}
        for line in self.lines:
            out[line.currency] = out.get(line.currency, 0) + line.balance_cents
        return out

    def overdue_totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.lines:
            if line.days_overdue:
                out[line.currency] = out.get(line.currency, 0) + line.balance_cents
        return out

    def total_label(self, overdue: bool = False) -> str:
        totals = self.overdue_totals() if overdue else self.totals()
        return " + ".join(format_cents(c, cur) for cur, c in sorted(totals.items())) or format_cents(0)

    def fingerprint(self) -> str:
        """What the statement says: the same content on the same day is the same email."""
        content = [(ln.invoice_id, ln.balance_cents, ln.currency, ln.due.isoformat() if ln.due else None,
                    ln.pay_url) for ln in self.lines]
        blob = json.dumps([self.customer_email, content], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StatementResult:
    ok: bool
    message: str
    email_message_id: int | None = None
    resend_id: str | None = None
    already_sent: bool = False


def business_today(settings: Settings, now: datetime | None = None) -> date:
    tz = str(settings["business.timezone"])
    try:
        zone = ZoneInfo(tz)
    except (ValueError, KeyError):
        zone = ZoneInfo("UTC")
    return (now or datetime.now(UTC)).astimezone(zone).date()


def build_statement(conn: Conn, customer_id: int, settings: Settings, today: date) -> Statement:
    cust = statements.customer(conn, customer_id)
    if cust is None:
        raise StatementRefused(f"There is no customer #{customer_id}.")
    mode = settings.stripe_mode
    lines = [
        StatementLine(
            invoice_id=int(r["id"]), number=str(r["number"]), job=str(r["job_title"]),
            sent_on=r["sent_at"].astimezone(ZoneInfo(_tz(settings))).date() if r["sent_at"] else None,
            due=r["due_date"], days_overdue=days_overdue("open", r["due_date"], today),
            balance_cents=int(r["balance_cents"]), currency=str(r["currency"]),
            pay_url=None if r["demo"] else r["hosted_invoice_url"])
        for r in statements.open_invoices(conn, customer_id, mode) if int(r["balance_cents"]) > 0
    ]
    return Statement(customer_id=customer_id, customer_name=str(cust["name"]), customer_email=cust["email"],
                     customer_address=cust["address"], business_name=str(settings["business.name"]), as_of=today,
                     mode=mode, lines=lines)


def _tz(settings: Settings) -> str:
    tz = str(settings["business.timezone"])
    try:
        ZoneInfo(tz)
    except (ValueError, KeyError):
        return "UTC"
    return tz


def statement_key(install_id: str, statement: Statement) -> str:
    """Deterministic: a retry (or a second click) of the same statement the same day replays
    Resend's first answer instead of sending a second email."""
    return (f"crm-{install_id}-{statement.mode}-statement-{statement.customer_id}-{statement.as_of:%Y%m%d}-"
            f"{statement.fingerprint()}")


def email_params(statement: Statement, settings: Settings) -> dict[str, Any]:
    rendered = render_statement_email(statement)
    params: dict[str, Any] = {
        "from": from_header(str(settings["email.from"]), statement.business_name),
        "to": [str(statement.customer_email)],
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "tags": statement_tags(statement.customer_id),
    }
    if settings["email.reply_to"]:
        params["reply_to"] = str(settings["email.reply_to"])
    return flattened(params)


def send_statement(customer_id: int, actor: str, *, now: datetime | None = None,
                   resend: ResendGateway | None = None) -> StatementResult:
    """Email the customer their statement of open invoices; record it on their timeline."""
    with connection() as conn:
        settings = load_settings(conn)
        statement = build_statement(conn, customer_id, settings, business_today(settings, now))
        install = send_steps.install_id(conn)
    if not valid_email(statement.customer_email):
        raise StatementRefused(f"{statement.customer_name} has no valid email address: add one and try again.")
    if not statement.lines:
        raise StatementRefused(f"{statement.customer_name} has no open invoices: there is nothing to put on a "
                               "statement.")
    key = statement_key(install, statement)
    with connection() as conn:
        earlier = statements.sent_statement(conn, key)
    if earlier is not None and earlier["status"] != "failed":
        return StatementResult(True, f"This statement was already emailed to {statement.customer_email} today; "
                                     "it is not sent twice.", int(earlier["id"]), earlier["resend_id"],
                               already_sent=True)
    params = email_params(statement, settings)
    gateway = resend or ResendGateway(resend_target(settings))
    try:
        resend_id = gateway.send(params, key)
    except EmailError as exc:
        with connection() as conn:
            statements.record_failed(conn, customer_id=customer_id, idempotency_key=key, from_address=params["from"],
                                     to_address=params["to"][0], subject=params["subject"], error=str(exc))
        return StatementResult(False, f"The statement was not sent: {str(exc).rstrip('.')}. Try again.")
    detail = {"invoices": [ln.invoice_id for ln in statement.lines], "balance": statement.totals(),
              "as_of": statement.as_of.isoformat()}
    with connection() as conn:
        message_id = statements.record_sent(conn, customer_id=customer_id, resend_id=resend_id, idempotency_key=key,
                                            from_address=params["from"], to_address=params["to"][0],
                                            subject=params["subject"], actor=actor, detail=detail)
    log.info("statement for customer %s: email %s accepted by Resend (%s invoices)", customer_id, resend_id,
             len(statement.lines))
    count = len(statement.lines)
    return StatementResult(True, f"Statement of {count} open invoice{'' if count == 1 else 's'}, "
                                 f"{statement.total_label()} in all, emailed to {statement.customer_email}.",
                           message_id, resend_id)
