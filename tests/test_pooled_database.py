"""The production-shaped database (tests/fixtures/pooler.py): PgBouncer in transaction mode in
front of a Supabase-shaped Postgres, the application connected as `crm_app`, a role that owns
the `crm` schema and nothing more.

Here: migrations through the pooler as that role (also two at once), least privilege (the
role cannot reach outside crm; anon and authenticated read nothing even with a grant added
by mistake), pg_cron registered as Supabase runs it (in `postgres`, as the schema owner,
failures in `crm doctor`), and why prepared statements must be off through the pooler.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from db.migrate import discover, discover_functions, migrate
from db.production_shape import APP_ROLE, provision
from tests.fixtures.pooler import APP_PASSWORD, PooledDatabase
from tests.fixtures.sidecar import seed_invoice

pytestmark = pytest.mark.pooled
Conn = psycopg.Connection[dict[str, Any]]
ROOT = Path(__file__).resolve().parent.parent


def test_pooled_schema_was_migrated_through_the_pooler_by_a_role_that_owns_only_crm(
        pooled_db: Conn, pooled_database: PooledDatabase) -> None:
    me = pooled_db.execute("SELECT current_user AS u, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls "
                           "FROM pg_roles WHERE rolname = current_user").fetchone()
    assert me == {"u": APP_ROLE, "rolsuper": False, "rolcreatedb": False, "rolcreaterole": False,
                  "rolbypassrls": False}
    owners = pooled_db.execute(
        "SELECT DISTINCT pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'crm'").fetchall()
    assert owners == [{"owner": APP_ROLE}]
    assert pooled_db.execute("SELECT pg_get_userbyid(nspowner) AS o FROM pg_namespace WHERE nspname = 'crm'"
                             ).fetchone() == {"o": APP_ROLE}
    owned_elsewhere = pooled_db.execute(
        "SELECT n.nspname FROM pg_namespace n WHERE n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = %s) "
        "AND n.nspname <> 'crm'", (APP_ROLE,)).fetchall()
    assert owned_elsewhere == []
    assert pooled_db.execute("SELECT count(*) AS n FROM crm.schema_migrations").fetchone() == {"n": len(discover())}
    # The pooler is really in between: PgBouncer answers its own SHOW commands only to its
    # admin console, and the server sees the client as 127.0.0.1 on the pooler's own user.
    with psycopg.connect(pooled_database.admin_url) as admin:
        clients = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (APP_ROLE,)).fetchone()
    assert clients is not None and clients[0] >= 1


def test_pooled_concurrent_migrate_runners_apply_a_fresh_schema_once(pooled_database: PooledDatabase) -> None:
    """Three runners at once through the pooler, on a fresh database: the transaction-scoped
    advisory lock serialises them (a session lock would leak to the pooler's server
    connection and block the next runner that lands on another one)."""
    name = f"pooled_scratch_{os.getpid()}"
    with pooled_database.admin() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        provision(pooled_database.cluster.admin_url(name), APP_PASSWORD, pg_cron=False)
        url = pooled_database.bouncer.url(APP_ROLE, name)
        results: list[list[str]] = []
        failures: list[BaseException] = []
        barrier = threading.Barrier(3)

        def run() -> None:
            try:
                barrier.wait()
                results.append(migrate(url))
            except BaseException as exc:  # noqa: BLE001 - asserted below
                failures.append(exc)

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert failures == []
        everything = [m.path.name for m in discover()] + [f"functions/{f.key}" for f in discover_functions()]
        assert sorted(n for r in results for n in r) == sorted(everything)
        assert sorted(len(r) for r in results) == [0, 0, len(everything)]
        assert migrate(url) == []
    finally:
        with pooled_database.admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize("statement", [
    "SELECT * FROM auth.users",
    "SELECT * FROM public.neighbour_notes",
    "INSERT INTO public.neighbour_notes VALUES (2, 'crm was here')",
    "UPDATE auth.users SET email = 'x@example.com'",
    "CREATE TABLE public.crm_leak (id int)",
    "CREATE SCHEMA crm_extra",
    "CREATE ROLE crm_friend",
    "CREATE DATABASE crm_copy",
])
def test_pooled_app_role_cannot_read_or_write_outside_crm(pooled_db: Conn, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        pooled_db.execute(statement)


def test_pooled_anon_and_authenticated_read_nothing_in_crm_even_with_a_mistaken_grant(
        pooled_db: Conn, pooled_database: PooledDatabase) -> None:
    """Row level security (enabled on every crm table, no policies) holds when someone grants
    Supabase's API roles access by mistake; without the grant they cannot even see the schema."""
    seed_invoice(pooled_db)
    pooled_db.execute("INSERT INTO crm.secrets (name, ciphertext, hint) VALUES ('x', 'cipher', '…x')")
    tables = [r["tablename"] for r in pooled_db.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'crm' ORDER BY 1").fetchall()]
    with pooled_database.admin() as admin:
        for role in ("anon", "authenticated"):
            admin.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            with pytest.raises(errors.InsufficientPrivilege):
                admin.execute("SELECT count(*) FROM crm.invoices")
            admin.execute("RESET ROLE")
        try:
            # The mistake: schema usage and every table privilege to both API roles.
            admin.execute("GRANT USAGE ON SCHEMA crm TO anon, authenticated")
            admin.execute("GRANT ALL ON ALL TABLES IN SCHEMA crm TO anon, authenticated")
            for role in ("anon", "authenticated"):
                admin.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
                for table in tables:
                    row = admin.execute(sql.SQL("SELECT count(*) AS n FROM crm.{}").format(sql.Identifier(table))
                                        ).fetchone()
                    assert row == {"n": 0}, (role, table)
                with pytest.raises(errors.InsufficientPrivilege):  # new row violates row-level security
                    admin.execute("INSERT INTO crm.customers (name, email) VALUES ('Mallory', 'm@example.com')")
                assert admin.execute("UPDATE crm.invoices SET status = 'void'").rowcount == 0
                assert admin.execute("DELETE FROM crm.secrets").rowcount == 0
                admin.execute("RESET ROLE")
        finally:
            admin.execute("RESET ROLE")
            admin.execute("REVOKE ALL ON ALL TABLES IN SCHEMA crm FROM anon, authenticated")
            admin.execute("REVOKE ALL ON SCHEMA crm FROM anon, authenticated")
    # service_role bypasses RLS by design (Supabase's secret key): it must have no grant at all.
    roles = pooled_db.execute("SELECT rolname, rolcanlogin, rolbypassrls FROM pg_roles WHERE rolname = ANY(%s) "
                              "ORDER BY 1", (["anon", "authenticated", "service_role"],)).fetchall()
    assert roles == [{"rolname": "anon", "rolcanlogin": False, "rolbypassrls": False},
                     {"rolname": "authenticated", "rolcanlogin": False, "rolbypassrls": False},
                     {"rolname": "service_role", "rolcanlogin": False, "rolbypassrls": True}]
    grants = pooled_db.execute(
        "SELECT grantee, table_name FROM information_schema.role_table_grants "
        "WHERE table_schema = 'crm' AND grantee IN ('anon', 'authenticated', 'service_role', 'PUBLIC')").fetchall()
    assert grants == []
    assert pooled_db.execute("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'crm' AND NOT rowsecurity"
                             ).fetchone() == {"n": 0}


def test_pooled_pg_cron_job_lives_in_postgres_and_runs_as_the_schema_owner(pooled_db: Conn) -> None:
    jobs = pooled_db.execute("SELECT jobname, schedule, command, database, username FROM cron.job").fetchall()
    assert jobs == [{"jobname": "crm-queue-due-reminders", "schedule": "*/5 * * * *",
                     "command": "SELECT crm.queue_due_reminders(now())", "database": "postgres",
                     "username": APP_ROLE}]
    # What the job runs, run as that role through the pooler, works without any superuser right.
    assert pooled_db.execute("SELECT crm.queue_due_reminders(now()) AS n").fetchone() == {"n": 0}
    # Registering again (every migrate does) keeps one job.
    assert pooled_db.execute("SELECT crm.ensure_cron_jobs() AS r").fetchone() == {"r": "scheduled"}
    assert pooled_db.execute("SELECT count(*) AS n FROM cron.job").fetchone() == {"n": 1}


def test_pooled_doctor_shows_failed_pg_cron_runs(pooled_db: Conn, pooled_database: PooledDatabase) -> None:
    """pg_cron records each run in cron.job_run_details; a failed one shows in `crm doctor`.
    The failure is written as pg_cron writes it (the schedule is minute-grained, too slow to wait for)."""
    with pooled_database.admin() as admin:
        admin.execute(
            "INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username, command, status, "
            "return_message, start_time, end_time) SELECT jobid, 990001, 4242, database, username, command, "
            "'failed', 'ERROR:  permission denied for table reminders', now() - interval '3 minutes', "
            "now() - interval '3 minutes' FROM cron.job WHERE jobname = 'crm-queue-due-reminders'")
    try:
        env = {**os.environ, "DATABASE_URL": pooled_database.url, "DB_PREPARED_STATEMENTS": "off"}
        env.pop("CRM_EMBEDDED_DATABASE", None)
        out = subprocess.run([sys.executable, "-m", "crm", "doctor"], cwd=str(ROOT), env=env,
                             capture_output=True, text=True, timeout=120)
        text = out.stdout + out.stderr
        assert "crm-queue-due-reminders [*/5 * * * *] as crm_app in postgres, inactive" in text, text
        assert "[FAIL] pg_cron: 1 failed run" in text, text
        assert "permission denied for table reminders" in text, text
        assert out.returncode == 1
    finally:
        with pooled_database.admin() as admin:
            admin.execute("DELETE FROM cron.job_run_details WHERE runid = 990001")


def test_pooled_prepared_statements_break_through_a_transaction_pooler(pooled_database: PooledDatabase) -> None:
    """Why DB_PREPARED_STATEMENTS=off (psycopg's prepare_threshold=None) through the pooler:
    a statement prepared on one server connection is missing on the next one the pooler
    hands out (PgBouncer 1.18 does not track protocol-level prepared statements)."""
    query = "SELECT count(*) FROM crm.invoices WHERE status = %s"

    def run(prepare_threshold: int | None) -> None:
        with psycopg.connect(pooled_database.url, autocommit=True, prepare_threshold=prepare_threshold) as a, \
                psycopg.connect(pooled_database.url) as b:
            a.execute(query, ("open",))  # with threshold 0: prepared on the server connection it got
            b.execute("SELECT 1")  # b's open transaction now holds that server connection...
            a.execute(query, ("open",))  # ...so a runs on another one
            b.rollback()

    run(None)
    with pytest.raises(psycopg.errors.InvalidSqlStatementName):  # prepared statement "_pg3_0" does not exist
        run(0)
