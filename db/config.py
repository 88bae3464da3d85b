"""Process configuration from environment variables, with the defaults the README lists.

Owns the two environment readers every layer uses (`env_int`, `env_str`) and the
database's deployment facts: where it is (DATABASE_URL, or the embedded server under
./.data), how big the pool is, whether prepared statements are on. It sits in the data
layer because the pool needs it and the data layer imports nothing of ours above it.
Settings the owner edits in the dashboard live in the database (crm/config/settings.py), and
an environment variable of the same name always wins over them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

N = TypeVar("N", int, float)


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "a whole number")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def _env_number(name: str, default: N, parse: Callable[[str], N], kind: str) -> N:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be {kind}, got {raw!r}") from exc


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip() or default


@dataclass(frozen=True)
class DatabaseConfig:
    url: str | None  # None: the embedded server under ./.data
    pool_min: int
    pool_max: int  # the request pool (sidecar) or the page pool (dashboard, CLI)
    prepared_statements: bool
    pool_timeout_s: float = 10.0  # wait for a pooled connection, then fail (503 / a message), never hang
    worker_pool_max: int = 4  # one per sidecar worker thread: reminders queue, dispatch, cancel, reconcile


# A reconcile run holds two dedicated connections (db.pool.connect) while it runs: one whose
# transaction holds the run lock, one for the work. The sidecar's worker runs it; so does the
# dashboard's Activity page button.
RECONCILE_CONNECTIONS = 2


def connection_budget(process: str, cfg: DatabaseConfig | None = None) -> int:
    """The most connections one process of this kind opens (README: connection budget)."""
    cfg = cfg or database_config()
    if process == "sidecar":
        return cfg.pool_max + cfg.worker_pool_max + RECONCILE_CONNECTIONS
    if process == "dashboard":
        return cfg.pool_max + RECONCILE_CONNECTIONS
    raise ValueError(f"unknown process kind: {process}")


def database_config() -> DatabaseConfig:
    url = env_str("DATABASE_URL") or None
    # Supabase's pooler in transaction mode (port 6543) cannot keep prepared statements.
    default_prepare = not (url and (":6543" in url or "pooler.supabase.com" in url))
    prepare = env_str("DB_PREPARED_STATEMENTS", "on" if default_prepare else "off").lower()
    return DatabaseConfig(
        url=url,
        pool_min=env_int("DB_POOL_MIN", 1),
        pool_max=env_int("DB_POOL_MAX", 10),
        prepared_statements=prepare not in ("off", "false", "0", "no"),
        pool_timeout_s=float(env_str("DB_POOL_TIMEOUT_S", "10")),
        worker_pool_max=env_int("DB_WORKER_POOL_MAX", 4),
    )


@lru_cache(maxsize=1)
def resolved_database_url() -> str:
    """DATABASE_URL, or start (if needed) the embedded server and return its URL."""
    cfg = database_config()
    if cfg.url:
        return cfg.url
    from db.embedded import local_server

    url = local_server().start()
    # Child processes (sidecar, dashboard) reuse the same server without re-resolving,
    # and still know it is the local embedded one (see is_embedded_database).
    os.environ["DATABASE_URL"] = url
    os.environ["CRM_EMBEDDED_DATABASE"] = "1"
    return url


def is_embedded_database() -> bool:
    """True for the local server under ./.data (not a deployment's DATABASE_URL)."""
    return not env_str("DATABASE_URL") or env_str("CRM_EMBEDDED_DATABASE") == "1"
