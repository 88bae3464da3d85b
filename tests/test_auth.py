"""Users: argon2 hashes only, one answer for every failed login, throttling per source (never a
locked account), disabled accounts, sessions that end with the account."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from crm.users.auth import (
    FAILURE_MESSAGE,
    FREE_FAILURES_PER_EMAIL,
    FREE_FAILURES_PER_SOURCE,
    MAX_DELAY,
    LoginError,
    create_user,
    login,
    session_still_valid,
    throttle_delay,
)
from crm.users.passwords import WeakPasswordError

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


def test_login_then_a_failing_source_waits_and_recovers(db: psycopg.Connection[Any]) -> None:
    create_user(db, "staff@example.com", "Sam", "staff", PASSWORD)
    now = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    session = login(db, "STAFF@example.com", PASSWORD, now, source="10.0.0.7")
    assert (session.role, session.is_owner) == ("staff", False)
    assert session.expires_at > now
    for _ in range(FREE_FAILURES_PER_EMAIL + 1):
        with pytest.raises(LoginError, match=r"^Wrong email or password\.$"):
            login(db, "staff@example.com", "wrong password!", now, source="10.0.0.7")
    # The fourth failure made this source wait 2 s before its next attempt is even checked.
    with pytest.raises(LoginError, match=r"Too many failed attempts from this device\. Try again in 2 seconds"):
        login(db, "staff@example.com", PASSWORD, now + timedelta(milliseconds=500), source="10.0.0.7")
    later = login(db, "staff@example.com", PASSWORD, now + timedelta(seconds=3), source="10.0.0.7")
    assert later.email == "staff@example.com"
    user = db.execute("SELECT failed_logins, locked_until FROM crm.app_users").fetchone()
    assert user == {"failed_logins": 0, "locked_until": None}


def test_a_stranger_cannot_lock_the_owner_out(db: psycopg.Connection[Any]) -> None:
    create_user(db, "owner@demo.example", "Olive", "owner", PASSWORD)
    now = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    for i in range(30):
        with pytest.raises(LoginError):
            login(db, "owner@demo.example", f"guess {i} wrong", now + timedelta(minutes=i), source="203.0.113.9")
    session = login(db, "owner@demo.example", PASSWORD, now + timedelta(minutes=30), source="198.51.100.4")
    assert session.is_owner


def test_password_spraying_from_one_source_is_slowed(db: psycopg.Connection[Any]) -> None:
    create_user(db, "staff@example.com", "Sam", "staff", PASSWORD)
    now = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    for i in range(FREE_FAILURES_PER_SOURCE + 1):
        with pytest.raises(LoginError, match=r"^Wrong email or password\.$"):
            login(db, f"person{i}@example.com", "password123!", now, source="203.0.113.9")
    with pytest.raises(LoginError, match="Too many failed attempts from this device"):
        login(db, "staff@example.com", PASSWORD, now, source="203.0.113.9")
    assert login(db, "staff@example.com", PASSWORD, now, source="192.0.2.1").email == "staff@example.com"


def test_throttle_delay_doubles_after_the_free_failures_and_is_capped() -> None:
    assert [throttle_delay(n, 3).total_seconds() for n in range(1, 8)] == [0, 0, 0, 2, 4, 8, 16]
    assert throttle_delay(40, 3) == MAX_DELAY
    assert throttle_delay(10_000, 3) == MAX_DELAY


def test_a_session_ends_when_the_account_is_disabled_or_its_password_reset(db: psycopg.Connection[Any]) -> None:
    from crm.users.passwords import hash_password

    user_id = create_user(db, "staff@example.com", "Sam", "staff", PASSWORD)
    session = login(db, "staff@example.com", PASSWORD)
    assert session_still_valid(db, session)
    db.execute("UPDATE crm.app_users SET password_hash = %s WHERE id = %s", (hash_password("a new password!"), user_id))
    assert not session_still_valid(db, session)
    session = login(db, "staff@example.com", "a new password!")
    db.execute("UPDATE crm.app_users SET active = false WHERE id = %s", (user_id,))
    assert not session_still_valid(db, session)
    db.execute("UPDATE crm.app_users SET active = true, role = 'owner' WHERE id = %s", (user_id,))
    assert not session_still_valid(db, session), "a role change opens a new session"


def test_unknown_email_gets_the_same_message(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(LoginError, match=r"^Wrong email or password\.$"):
        login(db, "nobody@example.com", PASSWORD)


def test_disabled_user_cannot_log_in(db: psycopg.Connection[Any]) -> None:
    user_id = create_user(db, "gone@example.com", "", "staff", PASSWORD)
    db.execute("UPDATE crm.app_users SET active = false WHERE id = %s", (user_id,))
    with pytest.raises(LoginError) as refused:
        login(db, "gone@example.com", PASSWORD)
    # The same answer as a wrong password: the form never tells that the password was right.
    assert str(refused.value) == FAILURE_MESSAGE


def test_weak_password_is_refused(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(WeakPasswordError):
        create_user(db, "x@example.com", "", "staff", "123")
