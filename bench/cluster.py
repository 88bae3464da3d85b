"""The bench's own throwaway Postgres: started, migrated, loaded, destroyed.

Same server binaries and settings as the run command's embedded server (db.embedded),
without pg_cron, so no scheduled job queues reminders in the middle of a measurement.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bench.parts import ROOT, committed_sql
from db.embedded import EmbeddedPostgres, free_port
from db.migrate import migrate


@contextmanager
def bench_server(keep: bool = False) -> Iterator[EmbeddedPostgres]:
    """A fresh cluster under ./.data/bench-<pid> (removed afterwards unless keep)."""
    base = Path(os.environ.get("CRM_DATA_DIR", ROOT / ".data"))
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-", dir=base))
    server = EmbeddedPostgres(root=root / "pg", port=free_port(), db_name="crm_bench", pg_cron=False)
    server.start()
    try:
        yield server
    finally:
        if keep:
            server.stop()
        else:
            server.destroy()
            shutil.rmtree(root, ignore_errors=True)


def empty_database(server: EmbeddedPostgres, name: str) -> str:
    """Drop and create database `name` on the server; return its URL."""
    drop_database(server, name)
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.admin_url(name)


def drop_database(server: EmbeddedPostgres, name: str) -> None:
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_database(server: EmbeddedPostgres, name: str) -> str:
    """Database `name`, empty, with main's migrations applied; return its URL."""
    url = empty_database(server, name)
    with tempfile.TemporaryDirectory(prefix="bench-migrations-") as tmp:
        migrate(url, committed_sql("db/migrations", Path(tmp) / "migrations"),
                committed_sql("db/functions", Path(tmp) / "functions"))
    return url


def server_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"
