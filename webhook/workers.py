"""Background workers the sidecar runs: a list of periodic passes and their runner.

webhook/app.py lists the sidecar's workers (`Worker(name, interval_s, fn)`); `fn` takes no
arguments, does one pass and may return a dict of counts (stored as the run's detail). The app's
lifespan runs each worker in its own daemon thread: a pass every interval, errors logged
and recorded in crm.worker_runs without stopping the loop. With several uvicorn workers
every process runs every worker; workers must claim rows with SKIP LOCKED.
WEBHOOK_RUN_WORKERS=0 turns them off (tests of the HTTP path do).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("webhook.workers")


@dataclass(frozen=True)
class Worker:
    name: str
    interval_s: float
    fn: Callable[[], Any]


def retry_after_failure_s() -> float:
    return float(os.environ.get("WORKER_RETRY_AFTER_FAILURE_S", "60"))


def workers_enabled() -> bool:
    return os.environ.get("WEBHOOK_RUN_WORKERS", "1").strip().lower() not in ("0", "false", "no", "off")


def record_in_database(name: str, ok: bool, error: str | None, detail: dict[str, Any]) -> None:
    from db.pool import worker_connection
    from db.worker_runs import record_run

    with worker_connection() as conn:
        record_run(conn, name, ok, error, detail)


class WorkerRunner:
    """Runs workers in daemon threads until `stop`."""

    def __init__(self, workers: Sequence[Worker],
                 record: Callable[[str, bool, str | None, dict[str, Any]], None] = record_in_database) -> None:
        self.workers = list(workers)
        self._record = record
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for worker in self.workers:
            thread = threading.Thread(target=self._loop, args=(worker,), name=f"worker-{worker.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def _loop(self, worker: Worker) -> None:
        while not self._stop.is_set():
            ok = self.run_once(worker)
            # A failed pass (say the database or Stripe was briefly unreachable at start-up)
            # is retried soon rather than a whole interval later.
            self._stop.wait(worker.interval_s if ok else min(worker.interval_s, retry_after_failure_s()))

    def run_once(self, worker: Worker) -> bool:
        """One pass of one worker; True when it succeeded. Never raises."""
        started = time.perf_counter()
        ok, error, detail = True, None, {}
        try:
            result = worker.fn()
            if isinstance(result, dict):
                detail = result
        except Exception as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"[:500]
            log.exception("worker pass failed", extra={"fields": {"worker": worker.name}})
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        # One line per pass, so each process's share of the work is visible with several sidecars.
        log.info("worker pass", extra={"fields": {"worker": worker.name, "ok": ok, **detail,
                                                  "duration_ms": duration_ms}})
        try:
            self._record(worker.name, ok, error, {**detail, "duration_ms": duration_ms})
        except Exception:
            log.exception("could not record worker run", extra={"fields": {"worker": worker.name}})
        return ok
