"""Test harness: one real Postgres per test session, clean tables for every test.

The server is a throwaway cluster in a temp folder (Debian's binaries when present,
with pg_cron preloaded; otherwise pgserver's), or TEST_DATABASE_URL when given.
Isolation: every test that asks for `db` starts from empty crm tables (TRUNCATE ...
RESTART IDENTITY), with migrations applied once per session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg.rows import dict_row

# The developer's own configuration must not leak into tests.
for _name in list(os.environ):
    if _name.startswith(("STRIPE_", "RESEND_", "EMAIL_", "BUSINESS_", "REMINDER_", "SANDBOX_")):
        del os.environ[_name]
os.environ.pop("DATABASE_URL", None)
os.environ["CRM_SECRET_KEY"] = Fernet.generate_key().decode()
_TMP = Path(tempfile.mkdtemp(prefix="crm-tests-"))
os.environ["CRM_DATA_DIR"] = str(_TMP / "data")

from db.embedded import EmbeddedPostgres, free_port  # noqa: E402

# Fixtures by area, one module each, so they stay small and owned.
pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.sidecar",
    "tests.fixtures.workflow",
    "tests.fixtures.dashboard",
    "tests.fixtures.pooler",
]


class PgServer:
    """The session's server; tests that simulate an outage stop and start it."""

    def __init__(self) -> None:
        self.external = os.environ.get("TEST_DATABASE_URL")
        self.embedded: EmbeddedPostgres | None = None
        if self.external:
            self.url = self.external
        else:
            self.embedded = EmbeddedPostgres(root=_TMP / "pg", port=free_port(), db_name="crm_test")
            self.url = self.embedded.start()

    @property
    def admin_url(self) -> str:
        if self.embedded is not None:
            return self.embedded.admin_url()
        return self.url

    @property
    def can_restart(self) -> bool:
        return self.embedded is not None

    def stop(self) -> None:
        assert self.embedded is not None, "cannot stop an external TEST_DATABASE_URL server"
        self.embedded.stop("immediate")

    def start(self) -> None:
        assert self.embedded is not None
        self.embedded.start()


_server: PgServer | None = None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    global _server
    _server = PgServer()
    os.environ["DATABASE_URL"] = _server.url
    from db.config import resolved_database_url
    from db.migrate import migrate

    resolved_database_url.cache_clear()
    migrate(_server.url)
    with psycopg.connect(_server.url, autocommit=True) as conn:
        # pg_cron would otherwise run the queueing job against test data at wall-clock times.
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
            conn.execute("UPDATE cron.job SET active = false")
    yield _server
    from db.pool import close_pool

    close_pool()
    if _server.embedded is not None:
        _server.embedded.destroy()
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg_server: PgServer) -> str:
    return pg_server.url


def truncate_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'crm' "
                "AND tablename NOT IN ('schema_migrations', 'schema_functions')"
            ).fetchall()
        ]
        conn.execute("TRUNCATE " + ", ".join(f"crm.{t}" for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection to a freshly emptied CRM database."""
    truncate_all(database_url)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def pg_cron_available(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone() is not None


@pytest.fixture
def pg_cron(database_url: str) -> None:
    """Skips (with the reason printed by -ra) where pg_cron is not installed."""
    if not pg_cron_available(database_url):
        pytest.skip("pg_cron is not installed on this Postgres (CI installs postgresql-15-cron)")


@pytest.fixture
def queue_job_active(db: psycopg.Connection[dict[str, Any]]) -> Iterator[None]:
    """pg_cron's queue job active, as deployed, for a test that runs `crm doctor` expecting it
    to pass (doctor fails on an inactive job); switched off again afterwards, as the session
    keeps it (it must not run against test data)."""
    cron = db.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
    if cron:
        db.execute("UPDATE cron.job SET active = true WHERE database = current_database()")
    yield
    if cron:
        db.execute("UPDATE cron.job SET active = false WHERE database = current_database()")


@pytest.fixture
def scratch_database(pg_server: PgServer) -> Iterator[str]:
    """An empty database of its own (no migrations), dropped afterwards."""
    name = f"scratch_{os.getpid()}_{free_port()}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.admin_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
