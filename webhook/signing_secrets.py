"""Webhook signing secrets, cached in the process for a short lifetime (every route's cache).

The cache keeps the request path at one database round trip (the apply call); its lifetime,
WEBHOOK_SECRETS_TTL_S (30 s), is the same for every route and bounds how long a changed
secret takes to apply (a failed verification also reloads secrets older than a few
seconds: webhook/skeleton.py).

Stripe's secrets cover both modes and come from crm.settings (`load_settings`: database,
overridden by the environment: STRIPE_TEST_WEBHOOK_SECRET, STRIPE_LIVE_WEBHOOK_SECRET, or
STRIPE_WEBHOOK_SECRET for the current STRIPE_MODE; comma-separated during a rotation).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from db.config import env_int

T = TypeVar("T")


@dataclass(frozen=True)
class SigningSecrets:
    test: tuple[str, ...] = ()
    live: tuple[str, ...] = ()

    def by_mode(self) -> Iterator[tuple[str, str]]:
        for secret in self.test:
            yield "test", secret
        for secret in self.live:
            yield "live", secret

    def __bool__(self) -> bool:
        return bool(self.test or self.live)


def load_from_database(timeout_s: float) -> SigningSecrets:
    from crm.config.settings import load_settings
    from db.pool import get_pool

    with get_pool().connection(timeout=timeout_s) as conn:
        settings = load_settings(conn)
    return SigningSecrets(tuple(settings.stripe_webhook_secrets("test")),
                          tuple(settings.stripe_webhook_secrets("live")))


class SecretsCache(Generic[T]):
    """Thread-safe TTL cache around a loader; `get` raises whatever the loader raises."""

    def __init__(self, loader: Callable[[], T], ttl_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._loader = loader
        self._ttl_s = secrets_ttl_s() if ttl_s is None else ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._loaded_at = 0.0

    def get(self, max_age_s: float | None = None) -> T:
        limit = self._ttl_s if max_age_s is None else min(max_age_s, self._ttl_s)
        with self._lock:
            if self._value is None or self._clock() - self._loaded_at >= limit:
                self._value = self._loader()
                self._loaded_at = self._clock()
            return self._value

    def fresh(self) -> T | None:
        """The cached secrets if they are within the TTL, else None; never loads and never waits
        (the request path calls it on the event loop, and a load holds the lock for a round trip)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._value is None or self._clock() - self._loaded_at >= self._ttl_s:
                return None
            return self._value
        finally:
            self._lock.release()

    def clear(self) -> None:
        with self._lock:
            self._value = None


def db_timeout_s() -> float:
    return float(env_int("WEBHOOK_DB_TIMEOUT_S", 5))


def secrets_ttl_s() -> float:
    return float(env_int("WEBHOOK_SECRETS_TTL_S", 30))


SECRETS: SecretsCache[SigningSecrets] = SecretsCache(lambda: load_from_database(db_timeout_s()))
