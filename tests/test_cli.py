"""`python -m crm migrate` and `doctor` as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest


def _crm(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "crm", *args], capture_output=True, text=True, env=env, timeout=120)


def test_migrate_twice_from_the_cli(scratch_database: str) -> None:
    first = _crm("migrate", url=scratch_database)
    assert first.returncode == 0, first.stderr
    assert "applied 0011_baseline.sql" in first.stdout
    assert "applied functions/60_stripe_events.sql" in first.stdout
    second = _crm("migrate", url=scratch_database)
    assert second.returncode == 0
    assert second.stdout.strip() == "database is up to date"


@pytest.mark.usefixtures("queue_job_active")
def test_doctor_on_a_migrated_database(db: psycopg.Connection[Any], database_url: str) -> None:
    result = _crm("doctor", url=database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok  ] row level security on every crm table" in result.stdout
    assert "none pending" in result.stdout
    assert "[ok  ] SQL functions current" in result.stdout
    assert "Stripe: SANDBOX" in result.stdout
    assert "pg_cron" in result.stdout


def test_doctor_flags_pending_migrations(scratch_database: str) -> None:
    result = _crm("doctor", url=scratch_database)
    assert result.returncode == 1
    assert "pending: 0011_baseline.sql" in result.stdout


def test_doctor_reports_an_unreachable_database() -> None:
    result = _crm("doctor", url="postgresql://postgres@127.0.0.1:1/nothing")
    assert result.returncode == 1
    assert "[FAIL] database unreachable" in result.stdout


def test_doctor_flags_an_out_of_date_functions_file(scratch_database: str) -> None:
    assert _crm("migrate", url=scratch_database).returncode == 0
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("UPDATE crm.schema_functions SET checksum = 'old' WHERE file = '40_reminders.sql'")
    result = _crm("doctor", url=scratch_database)
    assert result.returncode == 1
    assert "[FAIL] SQL functions out of date: 40_reminders.sql (run python -m crm migrate)" in result.stdout
    assert _crm("migrate", url=scratch_database).stdout.strip() == "applied functions/40_reminders.sql"
