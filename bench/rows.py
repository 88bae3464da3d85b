"""The COPY side of the generated data: each table's columns in COPY order, the load order,
and the text form of values (COPY's text format: tab-separated, \\N for NULL). Also the
size and date helpers the CLI and the report share.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

NULL = "\\N"
DAY = 86400.0

# Columns per table, in COPY order (generated columns such as invoice_lines.amount_cents omitted).
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("id", "name", "email", "phone", "address", "reminders_opt_out", "stripe_customer_id_test",
                  "created_at", "updated_at"),
    "jobs": ("id", "customer_id", "title", "site_address", "status", "scheduled_for", "completed_at",
             "completed_by_event_id", "created_at", "updated_at"),
    "invoices": ("id", "job_id", "customer_id", "kind", "status", "amount_due_cents", "amount_paid_cents",
                 "amount_refunded_cents", "due_date", "mode", "stripe_invoice_id", "stripe_invoice_number",
                 "hosted_invoice_url", "invoice_pdf_url", "resend_email_id", "attention", "attention_detail",
                 "sent_at", "paid_at", "voided_at", "created_at", "updated_at"),
    "invoice_lines": ("id", "invoice_id", "position", "description", "quantity", "unit_amount_cents"),
    "payments": ("id", "invoice_id", "mode", "stripe_payment_id", "stripe_payment_intent_id", "stripe_charge_id",
                 "stripe_event_id", "amount_cents", "fee_cents", "net_cents", "currency", "paid_at", "created_at"),
    "refunds": ("id", "invoice_id", "payment_id", "mode", "stripe_refund_id", "amount_cents", "currency", "status",
                "created_at", "updated_at"),
    "stripe_events": ("id", "type", "mode", "api_version", "object_id", "invoice_id", "outcome", "source",
                      "duplicate_deliveries", "stripe_created_at", "received_at", "payload"),
    "reminders": ("id", "invoice_id", "sequence", "offset_days", "send_at", "status", "resend_id", "cancel_reason",
                  "resend_cancel", "queued_at", "handed_off_at", "sent_at", "cancelled_at", "created_at",
                  "updated_at"),
    "email_messages": ("id", "kind", "invoice_id", "reminder_id", "resend_id", "idempotency_key", "from_address",
                       "to_address", "subject", "status", "sent_at", "delivered_at", "first_opened_at",
                       "first_clicked_at", "open_count", "click_count", "created_at", "updated_at"),
    "audit_log": ("id", "entity", "entity_id", "from_status", "to_status", "actor_type", "actor", "stripe_event_id",
                  "created_at"),
}
# Dependency order: a table's foreign keys point only to tables earlier in this list.
TABLES: tuple[str, ...] = ("customers", "jobs", "invoices", "invoice_lines", "payments", "refunds",
                           "stripe_events", "reminders", "email_messages", "audit_log")
API_VERSION = "2026-10-28.endive"


def ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(sep=" ", timespec="seconds")


def day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def day_start(epoch: float) -> float:
    return math.floor(epoch / DAY) * DAY


def anchor_for(now: datetime) -> datetime:
    """The data's 'now': midnight UTC of the run's day, so relative shapes repeat every day."""
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def parse_size(text: str) -> int:
    """'10k' -> 10000, '1m' -> 1000000, '300' -> 300."""
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)
