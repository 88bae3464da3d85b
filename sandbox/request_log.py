"""The log of API calls received, which tests read to count calls."""

from __future__ import annotations

import time
from typing import Any

from sandbox.state import Obj, Store


def record(store: Store, *, service: str, method: str, path: str, query: str,
           idempotency_key: str | None, status: int, mode: str | None = None,
           fault: str | None = None, replayed: bool = False, request_id: str | None = None,
           form: list[tuple[str, str]] | None = None) -> None:
    """`form` (Twilio only) keeps the posted parameters, so a contract test can check each
    request the CRM made against Twilio's API description."""
    store.request_log.append({
        "service": service, "method": method, "path": path, "query": query,
        "idempotency_key": idempotency_key, "status": status, "mode": mode,
        "fault": fault, "idempotent_replayed": replayed, "request_id": request_id,
        "time": time.time(), **({"form": form} if form is not None else {}),
    })


def query(store: Store, filters: dict[str, Any]) -> list[Obj]:
    """Filter by service, method, exact path, path_prefix, status and since (unix time)."""
    out = []
    for entry in store.request_log:
        if filters.get("service") and entry["service"] != filters["service"]:
            continue
        if filters.get("method") and entry["method"] != filters["method"].upper():
            continue
        if filters.get("path") and entry["path"] != filters["path"]:
            continue
        if filters.get("path_prefix") and not entry["path"].startswith(filters["path_prefix"]):
            continue
        if filters.get("status") and str(entry["status"]) != str(filters["status"]):
            continue
        if filters.get("since") and entry["time"] < float(filters["since"]):
            continue
        out.append(entry)
    return out
