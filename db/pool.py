"""The psycopg connection pools of this process.

Each process (dashboard, sidecar, CLI) opens its pool lazily, sized by DB_POOL_MIN and
DB_POOL_MAX; the sidecar's background workers have a pool of their own
(DB_WORKER_POOL_MAX), so a busy dispatcher never takes a connection a webhook needs. A
caller waits at most DB_POOL_TIMEOUT_S for a connection and then gets PoolTimeout (the
sidecar answers 503, the dashboard says the database is busy): nothing hangs. Every pool
checks a connection before handing it out (`check_before_use`), so connections that died
with a restarted server are replaced, not handed to the first requests after the restart.
db.config.connection_budget adds them up. Rows come back as dicts. Prepared statements are
switched off for Supabase's transaction-mode pooler, which hands each transaction to
whichever server connection is free, where a statement prepared on another is missing.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
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


def check_before_use(conn: Conn) -> None:
    """psycopg_pool's `check`, run on every connection before the pool hands it out: a connection
    that died with a restarted or failed-over server is dropped and replaced, so the first
    request after a restart succeeds instead of failing on it.

    Cheap where it can be: an idle connection's socket has nothing to read unless the server
    said something (the FATAL it sends when it shuts down, then end of file), so a poll with a
    zero timeout costs no round trip on the request path (the Stripe route is benchmarked).
    When there is something to read, or the connection is not in a good state, psycopg_pool's
    own check runs (an empty query) and raises if the connection is dead. A server that
    vanished without a word is caught by the sidecar's retry (webhook/database.py)."""
    if conn.closed or conn.pgconn.status != pq.ConnStatus.OK:
        ConnectionPool.check_connection(conn)
        return
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


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
                # Every pool checks a connection before handing it out (check_before_use): the
                # dashboard's, the sidecar's request pool and its workers'.
                check=check_before_use,
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
