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


def get_text(conn: Conn, text_id: int) -> dict[str, Any] | None:
    return conn.execute("SELECT * FROM crm.text_messages WHERE id = %s", (text_id,)).fetchone()


def invoice_texts(conn: Conn, invoice_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """An invoice's texts, newest first."""
    return conn.execute(
        "SELECT id, kind, to_number, status, sid, error_code, error_message, created_at, sent_at, delivered_at "
        "FROM crm.text_messages WHERE invoice_id = %s ORDER BY created_at DESC, id DESC LIMIT %s",
        (invoice_id, limit),
    ).fetchall()


def save_customer_phone(conn: Conn, customer_id: int, phone: str, actor: str) -> None:
    """A number typed on the Collect screen for a customer who had none is kept for next time."""
    cur = conn.execute("UPDATE crm.customers SET phone = %s, phone_unparsed = NULL, updated_at = now() "
                       "WHERE id = %s AND phone IS NULL", (phone, customer_id))
    if cur.rowcount:
        conn.execute("INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail) "
                     "VALUES ('customer', %s, NULL, 'phone_added', 'user', %s, '{}')", (customer_id, actor))
