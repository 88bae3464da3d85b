"""The hand edits the Customers, Jobs and Invoices pages make, each in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from db import customers, drafts, jobs
from db.customers import CustomerInput
from db.drafts import DraftLine, NotADraft
from db.jobs import JobInput
from db.pool import connection

__all__ = ["CustomerInput", "JobInput", "NotADraft", "create_customer", "create_draft", "create_job",
           "save_draft_lines", "save_job", "update_customer"]


def create_customer(data: CustomerInput, actor: str) -> int:
    with connection() as conn:
        return customers.create_customer(conn, data, actor)


def update_customer(customer_id: int, data: CustomerInput, actor: str) -> None:
    with connection() as conn:
        customers.update_customer(conn, customer_id, data, actor)


def create_job(data: JobInput, actor: str) -> int:
    with connection() as conn:
        return jobs.create_job(conn, data, actor)


def save_job(job_id: int, title: str, description: str, site_address: str | None, scheduled_for: datetime | None,
             status: str, actor: str) -> None:
    """The job's fields and its status (audited when it changes), together."""
    with connection() as conn:
        jobs.update_job(conn, job_id, title, description, site_address, scheduled_for)
        jobs.set_job_status(conn, job_id, status, actor)


def create_draft(job_id: int, kind: str, due_date: date | None, currency: str, actor: str, user_id: int | None) -> int:
    with connection() as conn:
        return drafts.create_draft(conn, job_id, kind, due_date, currency, actor, user_id)


def save_draft_lines(invoice_id: int, lines: Sequence[DraftLine], total_cents: int, actor: str) -> None:
    """Raises NotADraft when the invoice left draft meanwhile: nothing is saved."""
    with connection() as conn:
        drafts.replace_lines(conn, invoice_id, lines, total_cents, actor)
