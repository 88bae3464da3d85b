"""The worker runner (passes, errors recorded without dying, clean stop) and the
sidecar's JSON request log line."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from tests import stripe_payloads as sp
from tests.fixtures.sidecar import TEST_SECRET, Sidecar, seed_invoice
from webhook.workers import Worker, WorkerRunner, record_in_database, workers_enabled


def test_a_pass_is_recorded_in_worker_runs(db: Any) -> None:
    runner = WorkerRunner([], record=record_in_database)

    assert runner.run_once(Worker("demo", 60, lambda: {"queued": 3}))

    row = db.execute("SELECT * FROM crm.worker_runs").fetchone()
    assert row["worker"] == "demo" and row["last_error"] is None and row["last_ok_at"] is not None
    assert row["detail"]["queued"] == 3


def test_a_failing_pass_is_recorded_and_the_last_success_kept(db: Any) -> None:
    runner = WorkerRunner([], record=record_in_database)
    runner.run_once(Worker("flaky", 60, lambda: None))
    ok_at = db.execute("SELECT last_ok_at FROM crm.worker_runs").fetchone()["last_ok_at"]

    def boom() -> None:
        raise RuntimeError("resend is down")

    assert not runner.run_once(Worker("flaky", 60, boom))

    row = db.execute("SELECT * FROM crm.worker_runs").fetchone()
    assert row["last_error"] == "RuntimeError: resend is down" and row["last_ok_at"] == ok_at


def test_runner_keeps_going_after_errors_and_stops_cleanly() -> None:
    calls: list[int] = []
    third = threading.Event()
    records: list[tuple[str, bool]] = []

    def sometimes_fails() -> None:
        calls.append(1)
        if len(calls) >= 3:
            third.set()
        if len(calls) == 1:
            raise ValueError("first pass fails")

    runner = WorkerRunner([Worker("loop", 0.01, sometimes_fails)],
                          record=lambda name, ok, error, detail: records.append((name, ok)))
    runner.start()
    assert third.wait(10), "the worker stopped after its first error"
    runner.stop(timeout_s=5)
    count = len(calls)

    assert records[0] == ("loop", False) and ("loop", True) in records
    assert not any(t.name == "worker-loop" and t.is_alive() for t in threading.enumerate())
    assert len(calls) == count


def test_a_failed_pass_is_retried_before_the_interval(monkeypatch: Any) -> None:
    monkeypatch.setenv("WORKER_RETRY_AFTER_FAILURE_S", "0.05")
    calls: list[int] = []
    second = threading.Event()

    def fails_first() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("sandbox not up yet")
        second.set()

    # An hourly worker whose first pass fails runs again within the retry delay.
    runner = WorkerRunner([Worker("hourly", 3600, fails_first)], record=lambda *args: None)
    runner.start()
    try:
        assert second.wait(10), "a failed pass waited the whole interval"
    finally:
        runner.stop(timeout_s=5)
    assert len(calls) == 2


def test_workers_can_be_switched_off(monkeypatch: Any) -> None:
    monkeypatch.setenv("WEBHOOK_RUN_WORKERS", "0")
    assert not workers_enabled()
    monkeypatch.setenv("WEBHOOK_RUN_WORKERS", "1")
    assert workers_enabled()


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        from webhook.jsonlog import JsonFormatter

        self.lines.append(json.loads(JsonFormatter().format(record)))


def test_one_json_line_per_request_without_secrets_or_body(sidecar: Sidecar) -> None:
    capture = Capture()
    logger = logging.getLogger("webhook.stripe")
    logger.addHandler(capture)
    try:
        inv = seed_invoice(sidecar.db)
        evt = sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000,
                                                  hosted_invoice_url="https://pay.example/secret-link"))
        sidecar.post(evt)
        sidecar.post_raw(b"{}", {"Stripe-Signature": "t=1,v1=00"})
    finally:
        logger.removeHandler(capture)

    applied, refused = capture.lines
    assert {k: applied[k] for k in ("event_id", "type", "outcome", "status", "mode")} == {
        "event_id": evt["id"], "type": "invoice.paid", "outcome": "applied", "status": 200, "mode": "test"}
    assert isinstance(applied["duration_ms"], float)
    assert (refused["outcome"], refused["status"], refused["event_id"]) == ("rejected", 400, None)
    text = json.dumps(capture.lines)
    assert TEST_SECRET not in text and "secret-link" not in text and "v1=" not in text
