"""The sidecar's reminder workers: queue (whenever pg_cron's job is not there and active),
dispatch, cancel at Resend.

Each is one pass of a function in crm/reminder_dispatch.py with a pooled connection, the
Resend gateway built from current settings, and the wall clock as `now`. webhook/workers.py
wraps REMINDER_WORKERS (name, interval in seconds, pass) into its Worker entries.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from db.config import env_int


def queue_fallback_pass() -> dict[str, Any]:
    """Runs crm.queue_due_reminders unless pg_cron's job is there and active (checked each pass:
    a job dropped or switched off after the sidecar started must not stop reminders)."""
    from crm.queue_job import sidecar_queues
    from crm.reminder_dispatch import queue_due
    from db import reminders
    from db.pool import worker_connection

    with worker_connection() as conn:
        state = reminders.queue_job_state(conn)
        conn.commit()
        if not sidecar_queues(state):
            return {"skipped": "pg_cron runs crm.queue_due_reminders in the database"}
        return {"queued": queue_due(conn, datetime.now(UTC)), "pg_cron_job": state}


def dispatch_pass() -> dict[str, Any]:
    from crm.reminder_dispatch import dispatch_queued
    from crm.resend_gateway import ResendGateway, resend_target
    from crm.settings import load_settings
    from db.pool import worker_connection

    with worker_connection() as conn:
        with conn.transaction():
            gateway = ResendGateway(resend_target(load_settings(conn)))
        return dict(dispatch_queued(conn, gateway, datetime.now(UTC)))


def cancel_pass() -> dict[str, Any]:
    from crm.reminder_dispatch import cancel_requested
    from crm.resend_gateway import ResendGateway, resend_target
    from crm.settings import load_settings
    from db.pool import worker_connection

    with worker_connection() as conn:
        with conn.transaction():
            gateway = ResendGateway(resend_target(load_settings(conn)))
        return dict(cancel_requested(conn, gateway, datetime.now(UTC)))


REMINDER_WORKERS: list[tuple[str, float, Callable[[], Any]]] = [
    # Same period as the pg_cron job (*/5 * * * *): one function, two triggers.
    ("reminders-queue-fallback", 300.0, queue_fallback_pass),
    ("reminders-dispatch", float(env_int("REMINDER_DISPATCH_INTERVAL_S", 30)), dispatch_pass),
    ("reminders-cancel", float(env_int("REMINDER_CANCEL_INTERVAL_S", 15)), cancel_pass),
]
