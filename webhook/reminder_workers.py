"""The sidecar's reminder workers: queue (whenever pg_cron's job is not there and active),
dispatch, cancel at Resend.

Each is one pass of a function in crm/reminders/dispatch.py with a pooled connection, the
Resend gateway built from current settings, and the wall clock as `now`. webhook/workers.py
wraps REMINDER_WORKERS (name, interval in seconds, pass) into its Worker entries.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from db.config import env_int
from db.reminders import QUEUE_PERIOD_S


def queue_fallback_pass() -> dict[str, Any]:
    """Runs crm.queue_due_reminders unless pg_cron's job is there and active (checked each pass:
    a job dropped or switched off after the sidecar started must not stop reminders)."""
    from crm.reminders.dispatch import queue_due
    from crm.reminders.queue_job import sidecar_queues
    from db import reminders
    from db.pool import worker_connection

    with worker_connection() as conn:
        state = reminders.queue_job_state(conn)
        conn.commit()
        if not sidecar_queues(state):
            return {"skipped": "pg_cron runs crm.queue_due_reminders in the database"}
        return {"queued": queue_due(conn, datetime.now(UTC)), "pg_cron_job": state}


def dispatch_pass() -> dict[str, Any]:
    from crm.config.settings import load_settings
    from crm.email.resend_gateway import ResendGateway, resend_target
    from crm.reminders.dispatch import dispatch_queued
    from db.pool import worker_connection

    with worker_connection() as conn:
        with conn.transaction():
            gateway = ResendGateway(resend_target(load_settings(conn)))
        return dict(dispatch_queued(conn, gateway, datetime.now(UTC)))


def cancel_pass() -> dict[str, Any]:
    from crm.config.settings import load_settings
    from crm.email.resend_gateway import ResendGateway, resend_target
    from crm.reminders.dispatch import cancel_requested
    from db.pool import worker_connection

    with worker_connection() as conn:
        with conn.transaction():
            gateway = ResendGateway(resend_target(load_settings(conn)))
        return dict(cancel_requested(conn, gateway, datetime.now(UTC)))


REMINDER_WORKERS: list[tuple[str, float, Callable[[], Any]]] = [
    # The pg_cron job's period (crm.reminder_queue_schedule): one function, two triggers.
    ("reminders-queue-fallback", float(QUEUE_PERIOD_S), queue_fallback_pass),
    ("reminders-dispatch", float(env_int("REMINDER_DISPATCH_INTERVAL_S", 30)), dispatch_pass),
    ("reminders-cancel", float(env_int("REMINDER_CANCEL_INTERVAL_S", 15)), cancel_pass),
]
