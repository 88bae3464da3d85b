"""Draft invoices: create one from a job, edit its lines, due date and memo.

Only a draft can be edited: each write locks the invoice row and checks the status in
the same transaction, so a Send that has started (status 'sending') cannot race an edit.
A draft's amount_due_cents follows its lines, so lists show the total; Send fixes it.
The lines arrive validated and totalled by the core (crm/send/lines.py owns that rule);
this module only stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

from db import audit
from db.pool import Conn

KINDS = ("standard", "deposit", "final")


class DraftLine(Protocol):
    """What a stored line needs: crm.invoice_lines.Line has this shape."""

    @property
    def description(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def unit_amount_cents(self) -> int: ...


class NotADraft(Exception):
    """The invoice left 'draft' (sent, sending or void): it cannot be edited any more."""


def create_draft(conn: Conn, job_id: int, kind: str, due_date: date | None, currency: str, actor: str,
                 user_id: int | None = None, memo: str = "") -> int:
    if kind not in KINDS:
        raise ValueError(f"unknown invoice kind {kind!r}")
    row = conn.execute(
        "INSERT INTO crm.invoices (job_id, customer_id, kind, due_date, currency, memo, created_by) "
        "SELECT j.id, j.customer_id, %s, %s, %s, %s, %s FROM crm.jobs j WHERE j.id = %s RETURNING id",
        (kind, due_date, currency.lower(), memo, user_id, job_id),
    ).fetchone()
    if row is None:
        raise LookupError(f"job {job_id} not found")
    invoice_id = int(row["id"])
    audit.write(conn, "invoice", invoice_id, None, "draft", actor)
    return invoice_id


def _lock_draft(conn: Conn, invoice_id: int) -> None:
    row = conn.execute("SELECT status FROM crm.invoices WHERE id = %s FOR UPDATE", (invoice_id,)).fetchone()
    if row is None:
        raise LookupError(f"invoice {invoice_id} not found")
    if row["status"] != "draft":
        raise NotADraft(f"invoice {invoice_id} is {row['status']}, not a draft: it cannot be edited")


def replace_lines(conn: Conn, invoice_id: int, lines: Sequence[DraftLine], total_cents: int, actor: str) -> None:
    """Replace all lines of a draft; `total_cents` (the core's total of them) becomes its amount due."""
    _lock_draft(conn, invoice_id)
    conn.execute("DELETE FROM crm.invoice_lines WHERE invoice_id = %s", (invoice_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm.invoice_lines (invoice_id, position, description, quantity, unit_amount_cents) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(invoice_id, i, ln.description, ln.quantity, ln.unit_amount_cents) for i, ln in enumerate(lines)],
        )
    conn.execute("UPDATE crm.invoices SET amount_due_cents = %s WHERE id = %s", (total_cents, invoice_id))
    audit.write(conn, "invoice", invoice_id, "draft", "draft", actor, {"lines": len(lines), "total_cents": total_cents})
