"""Named queries for jobs (crm.jobs): list, read, create, edit, status by hand.

A job completes on its own when its invoices are paid (the webhook's SQL function does
that and records the event); here staff set statuses by hand, audited as themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db import audit
from db.pool import Conn

JOB_STATUSES = ("scheduled", "in_progress", "completed", "cancelled")


@dataclass(frozen=True)
class JobInput:
    customer_id: int
    title: str
    description: str = ""
    site_address: str | None = None
    scheduled_for: datetime | None = None


def list_jobs(conn: Conn, status: str | None = None, customer_id: int | None = None, search: str = "",
              limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    pattern = f"%{search.strip().lower()}%" if search.strip() else None
    return conn.execute(
        """
        SELECT j.id, j.title, j.status, c.name AS customer, j.customer_id, j.scheduled_for, j.completed_at,
               j.completed_by_event_id, j.created_at,
               (SELECT count(*) FROM crm.invoices i WHERE i.job_id = j.id) AS invoices
        FROM crm.jobs j JOIN crm.customers c ON c.id = j.customer_id
        WHERE (%(status)s::text IS NULL OR j.status = %(status)s)
          AND (%(customer)s::bigint IS NULL OR j.customer_id = %(customer)s)
          AND (%(p)s::text IS NULL OR lower(j.title) LIKE %(p)s OR lower(c.name) LIKE %(p)s)
        ORDER BY j.created_at DESC, j.id DESC
        LIMIT %(limit)s OFFSET %(offset)s
        """,
        {"status": status, "customer": customer_id, "p": pattern, "limit": limit, "offset": offset},
    ).fetchall()


def get_job(conn: Conn, job_id: int) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT j.*, c.name AS customer FROM crm.jobs j JOIN crm.customers c ON c.id = j.customer_id "
        "WHERE j.id = %s",
        (job_id,),
    ).fetchone()


def job_choices(conn: Conn, limit: int = 500) -> list[dict[str, Any]]:
    """Jobs that can still be invoiced, newest first, for select boxes."""
    return conn.execute(
        "SELECT j.id, j.title, c.name AS customer FROM crm.jobs j JOIN crm.customers c ON c.id = j.customer_id "
        "WHERE j.status <> 'cancelled' ORDER BY j.created_at DESC, j.id DESC LIMIT %s",
        (limit,),
    ).fetchall()


def create_job(conn: Conn, data: JobInput, actor: str) -> int:
    row = conn.execute(
        "INSERT INTO crm.jobs (customer_id, title, description, site_address, scheduled_for) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (data.customer_id, data.title.strip(), data.description.strip(), data.site_address or None,
         data.scheduled_for),
    ).fetchone()
    assert row is not None
    job_id = int(row["id"])
    _audit(conn, job_id, None, "scheduled", actor)
    return job_id


def update_job(conn: Conn, job_id: int, title: str, description: str, site_address: str | None,
               scheduled_for: datetime | None) -> None:
    conn.execute(
        "UPDATE crm.jobs SET title = %s, description = %s, site_address = %s, scheduled_for = %s WHERE id = %s",
        (title.strip(), description.strip(), site_address or None, scheduled_for, job_id),
    )


def set_job_status(conn: Conn, job_id: int, status: str, actor: str) -> bool:
    """Set a status by hand; returns False when the job was already in it."""
    if status not in JOB_STATUSES:
        raise ValueError(f"unknown job status {status!r}")
    row = conn.execute("SELECT status FROM crm.jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()
    if row is None:
        raise LookupError(f"job {job_id} not found")
    if row["status"] == status:
        return False
    conn.execute(
        "UPDATE crm.jobs SET status = %s, "
        "completed_at = CASE WHEN %s = 'completed' THEN now() END, "
        "completed_by_event_id = CASE WHEN %s = 'completed' THEN completed_by_event_id END WHERE id = %s",
        (status, status, status, job_id),
    )
    _audit(conn, job_id, row["status"], status, actor)
    return True


def job_invoices(conn: Conn, job_id: int) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, kind, status, amount_due_cents, amount_paid_cents, currency, due_date, sent_at, paid_at, "
        "stripe_invoice_number, hosted_invoice_url FROM crm.invoices WHERE job_id = %s ORDER BY created_at, id",
        (job_id,),
    ).fetchall()


def job_completion(conn: Conn, job_id: int) -> dict[str, Any] | None:
    """When and by what the job completed: the audit row of its last move to 'completed'."""
    return conn.execute(
        "SELECT created_at, actor_type, actor, stripe_event_id FROM crm.audit_log "
        "WHERE entity = 'job' AND entity_id = %s AND to_status = 'completed' ORDER BY created_at DESC LIMIT 1",
        (job_id,),
    ).fetchone()


def _audit(conn: Conn, job_id: int, before: str | None, after: str, actor: str) -> None:
    audit.write(conn, "job", job_id, before, after, actor)
