"""Applies db/migrations/NNNN_name.sql in order, each once, each in its own transaction.

A transaction-scoped advisory lock serialises concurrent runners (two processes starting
at once, or a deploy racing the sidecar), and works through Supabase's transaction
pooler where a session lock would not. A migration already applied whose file has since
changed is an error: migrations are append-only.
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
_LOCK_KEY = 7_302_113_001  # any constant; shared by every migrate runner
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS crm;
CREATE TABLE IF NOT EXISTS crm.schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE crm.schema_migrations ENABLE ROW LEVEL SECURITY;
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append(Migration(m.group(1), m.group(2), path))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"two migrations share a number: {versions}")
    return found


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def applied(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """version -> checksum of what the database has applied ({} on a fresh database)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT to_regclass('crm.schema_migrations') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return {}
        cur.execute("SELECT version, checksum FROM crm.schema_migrations")
        return {version: checksum for version, checksum in cur.fetchall()}


def pending(conn: psycopg.Connection[Any], directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    done = applied(conn)
    return [m for m in discover(directory) if m.version not in done]


def migrate(url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is pending; return the names applied (empty when up to date)."""
    done_now: list[str] = []
    with psycopg.connect(url, prepare_threshold=None) as conn:
        with conn.transaction():
            _lock(conn)
            conn.execute(_BOOTSTRAP)
        for migration in discover(directory):
            with conn.transaction():
                _lock(conn)
                row = conn.execute(
                    "SELECT checksum FROM crm.schema_migrations WHERE version = %s", (migration.version,)
                ).fetchone()
                if row is not None:
                    if row[0] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.path.name} was changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                conn.execute(migration.sql.encode("utf-8"))
                conn.execute(
                    "INSERT INTO crm.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                done_now.append(migration.path.name)
        with conn.transaction():
            # Schedules pg_cron jobs when pg_cron is (or has since become) available.
            conn.execute("SELECT crm.ensure_cron_jobs()")
    return done_now
