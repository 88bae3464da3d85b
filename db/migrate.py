"""Brings a database to the schema this code expects: versioned migrations, then functions.

Two kinds of SQL file, as in Flyway (versioned + repeatable migrations) and Supabase's
declarative schemas:

- `db/migrations/NNNN_name.sql`: what must happen once (tables, columns, indexes, data).
  Applied in order, each once; a file changed after it was applied is an error.
- `db/functions/NN_concern.sql`: the one current definition of every SQL function, trigger
  function and trigger, written with CREATE OR REPLACE. Applied after the migrations, in
  file-name order (Supabase applies its schema files in lexicographic order); a file is
  re-applied whenever its checksum differs from the one recorded (Flyway's rule for
  repeatable migrations), and skipped when unchanged.

One run is one transaction under a transaction-scoped advisory lock: concurrent runners
(two processes starting at once, a deploy racing the sidecar) serialise, a failure leaves
nothing behind, and it works through Supabase's transaction pooler, where a session lock
would not.

Baseline: migrations 0001-0011 (which also held function bodies, several redefined later)
were folded into `0011_baseline.sql` plus the function files. A database that applied the
old 0001-0011 is recognised and carries on from the baseline without running it; the
function files then replace its functions with the same definitions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
FUNCTIONS_DIR = Path(__file__).parent / "functions"
_LOCK_KEY = 7_302_113_001  # any constant; shared by every migrate runner
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_FUNCTIONS_NAME = re.compile(r"^(\d{2})_([a-z0-9_]+)\.sql$")

# The migrations the baseline replaces, as databases migrated before it recorded them.
BASELINE_VERSION = "0011"
LEGACY_MIGRATIONS = {
    "0001": "schema", "0002": "reminder_schedule", "0003": "stripe_events", "0004": "send_workflow",
    "0005": "reminders", "0006": "dashboard", "0007": "bench_indexes", "0008": "reconcile",
    "0009": "reminder_cancel_unrecorded", "0010": "job_completion_lock", "0011": "collections_indexes",
}

# CREATE SCHEMA IF NOT EXISTS checks the right to create schemas before it looks: an
# application role that owns a schema made for it (Supabase-style least privilege) has no
# such right, so the schema is created only when it is missing.
_BOOTSTRAP = """
DO $$
BEGIN
    IF to_regnamespace('crm') IS NULL THEN
        CREATE SCHEMA crm;
    END IF;
END
$$;
CREATE TABLE IF NOT EXISTS crm.schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE crm.schema_migrations ENABLE ROW LEVEL SECURITY;
CREATE TABLE IF NOT EXISTS crm.schema_functions (
    file        text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE crm.schema_functions ENABLE ROW LEVEL SECURITY;
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class SqlFile:
    key: str  # a migration's version ("0012"), a functions file's name ("40_reminders.sql")
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


Migration = SqlFile


def discover(directory: Path = MIGRATIONS_DIR) -> list[SqlFile]:
    found: list[SqlFile] = []
    for path in sorted(directory.glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if not m:
            raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append(SqlFile(m.group(1), m.group(2), path))
    versions = [m.key for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"two migrations share a number: {versions}")
    return found


def discover_functions(directory: Path = FUNCTIONS_DIR) -> list[SqlFile]:
    found: list[SqlFile] = []
    for path in sorted(directory.glob("*.sql")):
        m = _FUNCTIONS_NAME.match(path.name)
        if not m:
            raise MigrationError(f"functions file name must look like 10_name.sql: {path.name}")
        found.append(SqlFile(path.name, m.group(2), path))
    return found


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def _recorded(conn: psycopg.Connection[Any], table: str, query: str) -> dict[str, str]:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        row = cur.fetchone()
        if not row or not row[0]:
            return {}
        cur.execute(query)
        return {k: checksum for k, checksum in cur.fetchall()}


def applied(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """version -> checksum of the migrations the database has applied ({} when fresh)."""
    return _recorded(conn, "crm.schema_migrations", "SELECT version, checksum FROM crm.schema_migrations")


def applied_functions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """functions file -> checksum of the definition the database holds ({} when fresh)."""
    return _recorded(conn, "crm.schema_functions", "SELECT file, checksum FROM crm.schema_functions")


def pending(conn: psycopg.Connection[Any], directory: Path = MIGRATIONS_DIR) -> list[SqlFile]:
    done = applied(conn)
    return [m for m in discover(directory) if m.key not in done]


def stale_functions(conn: psycopg.Connection[Any], directory: Path = FUNCTIONS_DIR) -> list[SqlFile]:
    """Functions files the database does not hold in their current text."""
    done = applied_functions(conn)
    return [f for f in discover_functions(directory) if done.get(f.key) != f.checksum]


def _adopt_legacy(conn: psycopg.Connection[Any], baseline: SqlFile | None) -> bool:
    """Replace the old 0001-0011 rows by the baseline's row; True if this database had them."""
    rows = conn.execute("SELECT version, name FROM crm.schema_migrations").fetchall()
    legacy = {version for version, name in rows if LEGACY_MIGRATIONS.get(version) == name}
    if not legacy:
        return False
    missing = sorted(set(LEGACY_MIGRATIONS) - legacy)
    if missing:
        raise MigrationError(
            f"this database stopped before migration {missing[0]}; apply 0001-0011 with a release from "
            "before the baseline (git history of db/migrations), then migrate with this one"
        )
    if baseline is None or baseline.key != BASELINE_VERSION:
        raise MigrationError(f"baseline migration {BASELINE_VERSION}_baseline.sql is missing")
    conn.execute("DELETE FROM crm.schema_migrations WHERE version = ANY(%s)", (sorted(legacy),))
    conn.execute(
        "INSERT INTO crm.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
        (baseline.key, baseline.name, baseline.checksum),
    )
    return True


def migrate(url: str, directory: Path = MIGRATIONS_DIR, functions: Path = FUNCTIONS_DIR) -> list[str]:
    """Apply what is pending; return what was applied (empty when up to date).

    Migrations are named by file (`0012_x.sql`), functions files as `functions/40_x.sql`,
    and a recognised pre-baseline database as `0011_baseline.sql (recognised ...)`.
    """
    migrations = discover(directory)
    function_files = discover_functions(functions)
    done_now: list[str] = []
    with psycopg.connect(url, prepare_threshold=None) as conn:
        with conn.transaction():
            _lock(conn)
            conn.execute(_BOOTSTRAP)
            baseline = next((m for m in migrations if m.key == BASELINE_VERSION), None)
            if _adopt_legacy(conn, baseline):
                done_now.append(f"{BASELINE_VERSION}_baseline.sql (recognised: 0001-0011 were applied)")
            done = applied(conn)
            for migration in migrations:
                if migration.key in done:
                    if done[migration.key] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.path.name} was changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                conn.execute(migration.sql.encode("utf-8"))
                conn.execute(
                    "INSERT INTO crm.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.key, migration.name, migration.checksum),
                )
                done_now.append(migration.path.name)
            held = applied_functions(conn)
            for f in function_files:
                if held.get(f.key) == f.checksum:
                    continue
                conn.execute(f.sql.encode("utf-8"))
                conn.execute(
                    "INSERT INTO crm.schema_functions (file, checksum) VALUES (%s, %s) "
                    "ON CONFLICT (file) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()",
                    (f.key, f.checksum),
                )
                done_now.append(f"functions/{f.key}")
        with conn.transaction():
            # Schedules pg_cron jobs when pg_cron is (or has since become) available.
            conn.execute("SELECT crm.ensure_cron_jobs()")
    return done_now
