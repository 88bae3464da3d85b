"""Named queries for texts (crm.text_messages, crm.text_message_events) and what a text-to-pay
needs to know about its invoice. The state changes are SQL functions in
db/functions/75_text_messages.sql: one call each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Conn


def invoice_for_text(conn: Conn, invoice_id: int) -> dict[str, Any] | None:
    """The invoice, what is still due, and its customer's phone and texts flag."""
    return conn.execute(
        """
        SELECT i.id, i.status, i.stripe_invoice_number, i.hosted_invoice_url, i.currency, i.mode,
               i.amount_due_cents - i.amount_paid_cents AS amount_remaining_cents,
               i.processing_payment_intent_id, c.id AS customer_id, c.name AS customer_name,
               c.email AS customer_email, c.phone, c.texts_off, c.texts_off_reason
          FROM crm.invoices i JOIN crm.customers c ON c.id = i.customer_id
         WHERE i.id = %s
        """,
        (invoice_id,),
    ).fetchone()


def begin_text(conn: Conn, *, kind: str, invoice_id: int | None, customer_id: int | None, to: str, body: str,
               by: str, window: timedelta) -> dict[str, Any]:
    """The text's record, made before Twilio is called; an equal one from within `window` is
    returned instead (`existing`)."""
    row = conn.execute("SELECT * FROM crm.begin_text(%s, %s, %s, %s, %s, %s, %s)",
                       (kind, invoice_id, customer_id, to, body, by, window)).fetchone()
    assert row is not None
    return dict(row)


def record_answer(conn: Conn, text_id: int, *, sid: str | None, status: str, error_code: int | None = None,
                  error_message: str | None = None) -> str:
    row = conn.execute("SELECT crm.record_text_answer(%s, %s, %s, %s, %s) AS status",
                       (text_id, sid, status, error_code, error_message)).fetchone()
    assert row is not None
    return str(row["status"])


def note_error(conn: Conn, text_id: int, message: str) -> None:
    """Twilio could not be reached: the record stays 'sending' (a retry looks for it first)."""
    conn.execute("UPDATE crm.text_messages SET error_message = left(%s, 500), updated_at = now() "
                 "WHERE id = %s AND sid IS NULL", (message, text_id))


def apply_callback(conn: Conn, sid: str, status: str, error_code: int | None, detail: str | None,
                   payload: dict[str, str]) -> str:
    """One verified status callback: 'applied', 'duplicate' or 'unmatched'."""
    row = conn.execute("SELECT crm.apply_twilio_callback(%s, %s, %s, %s, %s) AS outcome",
                       (sid, status, error_code, detail, Jsonb(payload))).fetchone()
    assert row is not None
    return str(row["outcome"])



def save_customer_phone(conn: Conn, customer_id: int, phone: str, actor: str) -> None:
    """A number typed on the Collect screen for a customer who had none is kept for next time."""
    cur = conn.execute("UPDATE crm.customers SET phone = %s, phone_unparsed = NULL, updated_at = now() "
                       "WHERE id = %s AND phone IS NULL", (phone, customer_id))
    if cur.rowcount:
        conn.execute("INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail) "
                     "VALUES ('customer', %s, NULL, 'phone_added', 'user', %s, '{}')", (customer_id, actor))


# ---------------------------------------------------------------- reminders by text

_REMINDER_CANDIDATES = """
SELECT r.id AS reminder_id, r.send_at, i.id AS invoice_id, i.stripe_invoice_number, i.hosted_invoice_url,
       i.currency, i.amount_due_cents - i.amount_paid_cents AS amount_remaining_cents,
       c.id AS customer_id, c.phone
  FROM crm.reminders r
  JOIN crm.invoices i ON i.id = r.invoice_id
  JOIN crm.customers c ON c.id = i.customer_id
 WHERE r.status IN ('queued', 'scheduled') AND r.resend_cancel IS NULL
   AND i.status = 'open' AND i.processing_payment_intent_id IS NULL AND i.hosted_invoice_url IS NOT NULL
   AND c.channel IN ('text', 'both') AND c.phone IS NOT NULL AND NOT c.texts_off AND NOT c.reminders_opt_out
   AND NOT EXISTS (SELECT 1 FROM crm.text_messages t WHERE t.reminder_id = r.id AND t.status <> 'canceled')
 ORDER BY r.send_at, r.id
 LIMIT %s
"""


def text_reminder_candidates(conn: Conn, limit: int = 50) -> list[dict[str, Any]]:
    """Reminder slots queued for sending (the queueing function's rules: open, not processing, not
    opted out) whose customer wants texts and has no live text for the slot yet."""
    return conn.execute(_REMINDER_CANDIDATES, (limit,)).fetchall()


def begin_text_reminder(conn: Conn, row: dict[str, Any], body: str, send_at: Any) -> int | None:
    got = conn.execute("SELECT crm.begin_text_reminder(%s, %s, %s, %s, %s, %s) AS id",
                       (row["reminder_id"], row["invoice_id"], row["customer_id"], row["phone"], body,
                        send_at)).fetchone()
    return None if got is None or got["id"] is None else int(got["id"])


def texts_to_cancel(conn: Conn, limit: int = 50) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, sid, status, to_number, body, created_at FROM crm.text_messages "
        "WHERE twilio_cancel = 'requested' ORDER BY id LIMIT %s", (limit,)).fetchall()


def record_cancel(conn: Conn, text_id: int, outcome: str, error: str | None = None) -> str:
    row = conn.execute("SELECT crm.record_text_cancel(%s, %s, %s) AS outcome", (text_id, outcome, error)).fetchone()
    assert row is not None
    return str(row["outcome"])
