"""Named query for crm.worker_runs: each background worker's last run and outcome."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def record_run(conn: Conn, worker: str, ok: bool, error: str | None, detail: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO crm.worker_runs (worker, last_run_at, last_ok_at, last_error, detail) "
        "VALUES (%(w)s, now(), CASE WHEN %(ok)s THEN now() END, %(err)s, %(detail)s) "
        "ON CONFLICT (worker) DO UPDATE SET last_run_at = EXCLUDED.last_run_at, "
        "last_ok_at = coalesce(EXCLUDED.last_ok_at, crm.worker_runs.last_ok_at), "
        "last_error = EXCLUDED.last_error, detail = EXCLUDED.detail",
        {"w": worker, "ok": ok, "err": error, "detail": Jsonb(detail)},
    )
