"""Named queries for customers (crm.customers): list, read, create, edit, balance.

Inputs are validated by crm.validation before they get here; the table's CHECKs are the
last line. Lists are paginated: the dashboard never loads every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db import audit
from db.pool import Conn


@dataclass(frozen=True)
class CustomerInput:
    name: str
    email: str | None
    phone: str | None = None
    address: str | None = None
    reminders_opt_out: bool = False


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


CUSTOMER_SORTS = {"newest": "c.created_at DESC, c.id DESC", "name": "lower(c.name), c.id",
                  "balance": "coalesce(b.balance_cents, 0) DESC, c.id DESC"}


def list_customers(conn: Conn, search: str = "", limit: int = 50, offset: int = 0,
                   sort: str = "newest") -> list[dict[str, Any]]:
    """Customers, newest first (or by name, or by balance), with their open balance (open
    invoices' amount due minus paid)."""
    pattern = f"%{search.strip().lower()}%" if search.strip() else None
    return conn.execute(
        """
        SELECT c.id, c.name, c.email, c.phone, c.reminders_opt_out, c.created_at,
               coalesce(b.balance_cents, 0) AS balance_cents, coalesce(b.open_invoices, 0) AS open_invoices
        FROM crm.customers c
        LEFT JOIN LATERAL (
            SELECT sum(i.amount_due_cents - i.amount_paid_cents) AS balance_cents, count(*) AS open_invoices
            FROM crm.invoices i WHERE i.customer_id = c.id AND i.status = 'open'
        ) b ON true
        WHERE %(p)s::text IS NULL OR lower(c.name) LIKE %(p)s OR lower(coalesce(c.email, '')) LIKE %(p)s
        ORDER BY """ + CUSTOMER_SORTS[sort] + """
        LIMIT %(limit)s OFFSET %(offset)s
        """,
        {"p": pattern, "limit": limit, "offset": offset},
    ).fetchall()


def count_customers(conn: Conn, search: str = "") -> int:
    pattern = f"%{search.strip().lower()}%" if search.strip() else None
    row = conn.execute(
        "SELECT count(*) AS n FROM crm.customers c WHERE %(p)s::text IS NULL OR lower(c.name) LIKE %(p)s "
        "OR lower(coalesce(c.email, '')) LIKE %(p)s",
        {"p": pattern},
    ).fetchone()
    assert row is not None
    return int(row["n"])


def customer_choices(conn: Conn, limit: int = 500) -> list[dict[str, Any]]:
    """id and name for select boxes."""
    return conn.execute(
        "SELECT id, name, email FROM crm.customers ORDER BY lower(name), id LIMIT %s", (limit,)
    ).fetchall()


def get_customer(conn: Conn, customer_id: int) -> dict[str, Any] | None:
    return conn.execute(
        """
        SELECT c.*,
               (SELECT coalesce(sum(amount_due_cents - amount_paid_cents), 0) FROM crm.invoices
                 WHERE customer_id = c.id AND status = 'open') AS balance_cents,
               (SELECT coalesce(sum(amount_paid_cents - amount_refunded_cents), 0) FROM crm.invoices
                 WHERE customer_id = c.id AND status = 'paid') AS paid_cents
        FROM crm.customers c WHERE c.id = %s
        """,
        (customer_id,),
    ).fetchone()


def create_customer(conn: Conn, data: CustomerInput, actor: str) -> int:
    row = conn.execute(
        "INSERT INTO crm.customers (name, email, phone, address, reminders_opt_out) VALUES (%s, %s, %s, %s, %s) "
        "RETURNING id",
        (data.name.strip(), _blank_to_none(data.email), _blank_to_none(data.phone), _blank_to_none(data.address),
         data.reminders_opt_out),
    ).fetchone()
    assert row is not None
    customer_id = int(row["id"])
    _audit(conn, customer_id, None, "created", actor)
    return customer_id


def update_customer(conn: Conn, customer_id: int, data: CustomerInput, actor: str) -> None:
    """Edit a customer; an opt-out stops their queued and Resend-held reminders in the same transaction."""
    with conn.transaction():
        conn.execute(
            "UPDATE crm.customers SET name = %s, email = %s, phone = %s, address = %s, reminders_opt_out = %s "
            "WHERE id = %s",
            (data.name.strip(), _blank_to_none(data.email), _blank_to_none(data.phone), _blank_to_none(data.address),
             data.reminders_opt_out, customer_id),
        )
        _audit(conn, customer_id, None, "edited", actor)
        if data.reminders_opt_out:
            stop_reminders_of_opted_out(conn, customer_id, actor)


def stop_reminders_of_opted_out(conn: Conn, customer_id: int, actor: str) -> int:
    """Cancel the customer's queued reminders and flag those Resend holds for the cancel worker
    (crm.stop_customer_reminders); a no-op for one already opted out, whose nothing is queued."""
    row = conn.execute("SELECT crm.stop_customer_reminders(%s, %s) AS n", (customer_id, actor)).fetchone()
    assert row is not None
    return int(row["n"])


def customer_jobs(conn: Conn, customer_id: int, limit: int = 100) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, title, status, scheduled_for, completed_at, created_at FROM crm.jobs WHERE customer_id = %s "
        "ORDER BY created_at DESC LIMIT %s",
        (customer_id, limit),
    ).fetchall()


def customer_invoices(conn: Conn, customer_id: int, limit: int = 100) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, job_id, kind, status, amount_due_cents, amount_paid_cents, currency, due_date, sent_at, "
        "paid_at, stripe_invoice_number FROM crm.invoices WHERE customer_id = %s ORDER BY created_at DESC LIMIT %s",
        (customer_id, limit),
    ).fetchall()


def _audit(conn: Conn, customer_id: int, before: str | None, after: str, actor: str) -> None:
    audit.write(conn, "customer", customer_id, before, after, actor)


def customer_timeline(conn: Conn, customer_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """What happened with one customer, newest first: changes and statements (audit log),
    and every email sent to them (statements, invoice emails, reminders) with its tracking."""
    return conn.execute(
        """
        SELECT * FROM (
            SELECT a.created_at AS at, 'change' AS source,
                   CASE a.to_status WHEN 'statement_sent' THEN 'statement emailed: '
                            || jsonb_array_length(coalesce(a.detail -> 'invoices', '[]'::jsonb)) || ' open invoice(s)'
                        ELSE coalesce(a.to_status, '') END AS what,
                   a.actor AS who
            FROM crm.audit_log a WHERE a.entity = 'customer' AND a.entity_id = %(id)s
          UNION ALL
            SELECT coalesce(m.sent_at, m.created_at), 'email',
                   m.kind || ' email ' || m.status
                   || CASE WHEN m.first_clicked_at IS NOT NULL THEN ', clicked'
                           WHEN m.first_opened_at IS NOT NULL THEN ', opened' ELSE '' END
                   || ': ' || m.subject,
                   m.to_address
            FROM crm.email_messages m
            WHERE m.customer_id = %(id)s
               OR m.invoice_id IN (SELECT i.id FROM crm.invoices i WHERE i.customer_id = %(id)s)
        ) t
        ORDER BY at DESC
        LIMIT %(limit)s
        """,
        {"id": customer_id, "limit": limit},
    ).fetchall()
