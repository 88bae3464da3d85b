"""The sidecar's text-reminder workers: schedule due reminders at Twilio, and cancel there the
ones that must not go. Each is one pass of crm/texts/reminders.py with a pooled connection, the
Twilio gateway built from current settings and the wall clock as `now`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from db.config import env_int


def _gateway(conn: Any) -> Any:
    from crm.config.settings import load_settings
    from crm.texts.gateway import TwilioGateway, twilio_target

    with conn.transaction():
        return TwilioGateway(twilio_target(load_settings(conn)))


def dispatch_pass() -> dict[str, Any]:
    from crm.texts.reminders import dispatch_text_reminders
    from db.pool import worker_connection

    with worker_connection() as conn:
        return dict(dispatch_text_reminders(conn, _gateway(conn), datetime.now(UTC)))


def cancel_pass() -> dict[str, Any]:
    from crm.texts.reminders import cancel_text_reminders
    from db.pool import worker_connection

    with worker_connection() as conn:
        return dict(cancel_text_reminders(conn, _gateway(conn), datetime.now(UTC)))


TEXT_WORKERS: list[tuple[str, float, Callable[[], Any]]] = [
    ("texts-reminders", float(env_int("TEXT_REMINDER_INTERVAL_S", 30)), dispatch_pass),
    ("texts-cancel", float(env_int("TEXT_CANCEL_INTERVAL_S", 15)), cancel_pass),
]
