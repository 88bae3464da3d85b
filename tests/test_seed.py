"""The demo business: realistic spread, loaded once."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

import psycopg

from ops.seed import generate, seed_demo

NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)


def test_generation_is_deterministic() -> None:
    a, b = generate(NOW), generate(NOW)
    assert [c.email for c in a] == [c.email for c in b]
    assert sum(len(j.invoices) for c in a for j in c.jobs) == sum(len(j.invoices) for c in b for j in c.jobs)


def test_seed_is_idempotent_and_realistic(db: psycopg.Connection[Any]) -> None:
    first = seed_demo(db, NOW)
    assert first["customers"] == 40
    assert first["jobs"] == 300
    assert 350 <= first["invoices"] <= 460
    assert seed_demo(db, NOW) == {}
    counts = db.execute(
        "SELECT (SELECT count(*) FROM crm.customers) AS customers, (SELECT count(*) FROM crm.invoices) AS invoices"
    ).fetchone()
    assert counts == {"customers": 40, "invoices": first["invoices"]}
    statuses = {r["status"]: r["n"] for r in db.execute(
        "SELECT status, count(*) AS n FROM crm.invoices GROUP BY status")}
    assert {"paid", "open", "void"} <= set(statuses)
    assert statuses["paid"] > statuses["open"]
    overdue = db.execute(
        "SELECT count(*) AS n FROM crm.invoices WHERE status = 'open' AND due_date < %s", (NOW.date(),)
    ).fetchone()
    assert overdue is not None and overdue["n"] > 0
    two_invoice_jobs = db.execute(
        "SELECT count(*) AS n FROM (SELECT job_id FROM crm.invoices GROUP BY job_id "
        "HAVING bool_or(kind = 'deposit') AND bool_or(kind = 'final')) j"
    ).fetchone()
    assert two_invoice_jobs is not None and two_invoice_jobs["n"] >= 10
    delays = db.execute(
        "SELECT min(paid_at - sent_at) AS fastest, max(paid_at - sent_at) AS slowest FROM crm.invoices "
        "WHERE status = 'paid'"
    ).fetchone()
    assert delays is not None
    assert delays["fastest"].total_seconds() < 3600
    assert delays["slowest"].days > 30


def test_seed_cli_twice(db: psycopg.Connection[Any]) -> None:
    run = [sys.executable, "-m", "crm", "seed-demo"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "seeded demo data: 40 customers, 300 jobs" in first.stdout
    second = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert "already present" in second.stdout
