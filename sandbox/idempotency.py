"""Idempotency-Key bookkeeping shared by both emulators.

Both vendors replay the first response for a key for 24 hours and refuse the same
key with a different payload; only the shape of the refusal differs, so the
caller decides how to render a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sandbox.state import Obj, Store

TTL_S = 24 * 3600


class KeyReuseMismatch(Exception):
    """The key was already used with different request parameters."""


def fingerprint(method: str, path: str, params: Any) -> str:
    blob = json.dumps([method.upper(), path, params], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _slot(service: str, scope: str, key: str) -> str:
    return f"{service}\x1f{scope}\x1f{key}"


def lookup(store: Store, service: str, scope: str, key: str, fp: str) -> Obj | None:
    """Return the stored response for this key, None if unseen, or raise on mismatch."""
    record = store.idempotency.get(_slot(service, scope, key))
    if record is None:
        return None
    if time.time() - record["at"] > TTL_S:
        del store.idempotency[_slot(service, scope, key)]
        return None
    if record["fingerprint"] != fp:
        raise KeyReuseMismatch(key)
    return record


def remember(store: Store, service: str, scope: str, key: str, fp: str,
             status: int, body: Any, request_id: str | None = None) -> None:
    store.idempotency[_slot(service, scope, key)] = {
        "fingerprint": fp,
        "status": status,
        "body": body,
        "at": time.time(),
        "request_id": request_id,
    }
