"""The one psycopg connection pool of this process.

Each process (dashboard, sidecar, CLI) opens one pool lazily, sized by DB_POOL_MIN and
DB_POOL_MAX. Rows come back as dicts. Prepared statements are switched off for
Supabase's transaction-mode pooler, which cannot keep them across transactions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from db.config import database_config, resolved_database_url

Conn = psycopg.Connection[dict[str, Any]]

_pool: ConnectionPool[Conn] | None = None
_lock = threading.Lock()


def connect_kwargs() -> dict[str, Any]:
    cfg = database_config()
    kwargs: dict[str, Any] = {"row_factory": dict_row}
    if not cfg.prepared_statements:
        kwargs["prepare_threshold"] = None
    return kwargs


def get_pool() -> ConnectionPool[Conn]:
    global _pool
    with _lock:
        if _pool is None:
            cfg = database_config()
            _pool = ConnectionPool(
                resolved_database_url(),
                min_size=cfg.pool_min,
                max_size=cfg.pool_max,
                kwargs=connect_kwargs(),
                open=True,
                name="crm",
            )
        return _pool


def close_pool() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None


@contextmanager
def connection() -> Iterator[Conn]:
    """A pooled connection; the block is one transaction, committed on success."""
    with get_pool().connection() as conn:
        yield conn


def connect(url: str | None = None, autocommit: bool = False) -> Conn:
    """A dedicated connection outside the pool (migrations, CLI, tests)."""
    return psycopg.connect(url or resolved_database_url(), autocommit=autocommit, **connect_kwargs())
