"""Read-only facts about the database for /readyz and `python -m crm doctor`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from db.migrate import applied, discover, stale_functions
from db.reminders import queue_job_state


@dataclass(frozen=True)
class DatabaseStatus:
    server_version: str
    migrations_applied: int
    migrations_pending: list[str]
    functions_stale: list[str]  # db/functions files the database does not hold as written
    pg_cron_jobs: list[str] | None  # None: pg_cron not installed in this database
    pg_cron_failures: list[str]  # failed runs of this database's jobs in the last day, newest first
    queue_job: str  # db.reminders.queue_job_state: 'active', 'inactive', 'missing' or 'no pg_cron'
    tables_without_rls: list[str]


def migrations_current(conn: psycopg.Connection[Any]) -> bool:
    done = applied(conn)
    return all(m.key in done for m in discover()) and not stale_functions(conn)


def database_status(conn: psycopg.Connection[Any]) -> DatabaseStatus:
    done = applied(conn)
    with conn.cursor(row_factory=tuple_row) as cur:
        version = str(cur.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        has_cron = cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
        jobs: list[str] | None = None
        failures: list[str] = []
        if has_cron:
            # cron.job and cron.job_run_details show a non-superuser only the jobs it owns.
            jobs = [
                f"{name} [{schedule}] as {username} in {database}, {'active' if active else 'inactive'}"
                for name, schedule, username, database, active in cur.execute(
                    "SELECT jobname, schedule, username, database, active FROM cron.job "
                    "WHERE database = current_database() ORDER BY jobname"
                ).fetchall()
            ]
            failures = [
                f"{name} at {started:%Y-%m-%d %H:%M} UTC: {(message or 'no message').strip()[:200]}"
                for name, started, message in cur.execute(
                    "SELECT j.jobname, d.start_time AT TIME ZONE 'UTC', d.return_message "
                    "FROM cron.job_run_details d JOIN cron.job j ON j.jobid = d.jobid "
                    "WHERE j.database = current_database() AND d.status = 'failed' "
                    "AND d.start_time > now() - interval '1 day' ORDER BY d.start_time DESC LIMIT 5"
                ).fetchall()
            ]
        no_rls = [
            r[0]
            for r in cur.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'crm' AND c.relkind = 'r' AND NOT c.relrowsecurity ORDER BY 1"
            ).fetchall()
        ]
    return DatabaseStatus(
        server_version=version,
        migrations_applied=len(done),
        migrations_pending=[m.path.name for m in discover() if m.key not in done],
        functions_stale=[f.key for f in stale_functions(conn)],
        pg_cron_jobs=jobs,
        pg_cron_failures=failures,
        queue_job=queue_job_state(conn),
        tables_without_rls=no_rls,
    )
