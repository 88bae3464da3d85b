"""Named queries for reminders (crm.reminders): planning, queueing, dispatch claims, cancels.

State changes that must be atomic are SQL functions in db/functions/40_reminders.sql;
these functions only call them or run short claim queries. When reminders go out is
the core's rule (crm/reminders/schedule.py); this module stores the plan it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from db import audit

Conn = psycopg.Connection[Any]
Row = dict[str, Any]
# The sidecar's fallback for the pg_cron job runs this often: crm.reminder_queue_schedule()
# is the cron form of the same period (tests/test_reminder_homes.py holds them equal).
QUEUE_PERIOD_S = 300


class PlannedRow(Protocol):
    """One planned reminder: crm.reminder_schedule.PlannedReminder has this shape."""

    @property
    def sequence(self) -> int: ...
    @property
    def offset_days(self) -> int: ...
    @property
    def send_at(self) -> datetime: ...


def insert_planned(conn: Conn, invoice_id: int, planned: Sequence[PlannedRow], opted_out: bool = False) -> int:
    """Create an invoice's reminder rows once (a resumed Send inserts nothing new).

    A customer who opted out still gets the rows, cancelled, so the timeline says why
    no reminder went out.
    """
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm.reminders (invoice_id, sequence, offset_days, send_at, status, cancel_reason, "
            "cancelled_at) VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) "
            "ON CONFLICT (invoice_id, offset_days, revision) DO NOTHING",
            [
                (invoice_id, p.sequence, p.offset_days, p.send_at,
                 "cancelled" if opted_out else "pending", "opted_out" if opted_out else None, opted_out)
                for p in planned
            ],
        )
        return cur.rowcount


# ---------------------------------------------------------------- queueing and dispatch

def queue_due(conn: Conn, now: datetime) -> int:
    """Run the queueing function (the one pg_cron runs) at `now`, with its hand-off window
    (crm.reminder_handoff_window); returns how many were queued."""
    row = conn.execute("SELECT crm.queue_due_reminders(%s)", (now,)).fetchone()
    assert row is not None
    return int(_first(row))


def pg_cron_installed(conn: Conn) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone() is not None


QUEUE_JOB = "crm-queue-due-reminders"


def queue_job_state(conn: Conn) -> str:
    """The pg_cron queue job here: 'active', 'inactive', 'missing', or 'no pg_cron'."""
    if not pg_cron_installed(conn):
        return "no pg_cron"
    row = conn.execute("SELECT bool_or(active) AS active FROM cron.job WHERE jobname = %s "
                       "AND database = current_database()", (QUEUE_JOB,)).fetchone()
    active = _first(row) if row is not None else None
    return "missing" if active is None else ("active" if active else "inactive")


# The invoice is locked (KEY SHARE) with its reminder, not later by the email record's foreign
# key: a payment holds its invoice FOR UPDATE and then cancels the reminders, so taking the
# invoice after the reminder deadlocked with it (two sidecars' soak through the pooler). An
# invoice being paid right now is skipped; its reminder is cancelled or taken next pass.
_CLAIM = """
WITH picked AS (
    SELECT r.id
      FROM crm.reminders r JOIN crm.invoices i ON i.id = r.invoice_id JOIN crm.customers c ON c.id = i.customer_id
     WHERE r.status = 'queued' AND i.status = 'open' AND i.processing_payment_intent_id IS NULL
       AND (r.claimed_until IS NULL OR r.claimed_until <= %(now)s)
       -- Reminders by text only go to Twilio (crm/texts/reminders.py); with texts off (STOP) or
       -- no phone they come back to email.
       AND NOT (c.channel = 'text' AND c.phone IS NOT NULL AND NOT c.texts_off)
     ORDER BY r.send_at, r.id
     LIMIT %(limit)s
       FOR UPDATE OF r SKIP LOCKED
       FOR KEY SHARE OF i SKIP LOCKED
)
UPDATE crm.reminders r
   SET claim_token = %(token)s, claimed_until = %(now)s + %(lease)s
  FROM picked WHERE r.id = picked.id
RETURNING r.id
"""

_CLAIMED_DETAIL = """
SELECT r.id, r.invoice_id, r.sequence, r.offset_days, r.send_at, r.attempts,
       (SELECT array_agg(o.offset_days ORDER BY o.offset_days) FROM crm.reminders o
         WHERE o.invoice_id = r.invoice_id) AS all_offsets,
       i.stripe_invoice_number, i.hosted_invoice_url, i.due_date, i.currency,
       i.amount_due_cents - i.amount_paid_cents AS amount_remaining_cents,
       c.name AS customer_name, c.email AS customer_email, c.reminders_opt_out,
       m.id AS message_id, m.request, m.idempotency_key, m.scheduled_at, m.created_at AS request_stored_at,
       m.revision, m.superseded_request, m.superseded_key, m.superseded_scheduled_at, m.superseded_stored_at
  FROM crm.reminders r
  JOIN crm.invoices i ON i.id = r.invoice_id
  JOIN crm.customers c ON c.id = i.customer_id
  LEFT JOIN crm.email_messages m ON m.reminder_id = r.id
 WHERE r.id = ANY(%(ids)s) AND r.claim_token = %(token)s
 ORDER BY r.send_at, r.id
"""


def claim_queued(conn: Conn, now: datetime, limit: int, lease: timedelta, token: UUID) -> list[Row]:
    """Claim up to `limit` queued reminders of open invoices (skipping rows others hold)."""
    with conn.cursor(row_factory=dict_row) as cur:
        ids = [r["id"] for r in cur.execute(_CLAIM, {"now": now, "limit": limit, "lease": lease,
                                                     "token": token}).fetchall()]
        if not ids:
            return []
        return cur.execute(_CLAIMED_DETAIL, {"ids": ids, "token": token}).fetchall()


def insert_reminder_message(conn: Conn, reminder_id: int, invoice_id: int, *, idempotency_key: str,
                            from_address: str, to_address: str, subject: str, scheduled_at: datetime,
                            request: dict[str, Any]) -> dict[str, Any]:
    """The reminder's email record with its exact Resend request (kept if one exists already)."""
    conn.execute(
        "INSERT INTO crm.email_messages (kind, invoice_id, reminder_id, idempotency_key, from_address, "
        "to_address, subject, status, scheduled_at, request) "
        "VALUES ('reminder', %s, %s, %s, %s, %s, %s, 'pending', %s, %s) ON CONFLICT (reminder_id) DO NOTHING",
        (invoice_id, reminder_id, idempotency_key, from_address, to_address, subject, scheduled_at,
         Jsonb(request)))
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT request FROM crm.email_messages WHERE reminder_id = %s",
                          (reminder_id,)).fetchone()
    assert row is not None
    return dict(row["request"])


def cancel_claimed_opted_out(conn: Conn, reminder_id: int, token: UUID, now: datetime) -> bool:
    """The customer opted out after the reminder was queued: cancel it at hand-off. A request
    stored by an earlier claim is flagged for the cancel worker by the trigger (0009)."""
    cur = conn.execute(
        "UPDATE crm.reminders SET status = 'cancelled', cancel_reason = 'opted_out', cancelled_at = %s, "
        "claim_token = NULL, claimed_until = NULL WHERE id = %s AND claim_token = %s AND status = 'queued'",
        (now, reminder_id, token))
    if cur.rowcount == 1:
        audit.write(conn, "reminder", reminder_id, "queued", "cancelled", "reminder_dispatcher",
                    {"cancel_reason": "opted_out", "note": "opted out after it was queued"}, actor_type="system")
    return cur.rowcount == 1


def replace_stale_request(conn: Conn, reminder_id: int, *, idempotency_key: str, to_address: str, subject: str,
                          scheduled_at: datetime, request: dict[str, Any]) -> dict[str, Any]:
    """Store a re-rendered request under a new key. The replaced one is kept as `superseded_*`
    unless one is kept already (then the replaced one was never sent: the dispatcher retires
    the superseded request before it sends the current one)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE crm.email_messages SET "
            "superseded_stored_at = CASE WHEN superseded_request IS NULL THEN created_at "
            "ELSE superseded_stored_at END, "
            "superseded_scheduled_at = CASE WHEN superseded_request IS NULL THEN scheduled_at "
            "ELSE superseded_scheduled_at END, "
            "superseded_key = coalesce(superseded_key, idempotency_key), "
            "superseded_request = coalesce(superseded_request, request), "
            "request = %s, idempotency_key = %s, to_address = %s, subject = %s, scheduled_at = %s, "
            "revision = revision + 1, error = NULL "
            "WHERE reminder_id = %s AND resend_id IS NULL "
            "RETURNING request, idempotency_key, revision, superseded_request, superseded_key, "
            "superseded_scheduled_at, superseded_stored_at",
            (Jsonb(request), idempotency_key, to_address, subject, scheduled_at, reminder_id)).fetchone()
    assert row is not None, f"reminder {reminder_id} has no stored request to replace"
    return row


def clear_superseded(conn: Conn, reminder_id: int, outcome: str, note: str | None = None) -> None:
    """The superseded request is settled ('cancelled' at Resend, 'not_at_resend', or 'possibly_sent')."""
    conn.execute("UPDATE crm.email_messages SET superseded_request = NULL, superseded_key = NULL, "
                 "superseded_scheduled_at = NULL, superseded_stored_at = NULL WHERE reminder_id = %s",
                 (reminder_id,))
    audit.write(conn, "reminder", reminder_id, "queued", "queued", "reminder_dispatcher",
                {"superseded_request": outcome, "note": note}, actor_type="system")


def record_handoff(conn: Conn, reminder_id: int, token: UUID, resend_id: str, now: datetime) -> str:
    """'scheduled', 'cancel_requested' (cancelled meanwhile), 'claim_lost', or the status it had."""
    row = conn.execute("SELECT crm.record_reminder_handoff(%s, %s, %s, %s)",
                       (reminder_id, token, resend_id, now)).fetchone()
    assert row is not None
    return str(_first(row))


def record_send_failure(conn: Conn, reminder_id: int, token: UUID, error: str, retry_at: datetime) -> None:
    """Keep it queued; the claim now lasts until the retry time, so no one tries sooner."""
    conn.execute(
        "UPDATE crm.reminders SET attempts = attempts + 1, last_error = left(%s, 500), claimed_until = %s "
        "WHERE id = %s AND claim_token = %s", (error, retry_at, reminder_id, token))
    conn.execute("UPDATE crm.email_messages SET error = left(%s, 500) WHERE reminder_id = %s",
                 (error, reminder_id))


def adopt_orphan_email_events(conn: Conn) -> int:
    row = conn.execute("SELECT crm.adopt_orphan_email_events()").fetchone()
    assert row is not None
    return int(_first(row))


# ---------------------------------------------------------------- cancellation at Resend

_CLAIM_CANCELS = """
WITH picked AS (
    SELECT id FROM crm.reminders
     WHERE resend_cancel = 'requested' AND coalesce(next_attempt_at, '-infinity') <= %(now)s
     ORDER BY next_attempt_at NULLS FIRST, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE crm.reminders r SET next_attempt_at = %(now)s + %(lease)s
  FROM picked LEFT JOIN crm.email_messages m ON m.reminder_id = picked.id
 WHERE r.id = picked.id
RETURNING r.id, r.resend_id, r.attempts, m.request, m.idempotency_key, m.scheduled_at,
          m.created_at AS request_stored_at
"""


def claim_cancels(conn: Conn, now: datetime, limit: int, lease: timedelta) -> list[Row]:
    """Requested cancels that are due; pushed out by `lease` so a second worker skips them.

    Each comes with its stored request: one whose hand-off was never recorded has no
    resend_id, and the cancel worker replays that request to learn it.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_CLAIM_CANCELS, {"now": now, "limit": limit, "lease": lease}).fetchall()


def record_unrecorded(conn: Conn, reminder_id: int, outcome: str, now: datetime, resend_id: str | None = None,
                      note: str | None = None) -> str:
    """A flagged reminder with no Resend id: outcome 'replayed' (returns the id to cancel),
    'possibly_sent' or 'not_sent' (returns the outcome); 'not_requested' if nothing is asked any more."""
    row = conn.execute("SELECT crm.record_unrecorded_reminder(%s, %s, %s, %s, %s)",
                       (reminder_id, outcome, now, resend_id, note)).fetchone()
    assert row is not None
    return str(_first(row))


def record_cancel(conn: Conn, reminder_id: int, outcome: str, now: datetime, error: str | None = None,
                  retry_at: datetime | None = None) -> str:
    """outcome 'cancelled' | 'too_late' | 'failed'; returns 'done', 'too_late', 'failed' or 'not_requested'."""
    row = conn.execute("SELECT crm.record_reminder_cancel(%s, %s, %s, %s, %s)",
                       (reminder_id, outcome, now, error, retry_at)).fetchone()
    assert row is not None
    return str(_first(row))


def install_id(conn: Conn) -> str:
    row = conn.execute("SELECT value #>> '{}' FROM crm.settings WHERE key = 'system.install_id'").fetchone()
    return str(_first(row)) if row and _first(row) else "local"


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
