"""The psycopg connection pools of this process.

Each process (dashboard, sidecar, CLI) opens its pool lazily, sized by DB_POOL_MIN and
DB_POOL_MAX; the sidecar's background workers have a pool of their own
(DB_WORKER_POOL_MAX), so a busy dispatcher never takes a connection a webhook needs. A
caller waits at most DB_POOL_TIMEOUT_S for a connection and then gets PoolTimeout (the
sidecar answers 503, the dashboard says the database is busy): nothing hangs.
db.config.connection_budget adds them up. Rows come back as dicts. Prepared statements are
switched off for Supabase's transaction-mode pooler, which hands each transaction to
whichever server connection is free, where a statement prepared on another is missing.
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

_pools: dict[str, ConnectionPool[Conn]] = {}
_lock = threading.Lock()


def connect_kwargs() -> dict[str, Any]:
    cfg = database_config()
    kwargs: dict[str, Any] = {"row_factory": dict_row}
    if not cfg.prepared_statements:
        kwargs["prepare_threshold"] = None
    return kwargs


def _named_pool(name: str) -> ConnectionPool[Conn]:
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            cfg = database_config()
            workers = name == "crm-workers"
            max_size = cfg.worker_pool_max if workers else cfg.pool_max
            pool = ConnectionPool(
                resolved_database_url(),
                min_size=min(cfg.pool_min, max_size),
                max_size=max_size,
                kwargs=connect_kwargs(),
                timeout=cfg.pool_timeout_s,
                # Workers check a connection before using it (one empty round trip): nothing else
                # drops their pool's connections that died with a restarted server. The request
                # path skips it and checks the pool after an OperationalError (webhook/database.py).
                check=ConnectionPool.check_connection if workers else None,
                open=True,
                name=name,
            )
            _pools[name] = pool
        return pool


def get_pool() -> ConnectionPool[Conn]:
    """The request pool (sidecar) or page pool (dashboard, CLI)."""
    return _named_pool("crm")


def worker_pool() -> ConnectionPool[Conn]:
    """The sidecar's background workers' pool."""
    return _named_pool("crm-workers")


def close_pool() -> None:
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


@contextmanager
def connection() -> Iterator[Conn]:
    """A pooled connection; the block is one transaction, committed on success."""
    with get_pool().connection() as conn:
        yield conn


@contextmanager
def worker_connection() -> Iterator[Conn]:
    """A connection from the workers' pool; the block is one transaction, committed on success."""
    with worker_pool().connection() as conn:
        yield conn


def connect(url: str | None = None, autocommit: bool = False) -> Conn:
    """A dedicated connection outside the pool (migrations, CLI, tests)."""
    return psycopg.connect(url or resolved_database_url(), autocommit=autocommit, **connect_kwargs())
