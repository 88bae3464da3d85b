"""Named queries for invoices as the Send workflow reads and changes them (crm.invoices).

Every status change here is guarded by the status it expects (`WHERE status = ...`), so
a webhook that already moved the invoice on is never undone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from db import audit as audit_trail

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

_INVOICE_WITH_CUSTOMER = """
SELECT i.*, c.name AS customer_name, c.email AS customer_email, c.reminders_opt_out,
       c.stripe_customer_id_test, c.stripe_customer_id_live,
       c.stripe_customer_digest_test, c.stripe_customer_digest_live
FROM crm.invoices i JOIN crm.customers c ON c.id = i.customer_id
WHERE i.id = %s
"""


def get_with_customer(conn: Conn, invoice_id: int) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_INVOICE_WITH_CUSTOMER, (invoice_id,)).fetchone()


def lock_with_customer(conn: Conn, invoice_id: int, *, nowait: bool = True) -> Row | None:
    """Lock the invoice row for this transaction; with nowait, raises LockNotAvailable if another holds it."""
    sql = _INVOICE_WITH_CUSTOMER + (" FOR UPDATE OF i NOWAIT" if nowait else " FOR UPDATE OF i")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, (invoice_id,)).fetchone()


def transaction_now(conn: Conn) -> datetime:
    """The database's clock at the start of this transaction: what its own now() writes."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row["now"] if isinstance(row, dict) else row[0]


def lines(conn: Conn, invoice_id: int) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT description, quantity, unit_amount_cents, amount_cents FROM crm.invoice_lines "
            "WHERE invoice_id = %s ORDER BY position, id", (invoice_id,)).fetchall()


def claim_send(conn: Conn, invoice_id: int, *, token: str, owner: str, lease_s: float, mode: str,
               due_date: date, amount_due_cents: int, sandboxed: bool, now: datetime | None) -> int:
    """Take the lease, mark the invoice sending (one a webhook already opened stays open, never
    moving back); returns the new attempt number."""
    row = conn.execute(
        "UPDATE crm.invoices SET status = CASE WHEN status = 'open' THEN 'open' ELSE 'sending' END, "
        "send_lease_token = %(token)s, send_lease_owner = %(owner)s, "
        "send_lease_until = coalesce(%(now)s, now()) + make_interval(secs => %(lease)s), "
        "send_started_at = coalesce(%(now)s, now()), send_attempt = send_attempt + 1, "
        "mode = %(mode)s, due_date = %(due)s, amount_due_cents = %(amount)s, "
        "sent_via_sandbox = sent_via_sandbox OR %(sandboxed)s, "
        "attention = CASE WHEN attention = 'send_failed' THEN NULL ELSE attention END, "
        "attention_detail = CASE WHEN attention = 'send_failed' THEN NULL ELSE attention_detail END "
        "WHERE id = %(id)s RETURNING send_attempt",
        {"token": token, "owner": owner, "lease": lease_s, "now": now, "mode": mode, "due": due_date,
         "amount": amount_due_cents, "sandboxed": sandboxed, "id": invoice_id},
    ).fetchone()
    assert row is not None, f"invoice {invoice_id} vanished while locked"
    return int(row["send_attempt"] if isinstance(row, dict) else row[0])


def take_lease(conn: Conn, invoice_id: int, token: str, owner: str, lease_s: float) -> bool:
    """The lease alone, without a status change (re-sending the email of an open invoice)."""
    cur = conn.execute(
        "UPDATE crm.invoices SET send_lease_token = %s, send_lease_owner = %s, send_started_at = now(), "
        "send_lease_until = now() + make_interval(secs => %s) "
        "WHERE id = %s AND (send_lease_until IS NULL OR send_lease_until < now())",
        (token, owner, lease_s, invoice_id))
    return cur.rowcount == 1


def renew_lease(conn: Conn, invoice_id: int, token: str, lease_s: float) -> bool:
    """Extend our lease; False means another Send took over after ours ran out."""
    cur = conn.execute(
        "UPDATE crm.invoices SET send_lease_until = now() + make_interval(secs => %s) "
        "WHERE id = %s AND send_lease_token = %s", (lease_s, invoice_id, token))
    return cur.rowcount == 1


def release_lease(conn: Conn, invoice_id: int, token: str) -> None:
    conn.execute(
        "UPDATE crm.invoices SET send_lease_token = NULL, send_lease_owner = NULL, send_lease_until = NULL "
        "WHERE id = %s AND send_lease_token = %s", (invoice_id, token))


def store_stripe_customer(conn: Conn, customer_id: int, mode: str, stripe_customer_id: str, digest: str) -> None:
    """The Stripe customer and what it was given (crm.idempotency.customer_digest). A customer
    another Send stored meanwhile is kept; the digest is recorded only for the one stored."""
    column = "stripe_customer_id_live" if mode == "live" else "stripe_customer_id_test"
    digest_column = "stripe_customer_digest_live" if mode == "live" else "stripe_customer_digest_test"
    # Column names cannot be parameters; both are one of two literals above.
    conn.execute(f"UPDATE crm.customers SET {digest_column} = CASE WHEN {column} IS NULL OR {column} = %s "
                 f"THEN %s ELSE {digest_column} END, {column} = coalesce({column}, %s) WHERE id = %s",
                 (stripe_customer_id, digest, stripe_customer_id, customer_id))


def forget_stripe_customer(conn: Conn, customer_id: int, mode: str, stripe_customer_id: str) -> bool:
    """Drop a stored cus_ id Stripe does not know (made with other keys, e.g. the sandbox's)."""
    column = "stripe_customer_id_live" if mode == "live" else "stripe_customer_id_test"
    digest_column = "stripe_customer_digest_live" if mode == "live" else "stripe_customer_digest_test"
    cur = conn.execute(f"UPDATE crm.customers SET {column} = NULL, {digest_column} = NULL "
                       f"WHERE id = %s AND {column} = %s", (customer_id, stripe_customer_id))
    return cur.rowcount == 1


def store_stripe_invoice(conn: Conn, invoice_id: int, stripe_invoice_id: str) -> None:
    conn.execute("UPDATE crm.invoices SET stripe_invoice_id = %s, stripe_lines_added_at = NULL WHERE id = %s",
                 (stripe_invoice_id, invoice_id))


def mark_lines_added(conn: Conn, invoice_id: int) -> None:
    conn.execute("UPDATE crm.invoices SET stripe_lines_added_at = now() WHERE id = %s", (invoice_id,))


def store_finalized(conn: Conn, invoice_id: int, stripe_invoice_id: str, *, number: str | None,
                    hosted_url: str | None, pdf_url: str | None, stripe_total_cents: int) -> bool:
    """Store what finalizing returned, only while the invoice still names that Stripe invoice
    (an attempt that lost the invoice to another must not put its pay link on the new one)."""
    cur = conn.execute(
        "UPDATE crm.invoices SET stripe_invoice_number = %s, hosted_invoice_url = %s, invoice_pdf_url = %s, "
        "stripe_total_cents = %s, stripe_lines_added_at = coalesce(stripe_lines_added_at, now()) "
        "WHERE id = %s AND stripe_invoice_id = %s",
        (number, hosted_url, pdf_url, stripe_total_cents, invoice_id, stripe_invoice_id))
    return cur.rowcount == 1


def record_default_payment_intent(conn: Conn, invoice_id: int, mode: str, payment_intent_id: str,
                                  invoice_payment_id: str) -> int:
    """Link the invoice's default payment intent to it; how many earlier events that applies."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT crm.record_default_payment_intent(%s, %s, %s, %s)",
                          (invoice_id, mode, payment_intent_id, invoice_payment_id)).fetchone()
    assert row is not None
    return int(row[0])


def flag(conn: Conn, invoice_id: int, attention: str, detail: str) -> None:
    conn.execute("UPDATE crm.invoices SET attention = %s, attention_detail = %s WHERE id = %s",
                 (attention, detail, invoice_id))


def clear_flag(conn: Conn, invoice_id: int, attention: str) -> None:
    conn.execute("UPDATE crm.invoices SET attention = NULL, attention_detail = NULL "
                 "WHERE id = %s AND attention = %s", (invoice_id, attention))


def back_to_draft(conn: Conn, invoice_id: int, detail: str, *, discard_stripe_draft: bool) -> bool:
    """Stripe refused the request: draft again, with the message; a new generation of keys when
    the Stripe draft was thrown away, and then no Stripe field of it is left (id, number, pay
    link, PDF, total), so nothing of the old invoice can reach the next. False if the invoice
    was no longer sending."""
    cur = conn.execute(
        "UPDATE crm.invoices SET status = 'draft', attention = 'send_failed', attention_detail = %(detail)s, "
        "send_generation = send_generation + CASE WHEN %(discard)s THEN 1 ELSE 0 END, "
        "stripe_invoice_id = CASE WHEN %(discard)s THEN NULL ELSE stripe_invoice_id END, "
        "stripe_lines_added_at = CASE WHEN %(discard)s THEN NULL ELSE stripe_lines_added_at END, "
        "stripe_invoice_number = CASE WHEN %(discard)s THEN NULL ELSE stripe_invoice_number END, "
        "hosted_invoice_url = CASE WHEN %(discard)s THEN NULL ELSE hosted_invoice_url END, "
        "invoice_pdf_url = CASE WHEN %(discard)s THEN NULL ELSE invoice_pdf_url END, "
        "stripe_total_cents = CASE WHEN %(discard)s THEN NULL ELSE stripe_total_cents END, "
        "mode = CASE WHEN %(discard)s OR stripe_invoice_id IS NULL THEN NULL ELSE mode END, "
        "send_lease_token = NULL, send_lease_owner = NULL, send_lease_until = NULL "
        "WHERE id = %(id)s AND status = 'sending'",
        {"detail": detail, "discard": discard_stripe_draft, "id": invoice_id})
    return cur.rowcount == 1


def store_email(conn: Conn, invoice_id: int, *, resend_id: str, idempotency_key: str, from_address: str,
                to_address: str, subject: str) -> None:
    """The invoice email Resend accepted: on the invoice and in crm.email_messages."""
    conn.execute("UPDATE crm.invoices SET resend_email_id = %s WHERE id = %s", (resend_id, invoice_id))
    conn.execute(
        "INSERT INTO crm.email_messages (kind, invoice_id, resend_id, idempotency_key, from_address, to_address, "
        "subject, status, sent_at) VALUES ('invoice', %s, %s, %s, %s, %s, %s, 'sent', now()) "
        "ON CONFLICT (idempotency_key) DO UPDATE SET resend_id = EXCLUDED.resend_id, status = 'sent', "
        "error = NULL, sent_at = coalesce(crm.email_messages.sent_at, now())",
        (invoice_id, resend_id, idempotency_key, from_address, to_address, subject))


def record_email_failure(conn: Conn, invoice_id: int, *, idempotency_key: str, from_address: str,
                         to_address: str, subject: str, error: str, new_key_next_time: bool) -> None:
    conn.execute(
        "INSERT INTO crm.email_messages (kind, invoice_id, idempotency_key, from_address, to_address, subject, "
        "status, error) VALUES ('invoice', %s, %s, %s, %s, %s, 'failed', %s) "
        "ON CONFLICT (idempotency_key) DO UPDATE SET status = 'failed', error = EXCLUDED.error",
        (invoice_id, idempotency_key, from_address, to_address, subject, error))
    if new_key_next_time:
        conn.execute("UPDATE crm.invoices SET email_key_seq = email_key_seq + 1 WHERE id = %s", (invoice_id,))


def start_new_email(conn: Conn, invoice_id: int) -> None:
    """A deliberate re-send of an email Resend already accepted: a new key, a new email."""
    conn.execute("UPDATE crm.invoices SET resend_email_id = NULL, email_key_seq = email_key_seq + 1 "
                 "WHERE id = %s", (invoice_id,))


# A guarded move of the Send workflow: `{set}` is one of the fixed SET lists below, never input.
_GUARDED_MOVE = (
    "WITH old AS (SELECT status FROM crm.invoices WHERE id = %(id)s FOR UPDATE) "
    "UPDATE crm.invoices i SET {set}, send_lease_token = NULL, send_lease_owner = NULL, send_lease_until = NULL "
    "FROM old WHERE i.id = %(id)s AND old.status = ANY(%(from)s) RETURNING old.status")
_OPEN = _GUARDED_MOVE.format(set="status = 'open', sent_at = coalesce(i.sent_at, now())")
_VOID = _GUARDED_MOVE.format(set="status = 'void', voided_at = now()")


def _guarded_move(conn: Conn, sql: str, invoice_id: int, from_statuses: list[str]) -> str | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(sql, {"id": invoice_id, "from": from_statuses}).fetchone()
    return str(row["status"]) if row else None


def mark_open(conn: Conn, invoice_id: int) -> str | None:
    """Finish a Send: sending -> open (a webhook may already have opened it). Returns the status it
    had, or None when it has moved past open (paid, void...) and must not be touched."""
    return _guarded_move(conn, _OPEN, invoice_id, ["sending", "open"])


def mark_void(conn: Conn, invoice_id: int) -> str | None:
    """Any unpaid status -> void; returns the status it had, or None if it was already final."""
    return _guarded_move(conn, _VOID, invoice_id, ["draft", "sending", "open"])


def cancel_reminders(conn: Conn, invoice_id: int, reason: str) -> int:
    """Cancel what has not gone out; ones Resend holds are flagged for the cancel worker."""
    cur = conn.execute(
        "UPDATE crm.reminders SET status = 'cancelled', cancel_reason = %s, cancelled_at = now(), "
        "resend_cancel = CASE WHEN resend_id IS NOT NULL THEN 'requested' END, "
        "next_attempt_at = CASE WHEN resend_id IS NOT NULL THEN now() END "
        "WHERE invoice_id = %s AND status IN ('pending', 'queued', 'scheduled')", (reason, invoice_id))
    return cur.rowcount


def complete_job_after_void(conn: Conn, job_id: int, invoice_id: int, actor: str) -> bool:
    """Complete the job if this void left only paid (and void) invoices on it (crm.complete_job_if_done)."""
    row = conn.execute("SELECT crm.complete_job_after_void(%s, %s, %s) AS done", (job_id, invoice_id, actor)).fetchone()
    assert row is not None
    return bool(row["done"] if isinstance(row, dict) else row[0])


def audit(conn: Conn, invoice_id: int, from_status: str | None, to_status: str | None, actor: str,
          detail: dict[str, Any] | None = None, actor_type: str = "user") -> None:
    audit_trail.write(conn, "invoice", invoice_id, from_status, to_status, actor, detail, actor_type=actor_type)
