"""Reminder queueing: crm.queue_due_reminders at several 'now's, each run rolled back.

The data's steady state is just after a run at the anchor (everything due within the
hand-off window is already at Resend), so the anchor itself has nothing due; later
'now's stand for the function not having run for a while (an outage) and have more and
more due. Time that grows with the due count and not with the table is the target.
The statements inside the function are shown with auto_explain (ANALYZE, BUFFERS),
whose LOG lines reach us as notices.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

LIVE_INDEX = "crm.reminders_live_idx"  # migration 0007, now in db/migrations/0011_baseline.sql
# 'now' offsets from the anchor: none due, about a day's worth, a week's, a month's.
OFFSETS: tuple[tuple[str, timedelta], ...] = (
    ("anchor (steady state)", timedelta(0)),
    ("+15 h (next day due)", timedelta(hours=15)),
    ("+7 days (a week behind)", timedelta(days=7, hours=15)),
    ("+30 days (a month behind)", timedelta(days=30, hours=15)),
)


@dataclass
class QueueResult:
    label: str
    now: datetime
    due: int
    queued: int
    median_ms: float
    runs_ms: list[float]
    without_index_ms: float | None = None  # the same run with 0007's index dropped (inside the rolled-back txn)


@dataclass
class QueueRun:
    reminders: int
    pending: int
    results: list[QueueResult] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)


def _due(conn: psycopg.Connection[tuple[Any, ...]], now: datetime) -> int:
    row = conn.execute(
        "SELECT count(*) FROM crm.reminders r JOIN crm.invoices i ON i.id = r.invoice_id "
        "WHERE r.status = 'pending' AND r.send_at <= %s + interval '1 day' AND i.status = 'open'", (now,)
    ).fetchone()
    return int(row[0]) if row else 0


def run(url: str, anchor: datetime, reps: int, explain_offset: int = 1) -> QueueRun:
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM crm.reminders").fetchone()
        assert counts is not None
        out = QueueRun(int(counts[0]), int(counts[1]))
        has_index = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (LIVE_INDEX,)).fetchone() == (True,)
        conn.rollback()
        for n, (label, offset) in enumerate(OFFSETS):
            now = anchor + offset
            due = _due(conn, now)
            conn.rollback()
            runs: list[float] = []
            queued = 0
            for _ in range(reps):
                started = time.perf_counter()
                row = conn.execute("SELECT crm.queue_due_reminders(%s)", (now,)).fetchone()
                runs.append((time.perf_counter() - started) * 1000)
                queued = int(row[0]) if row else 0
                conn.rollback()
            without = _without_index(conn, now, reps) if has_index else None
            out.results.append(QueueResult(label, now, due, queued, statistics.median(runs), runs, without))
            if n == explain_offset:
                out.plans = explain(conn, now)
    return out


def _without_index(conn: psycopg.Connection[tuple[Any, ...]], now: datetime, reps: int) -> float:
    """Median ms of a run without migration 0007's index: DDL is transactional, the rollback restores it."""
    runs = []
    for _ in range(reps):
        conn.execute(f"DROP INDEX {LIVE_INDEX}")
        started = time.perf_counter()
        conn.execute("SELECT crm.queue_due_reminders(%s)", (now,))
        runs.append((time.perf_counter() - started) * 1000)
        conn.rollback()
    return statistics.median(runs)


def explain(conn: psycopg.Connection[tuple[Any, ...]], now: datetime) -> list[str]:
    """Plans of the statements the function runs, via auto_explain; rolled back."""
    plans: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary and "plan:" in diag.message_primary.lower():
            plans.append(diag.message_primary)

    conn.add_notice_handler(keep)
    try:
        conn.execute("LOAD 'auto_explain'")
        for setting in ("auto_explain.log_min_duration = 0", "auto_explain.log_analyze = on",
                        "auto_explain.log_buffers = on", "auto_explain.log_nested_statements = on",
                        "auto_explain.log_timing = on", "client_min_messages = log"):
            conn.execute(f"SET LOCAL {setting}")
        conn.execute("SELECT crm.queue_due_reminders(%s)", (now,))
    except psycopg.Error as exc:
        plans.append(f"(auto_explain unavailable: {exc})")
    finally:
        conn.rollback()
        conn.remove_notice_handler(keep)
    # The plans of the wrapper calls themselves say nothing about the work inside.
    return [p for p in plans if "Query Text: SELECT crm.queue_due_reminders" not in p] or plans
