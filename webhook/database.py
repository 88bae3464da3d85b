"""The request path's use of Postgres: signing secrets (cached) and applying the event.

Connection failures become DatabaseUnavailable (the route answers 503 so Stripe retries).
A connection that died with the server (restart, failover) surfaces as OperationalError:
the pool is checked and the apply retried once, which is safe because the ledger makes
the call idempotent (a retry after a lost commit answers 'duplicate').

Postgres refusing the event's data becomes EventDataRejected: retrying would never
succeed, so the route answers 400. That is now only a body Postgres cannot store at all
(jsonb refuses it as a parameter, so the ledger cannot hold it either): what the database
refuses in a storable event's content (class 22 and 23) is recorded 'rejected' inside
crm.apply_stripe_event and answered 200 (invariant 11). A class 23 error still reaching
here (an event id the ledger's CHECK refuses) is mapped the same way. Stored secrets that
CRM_SECRET_KEY cannot decrypt become SecretsUndecryptable (503: Stripe retries once the key
is fixed). Neither carries Postgres's message, which can
quote the body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from crm.secrets_store import SecretKeyError
from db.pool import get_pool
from db.stripe_events import ApplyResult, apply_event
from webhook.signing_secrets import SECRETS, SigningSecrets, db_timeout_s

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """Postgres cannot be reached right now."""


class EventDataRejected(Exception):
    """Postgres refused a value in the event; `reason` names the SQLSTATE, never the data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SecretsUndecryptable(Exception):
    """The signing secrets are stored but CRM_SECRET_KEY cannot decrypt them."""


def _unavailable_as_error(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except PoolTimeout as exc:
        raise DatabaseUnavailable("no database connection available") from exc
    except psycopg.OperationalError as exc:
        get_pool().check()  # drop pooled connections that died with the server
        raise DatabaseUnavailable(type(exc).__name__) from exc
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        raise EventDataRejected(f"the database refused a value in the event ({type(exc).__name__})") from None
    except SecretKeyError as exc:
        raise SecretsUndecryptable(str(exc)) from None


def signing_secrets(max_age_s: float | None = None) -> SigningSecrets:
    return _unavailable_as_error(lambda: SECRETS.get(max_age_s))


def cached_signing_secrets() -> SigningSecrets | None:
    """The secrets without a database call, when the cache holds fresh ones (no thread hop needed)."""
    return SECRETS.fresh()


def _apply_once(event: dict[str, Any], mode: str) -> ApplyResult:
    with get_pool().connection(timeout=db_timeout_s()) as conn:
        # Autocommit: the single SELECT is the transaction, so the event costs one round
        # trip (no BEGIN, no COMMIT). Restored before the pool hands the connection on.
        conn.autocommit = True
        try:
            return apply_event(conn, event, mode)
        finally:
            if conn.pgconn.transaction_status == TransactionStatus.IDLE:
                conn.autocommit = False


def apply_verified_event(event: dict[str, Any], mode: str) -> ApplyResult:
    try:
        return _unavailable_as_error(lambda: _apply_once(event, mode))
    except DatabaseUnavailable as exc:
        # One retry after a broken connection (it fails fast; a fresh one may work).
        # Not after a pool timeout: that already waited its full time.
        if not isinstance(exc.__cause__, psycopg.OperationalError):
            raise
        return _unavailable_as_error(lambda: _apply_once(event, mode))
