"""Reminder rules that live on both sides of the SQL boundary: SQL is the home, Python reads
it or is held to it here."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from db.reminders import QUEUE_PERIOD_S


def test_the_fallback_worker_runs_at_the_pg_cron_period(db: Any) -> None:
    schedule = db.execute("SELECT crm.reminder_queue_schedule() AS s").fetchone()["s"]
    assert schedule == f"*/{QUEUE_PERIOD_S // 60} * * * *"


def test_the_hand_off_window_is_one_day(db: Any) -> None:
    """What docs/DESIGN says: a reminder sits at Resend about a day, so a late payment cancels it."""
    assert db.execute("SELECT crm.reminder_handoff_window() AS w").fetchone()["w"] == timedelta(days=1)
