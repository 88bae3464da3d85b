"""Reminder emails: which tone each reminder takes, and its subject, HTML and text. Pure.

Tones escalate with the reminder's place in the invoice's schedule: `upcoming` before the
due date, then `gentle`, `firm` and, for the last of three or more, `final`. The owner may
fix the tone of each reminder instead (setting `reminders.tones`, e.g. "gentle,firm,final").
Templates live in crm/templates/reminder_<tone>.html|txt; the HTML is autoescaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from crm.email.header_values import flattened
from crm.money.amounts import format_cents

TONES = ("upcoming", "gentle", "firm", "final")
_DIR = Path(__file__).parents[1] / "templates"
_html_env = Environment(loader=FileSystemLoader(_DIR), autoescape=True, undefined=StrictUndefined)
_text_env = Environment(loader=FileSystemLoader(_DIR), autoescape=False, undefined=StrictUndefined,
                        keep_trailing_newline=True)


class ToneError(ValueError):
    pass


@dataclass(frozen=True)
class ReminderEmail:
    tone: str
    subject: str
    html: str
    text: str


def parse_tones(raw: str | list[str] | None) -> list[str]:
    """The owner's per-reminder tones ('' = automatic escalation); unknown names are refused."""
    items = raw if isinstance(raw, list) else str(raw or "").split(",")
    tones = [t.strip().lower() for t in items if t.strip()]
    bad = [t for t in tones if t not in TONES]
    if bad:
        raise ToneError(f"unknown reminder tone(s) {bad}; use {', '.join(TONES)}")
    return tones


def tone_error(raw: str) -> str | None:
    """The Settings page's message for a bad tone list, or None when it is fine."""
    try:
        parse_tones(raw)
    except ToneError as exc:
        return str(exc)
    return None


def tone_for(offset_days: int, all_offsets: list[int], configured: list[str] | None = None) -> str:
    """The tone of the reminder at `offset_days` among the invoice's reminder offsets."""
    ordered = sorted(set(all_offsets) | {offset_days})
    if configured:
        return configured[min(ordered.index(offset_days), len(configured) - 1)]
    if offset_days <= 0:
        return "upcoming"
    after_due = [o for o in ordered if o > 0]
    position = after_due.index(offset_days)
    if position == 0:
        return "gentle"
    if position == len(after_due) - 1 and len(after_due) >= 3:
        return "final"
    return "firm"


def format_day(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def _one_line(text: str) -> str:
    # Header values must be one line: a newline in a name would break the subject.
    return " ".join(text.split())


def subject_for(tone: str, number: str, business: str, amount: str, due: date) -> str:
    subjects = {
        "upcoming": f"Invoice {number} from {business} is due {format_day(due)}",
        "gentle": f"Reminder: invoice {number} from {business} was due {format_day(due)}",
        "firm": f"Overdue: invoice {number} from {business} ({amount})",
        "final": f"Final reminder: invoice {number} from {business} ({amount})",
    }
    return _one_line(subjects[tone])


def render_reminder(*, tone: str, business_name: str, customer_name: str, number: str, amount_cents: int,
                    currency: str, due: date, send_day: date, pay_url: str) -> ReminderEmail:
    if tone not in TONES:
        raise ToneError(f"unknown reminder tone {tone!r}")
    amount = format_cents(amount_cents, currency)
    subject = subject_for(tone, number, business_name, amount, due)
    context = {
        "subject": subject, "business_name": business_name, "customer_name": customer_name,
        "number": number, "amount": amount, "due_date": format_day(due), "pay_url": pay_url,
        "days_overdue": max(0, (send_day - due).days),
    }
    return ReminderEmail(
        tone=tone,
        subject=subject,
        html=_html_env.get_template(f"reminder_{tone}.html").render(context),
        text=_text_env.get_template(f"reminder_{tone}.txt").render(context),
    )


def reminder_tags(invoice_id: int, reminder_id: int, sequence: int) -> list[dict[str, str]]:
    """Resend tags (ASCII letters, digits, _ and -) that tie webhooks back to the reminder."""
    return [{"name": "crm_invoice_id", "value": str(int(invoice_id))},
            {"name": "crm_reminder_id", "value": str(int(reminder_id))},
            {"name": "kind", "value": "reminder"},
            {"name": "sequence", "value": str(int(sequence))}]


def resend_params(email: ReminderEmail, *, from_address: str, to_address: str, reply_to: str,
                  scheduled_at: datetime, tags: list[dict[str, str]]) -> dict[str, Any]:
    """The Resend request body, stored before sending so every retry sends identical bytes."""
    params: dict[str, Any] = {
        "from": from_address, "to": [to_address], "subject": email.subject, "html": email.html,
        "text": email.text, "tags": tags,
        "scheduled_at": scheduled_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if reply_to:
        params["reply_to"] = reply_to
    return flattened(params)
