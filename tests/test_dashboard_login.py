"""The login gate: the form against argon2 hashes, one answer for every failure, throttling,
expiry, sessions that end with the account, and staff navigation."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from streamlit.testing.v1 import AppTest

from crm.users.auth import FREE_FAILURES_PER_EMAIL, Session
from tests.fixtures.dashboard import APP_TIMEOUT, OWNER_EMAIL, PASSWORD, ROOT, STAFF_EMAIL


def _app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=APP_TIMEOUT)
    at.run()
    return at


def _log_in(at: AppTest, email: str, password: str) -> AppTest:
    at.text_input[0].input(email)
    at.text_input[1].input(password)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_nothing_but_the_login_form_without_a_session(db: psycopg.Connection[Any],
                                                     dashboard_users: dict[str, int]) -> None:
    at = _app()
    assert [t.value for t in at.title] == ["Log in"]
    assert not at.dataframe and not at.metric
    direct = AppTest.from_file(str(ROOT / "pages/invoices.py"), default_timeout=APP_TIMEOUT).run()
    assert [e.value for e in direct.error] == ["Please log in."] and not direct.title


def _after_login(at: AppTest) -> AppTest:
    """The session the form started, in a new AppTest: AppTest keeps rerunning the login
    page's script after st.rerun() swaps the navigation (a real browser lands on the
    default page; the Playwright test covers that)."""
    next_run = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=APP_TIMEOUT)
    next_run.session_state["crm_session"] = at.session_state["crm_session"]
    return next_run.run()


def test_owner_logs_in_and_sees_every_page(db: psycopg.Connection[Any], dashboard_users: dict[str, int]) -> None:
    at = _log_in(_app(), OWNER_EMAIL, PASSWORD)
    assert not at.error
    session = at.session_state["crm_session"]
    assert isinstance(session, Session) and session.role == "owner" and session.email == OWNER_EMAIL
    at = _after_login(at)
    assert [t.value for t in at.title] == ["Invoices"]
    for page, title in [("pages/collections_page.py", "Collections"), ("pages/settings.py", "Settings → Integrations"),
                        ("pages/users.py", "Users"), ("pages/activity.py", "Activity"), ("pages/jobs.py", "Jobs"),
                        ("pages/customers.py", "Customers")]:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.title[0].value == title


def test_wrong_password_then_throttled_with_the_same_answer(db: psycopg.Connection[Any],
                                                           dashboard_users: dict[str, int]) -> None:
    at = _app()
    for _ in range(FREE_FAILURES_PER_EMAIL):
        _log_in(at, STAFF_EMAIL, "wrong password!")
        assert [e.value for e in at.error] == ["Wrong email or password."]
    throttled = db.execute("SELECT source_key, failures FROM crm.login_throttle ORDER BY 1").fetchall()
    assert throttled == [{"source_key": "unknown|*", "failures": FREE_FAILURES_PER_EMAIL},
                         {"source_key": f"unknown|{STAFF_EMAIL}", "failures": FREE_FAILURES_PER_EMAIL}]
    # The wait itself, and its timing, are tested in tests/test_auth.py; here: what the form says.
    db.execute("UPDATE crm.login_throttle SET blocked_until = now() + interval '90 seconds'")
    _log_in(at, STAFF_EMAIL, PASSWORD)
    [message] = [e.value for e in at.error]
    assert re.fullmatch(r"Too many failed attempts from this device\. Try again in (89|90) seconds\.", message)
    assert "crm_session" not in at.session_state
    db.execute("DELETE FROM crm.login_throttle")
    # A disabled account answers exactly like a wrong password (no account enumeration).
    db.execute("UPDATE crm.app_users SET active = false WHERE email = %s", (OWNER_EMAIL,))
    disabled = _log_in(_app(), OWNER_EMAIL, PASSWORD)
    assert [e.value for e in disabled.error] == ["Wrong email or password."]


def test_a_disabled_users_open_session_is_logged_out_on_its_next_rerun(
        db: psycopg.Connection[Any], app_as: Callable[..., Any], dashboard_users: dict[str, int]) -> None:
    at = app_as("staff", "pages/jobs.py")
    assert at.title[0].value == "Jobs"
    db.execute("UPDATE crm.app_users SET active = false WHERE id = %s", (dashboard_users["staff"],))
    at.run()
    assert "crm_session" not in at.session_state
    assert "Jobs" not in [t.value for t in at.title] and not at.dataframe
    assert [e.value for e in at.error] == ["Please log in."]


def test_a_password_reset_ends_the_users_open_session(
        db: psycopg.Connection[Any], app_as: Callable[..., Any], dashboard_users: dict[str, int]) -> None:
    from crm.users.admin import reset_password

    at = app_as("staff", "pages/jobs.py")
    reset_password(db, OWNER_EMAIL, dashboard_users["staff"], "a brand new password")
    at.run()
    assert "crm_session" not in at.session_state
    fresh = _log_in(_app(), STAFF_EMAIL, "a brand new password")
    assert "crm_session" in fresh.session_state


def test_an_expired_session_is_sent_back_to_the_login(db: psycopg.Connection[Any],
                                                      app_as: Callable[..., Any],
                                                      dashboard_users: dict[str, int]) -> None:
    at = app_as("staff", "pages/jobs.py")
    assert at.title[0].value == "Jobs"
    at.session_state["crm_session"] = Session(dashboard_users["staff"], STAFF_EMAIL, "Sam", "staff",
                                              datetime.now(UTC) - timedelta(seconds=1))
    at.run()
    assert "crm_session" not in at.session_state, "the expired session is dropped"
    assert "Jobs" not in [t.value for t in at.title] and not at.dataframe
    # AppTest reruns the page it was on (the browser would show the login form): it refuses.
    assert [e.value for e in at.error] == ["Please log in."]


def test_staff_navigation_has_no_owner_pages(db: psycopg.Connection[Any], dashboard_users: dict[str, int]) -> None:
    at = _after_login(_log_in(_app(), STAFF_EMAIL, PASSWORD))
    assert at.session_state["crm_session"].role == "staff"
    for page, title in [("pages/jobs.py", "Jobs"), ("pages/customers.py", "Customers"),
                        ("pages/activity.py", "Activity")]:
        at.switch_page(page).run()
        assert at.title[0].value == title
