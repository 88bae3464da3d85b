"""The invoice email: subject, HTML and text parts, from the templates in crm/templates. Pure.

The HTML part is rendered with autoescaping, so a customer named `<script>` is shown as
text; the text part is plain and never interpreted. Links come from Stripe (the hosted
payment page and the PDF).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from crm.money.amounts import format_cents
from crm.send.lines import Line

if TYPE_CHECKING:
    from crm.email.statements import Statement

_DIR = Path(__file__).parents[1] / "templates"
_html_env = Environment(loader=FileSystemLoader(_DIR), autoescape=True, undefined=StrictUndefined)
_text_env = Environment(loader=FileSystemLoader(_DIR), autoescape=False, undefined=StrictUndefined,
                        keep_trailing_newline=True)


@dataclass(frozen=True)
class InvoiceEmail:
    subject: str
    html: str
    text: str


def format_due(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def subject_line(number: str, business: str, amount_cents: int, currency: str, due: date) -> str:
    # Header values must be one line: a newline in a name would otherwise break the subject.
    flat = " ".join(f"Invoice {number} from {business} — {format_cents(amount_cents, currency)} due "
                    f"{format_due(due)}".split())
    return flat


def render_invoice_email(*, business_name: str, customer_name: str, number: str, amount_cents: int,
                         currency: str, due: date, pay_url: str, pdf_url: str, lines: list[Line],
                         memo: str = "") -> InvoiceEmail:
    context = {
        "business_name": business_name,
        "customer_name": customer_name,
        "number": number,
        "amount": format_cents(amount_cents, currency),
        "due_date": format_due(due),
        "pay_url": pay_url,
        "pdf_url": pdf_url,
        "memo": memo,
        "lines": [{"description": ln.description, "quantity": ln.quantity,
                   "amount": format_cents(ln.amount_cents, currency)} for ln in lines],
    }
    return InvoiceEmail(
        subject=subject_line(number, business_name, amount_cents, currency, due),
        html=_html_env.get_template("invoice_email.html").render(context),
        text=_text_env.get_template("invoice_email.txt").render(context),
    )


def invoice_tags(invoice_id: int) -> list[dict[str, str]]:
    """Resend tags (ASCII letters, digits, _ and - only) that tie webhooks back to the invoice."""
    return [{"name": "crm_invoice_id", "value": str(int(invoice_id))}, {"name": "kind", "value": "invoice"}]


def _statement_context(statement: Statement) -> dict[str, object]:
    return {
        "business_name": statement.business_name,
        "customer_name": statement.customer_name,
        "customer_email": statement.customer_email or "",
        "customer_address": statement.customer_address or "",
        "as_of": format_due(statement.as_of),
        "total": statement.total_label(),
        "overdue_total": statement.total_label(overdue=True) if statement.overdue_totals() else "",
        "lines": [{"number": ln.number, "job": ln.job, "sent": format_due(ln.sent_on) if ln.sent_on else "",
                   "due": format_due(ln.due) if ln.due else "on receipt", "days_overdue": ln.days_overdue or 0,
                   "balance": ln.balance, "pay_url": ln.pay_url or ""} for ln in statement.lines],
    }


def render_statement_email(statement: Statement) -> InvoiceEmail:
    """The statement email: every open invoice with its balance, due date, days overdue, pay link."""
    context = _statement_context(statement)
    count = len(statement.lines)
    subject = " ".join(f"Statement from {statement.business_name} — {count} open invoice{'s' if count != 1 else ''}, "
                       f"{statement.total_label()} due".split())
    return InvoiceEmail(
        subject=subject,
        html=_html_env.get_template("statement_email.html").render(context),
        text=_text_env.get_template("statement_email.txt").render(context),
    )


def render_statement_page(statement: Statement) -> str:
    """A standalone, printable HTML page of the statement (what the owner downloads or prints)."""
    return _html_env.get_template("statement_print.html").render(_statement_context(statement))


def statement_tags(customer_id: int) -> list[dict[str, str]]:
    return [{"name": "crm_customer_id", "value": str(int(customer_id))}, {"name": "kind", "value": "statement"}]
