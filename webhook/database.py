"""Every webhook route's use of Postgres, and the one mapping of what goes wrong there.

Connection failures become DatabaseUnavailable (the route answers 503 so the provider
retries). A connection that died with the server (restart, failover) surfaces as
OperationalError: the pool is checked and the call retried once, on every route, which is
safe because each provider's ledger (Stripe's event id, Svix's message id) makes the apply
idempotent (a retry after a lost commit answers 'duplicate'). Not after a pool timeout: that
already waited its full time.

Postgres refusing the event's data (a value out of range, text it cannot store: SQLSTATE
class 22) becomes EventDataRejected: retrying would never succeed, so the route answers
400. Stored secrets that CRM_SECRET_KEY cannot decrypt become SecretsUndecryptable (503:
the provider retries once the key is fixed). Neither carries Postgres's message, which can
quote the body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from crm.config.secrets_store import SecretKeyError
from db.pool import get_pool
from webhook.signing_secrets import SecretsCache, db_timeout_s

T = TypeVar("T")
E = TypeVar("E")
Conn = psycopg.Connection[dict[str, Any]]

log = logging.getLogger("webhook.database")


class DatabaseUnavailable(Exception):
    """Postgres cannot be reached right now."""


class EventDataRejected(Exception):
    """Postgres refused a value in the event; `reason` names the SQLSTATE, never the data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SecretsUndecryptable(Exception):
    """The signing secrets are stored but CRM_SECRET_KEY cannot decrypt them."""


def _mapped(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except PoolTimeout as exc:
        raise DatabaseUnavailable("no database connection available") from exc
    except psycopg.OperationalError as exc:
        try:
            get_pool().check()  # drop pooled connections that died with the server
        except Exception:  # noqa: BLE001 - best effort; the answer is 503 either way
            log.warning("pool check failed")
        raise DatabaseUnavailable(type(exc).__name__) from exc
    except psycopg.DataError as exc:
        raise EventDataRejected(f"the database refused a value in the event ({type(exc).__name__})") from None
    except SecretKeyError as exc:
        raise SecretsUndecryptable(str(exc)) from None


def with_retry(fn: Callable[[], T]) -> T:
    """`fn` under the one mapping, once more after a broken connection (it fails fast; a fresh
    connection may work)."""
    try:
        return _mapped(fn)
    except DatabaseUnavailable as exc:
        if not isinstance(exc.__cause__, psycopg.OperationalError):
            raise
        return _mapped(fn)


def load_secrets(cache: SecretsCache[T], max_age_s: float | None = None) -> T:
    return with_retry(lambda: cache.get(max_age_s))


def _apply_once(apply: Callable[[Conn, E, dict[str, Any]], T], event: E, fields: dict[str, Any]) -> T:
    with get_pool().connection(timeout=db_timeout_s()) as conn:
        # Autocommit: the provider's single SELECT is the transaction, so the event costs one
        # round trip (no BEGIN, no COMMIT). Restored before the pool hands the connection on.
        conn.autocommit = True
        try:
            return apply(conn, event, fields)
        finally:
            if conn.pgconn.transaction_status == TransactionStatus.IDLE:
                conn.autocommit = False


def apply_in_database(apply: Callable[[Conn, E, dict[str, Any]], T], event: E, fields: dict[str, Any]) -> T:
    """The provider's apply call on a pooled autocommit connection, mapped and retried."""
    return with_retry(lambda: _apply_once(apply, event, fields))
