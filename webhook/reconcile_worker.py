"""The sidecar's reconcile worker: one `crm.reconcile.run_reconcile` pass per period.

Hourly by default (RECONCILE_INTERVAL_S). The runner makes the first pass when the
sidecar starts, which is when catching up matters most: events sent while it was down.
webhook/workers.py wraps RECONCILE_WORKER (name, interval in seconds, pass) into a Worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from db.config import env_int

ACTOR = "worker"


def reconcile_pass() -> dict[str, Any]:
    """One run; raises when it failed, so the runner records the error in crm.worker_runs."""
    from crm.stripe.reconcile import run_reconcile

    report = run_reconcile(ACTOR)
    if report.skipped:
        return {"skipped": "another reconcile is running"}
    if not report.ok:
        raise RuntimeError("; ".join(report.errors)[:400])
    return {"run_id": report.run_id, **report.counts()}


def interval_s() -> float:
    return float(env_int("RECONCILE_INTERVAL_S", 3600))


RECONCILE_WORKER: tuple[str, float, Callable[[], Any]] = ("reconcile", interval_s(), reconcile_pass)
