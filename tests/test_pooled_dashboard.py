"""The dashboard through PgBouncer in transaction mode as crm_app (tests/fixtures/pooler.py):
two sessions reading at once, and a clear message, not a hang, when its pool is exhausted."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crm.users.auth import create_user
from tests.fixtures.dashboard import APP_TIMEOUT, PASSWORD, session_for
from tests.fixtures.pooler import PooledDatabase
from tests.fixtures.sidecar import seed_invoice

Conn = psycopg.Connection[dict[str, Any]]
ROOT = Path(__file__).resolve().parent.parent


def _app(role: str, user_id: int, page: str | None = None) -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=APP_TIMEOUT)
    at.session_state["crm_session"] = session_for(role, user_id)
    if page is not None:
        at.switch_page(page)
    return at


@pytest.mark.pooled
def test_pooled_two_dashboard_sessions_read_at_once(pooled_db: Conn, pooled_env: PooledDatabase) -> None:
    owner = create_user(pooled_db, "owner@example.com", "Olive Owner", "owner", PASSWORD)
    staff = create_user(pooled_db, "staff@example.com", "Sam Staff", "staff", PASSWORD)
    for _ in range(3):
        seed_invoice(pooled_db)
    sessions = [_app("owner", owner, "pages/collections_page.py"), _app("staff", staff, "pages/invoices.py")]
    failures: list[BaseException] = []

    def run(at: Any) -> None:
        try:
            for _ in range(2):
                at.run()
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(at,)) for at in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    for at in sessions:
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]


@pytest.mark.pooled
def test_pooled_dashboard_says_the_database_is_busy_when_its_pool_is_exhausted(
        pooled_db: Conn, pooled_env: PooledDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    from db.pool import close_pool, get_pool

    staff = create_user(pooled_db, "staff@example.com", "Sam Staff", "staff", PASSWORD)
    monkeypatch.setenv("DB_POOL_MIN", "1")
    monkeypatch.setenv("DB_POOL_MAX", "1")
    monkeypatch.setenv("DB_POOL_TIMEOUT_S", "1")
    close_pool()
    at = _app("staff", staff)  # the default page, Invoices, through dashboard.py's navigation
    try:
        with get_pool().connection():  # every connection of this dashboard process is in use
            started = time.monotonic()
            at.run()
            waited = time.monotonic() - started
    finally:
        close_pool()
    assert not at.exception, [e.value for e in at.exception]
    assert any("The database is busy" in e.value for e in at.error), [e.value for e in at.error]
    assert waited < 15, waited
