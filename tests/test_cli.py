"""`python -m crm migrate` and `doctor` as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg


def _crm(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "crm", *args], capture_output=True, text=True, env=env, timeout=120)


def test_migrate_twice_from_the_cli(scratch_database: str) -> None:
    first = _crm("migrate", url=scratch_database)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_schema.sql" in first.stdout
    second = _crm("migrate", url=scratch_database)
    assert second.returncode == 0
    assert second.stdout.strip() == "database is up to date"


def test_doctor_on_a_migrated_database(db: psycopg.Connection[Any], database_url: str) -> None:
    result = _crm("doctor", url=database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok  ] row level security on every crm table" in result.stdout
    assert "none pending" in result.stdout
    assert "Stripe: SANDBOX" in result.stdout
    assert "pg_cron" in result.stdout


def test_doctor_flags_pending_migrations(scratch_database: str) -> None:
    result = _crm("doctor", url=scratch_database)
    assert result.returncode == 1
    assert "pending: 0001_schema.sql" in result.stdout


def test_doctor_reports_an_unreachable_database() -> None:
    result = _crm("doctor", url="postgresql://postgres@127.0.0.1:1/nothing")
    assert result.returncode == 1
    assert "[FAIL] database unreachable" in result.stdout
