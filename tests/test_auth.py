"""Users: argon2 hashes only, lockout after repeated failures, disabled accounts."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from crm.auth import MAX_FAILURES, LoginError, create_user, login
from crm.passwords import WeakPasswordError

PASSWORD = "correct horse battery"


def _all_text(conn: psycopg.Connection[Any]) -> str:
    """Every row of every crm table as text: where a leaked plaintext would show."""
    tables = [r["tablename"] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'crm'")]
    return "".join(
        str(conn.execute(f"SELECT coalesce(string_agg(t::text, ''), '') AS s FROM crm.{t} t").fetchone())
        for t in tables
    )


def test_cli_create_user_stores_only_an_argon2_hash(db: psycopg.Connection[Any], database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crm", "create-user", "boss@example.com", "--role", "owner", "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "created owner boss@example.com" in result.stdout
    row = db.execute("SELECT role, password_hash FROM crm.app_users WHERE email = 'boss@example.com'").fetchone()
    assert row is not None and row["role"] == "owner"
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in _all_text(db)


def test_cli_refuses_a_short_password(db: psycopg.Connection[Any]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crm", "create-user", "a@example.com", "--password-stdin"],
        input="short\n", capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "at least 10 characters" in result.stderr
    assert db.execute("SELECT count(*) AS n FROM crm.app_users").fetchone() == {"n": 0}


def test_login_and_lockout(db: psycopg.Connection[Any]) -> None:
    create_user(db, "staff@example.com", "Sam", "staff", PASSWORD)
    now = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    session = login(db, "STAFF@example.com", PASSWORD, now)
    assert (session.role, session.is_owner) == ("staff", False)
    assert session.expires_at > now
    for _ in range(MAX_FAILURES):
        with pytest.raises(LoginError, match="Wrong email or password"):
            login(db, "staff@example.com", "wrong password!", now)
    with pytest.raises(LoginError, match="Too many failed attempts"):
        login(db, "staff@example.com", PASSWORD, now + timedelta(minutes=1))
    later = login(db, "staff@example.com", PASSWORD, now + timedelta(minutes=16))
    assert later.email == "staff@example.com"


def test_unknown_email_gets_the_same_message(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(LoginError, match=r"^Wrong email or password\.$"):
        login(db, "nobody@example.com", PASSWORD)


def test_disabled_user_cannot_log_in(db: psycopg.Connection[Any]) -> None:
    user_id = create_user(db, "gone@example.com", "", "staff", PASSWORD)
    db.execute("UPDATE crm.app_users SET active = false WHERE id = %s", (user_id,))
    with pytest.raises(LoginError, match="disabled"):
        login(db, "gone@example.com", PASSWORD)


def test_weak_password_is_refused(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(WeakPasswordError):
        create_user(db, "x@example.com", "", "staff", "123")
