"""Fifty simultaneous deliveries of one event apply it once; two invoices of one job
paid at the same moment still complete the job."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

import httpx

from tests import stripe_payloads as sp
from tests.fixtures.sidecar import TEST_SECRET, Sidecar, seed_invoice, seed_job


def post_all_at_once(url: str, deliveries: list[tuple[bytes, str]]) -> list[int]:
    barrier = Barrier(len(deliveries))

    def post(delivery: tuple[bytes, str]) -> int:
        body, header = delivery
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
            barrier.wait()
            return client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": header}).status_code

    with ThreadPoolExecutor(max_workers=len(deliveries)) as pool:
        return list(pool.map(post, deliveries))


def test_fifty_concurrent_deliveries_apply_once(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    evt = sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000))
    body = sp.body_of(evt)
    header = sp.signature_header(body, TEST_SECRET)

    statuses = post_all_at_once(sidecar.url, [(body, header)] * 50)

    assert all(200 <= s < 300 for s in statuses), statuses
    assert sidecar.db.execute("SELECT from_status, to_status FROM crm.audit_log WHERE entity = 'invoice'"
                              ).fetchall() == [{"from_status": "open", "to_status": "paid"}]
    assert sidecar.db.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'job'").fetchone() == {"n": 1}
    assert sidecar.db.execute("SELECT outcome, duplicate_deliveries FROM crm.stripe_events").fetchall() == [
        {"outcome": "applied", "duplicate_deliveries": 49}]
    assert sidecar.db.execute("SELECT count(*) AS n, sum(amount_cents) AS s FROM crm.payments").fetchone() == {
        "n": 1, "s": 10_000}


def test_two_invoices_of_one_job_paid_concurrently_complete_the_job(sidecar: Sidecar) -> None:
    for _ in range(5):  # a race that is lost only sometimes needs a few rounds to show
        job = seed_job(sidecar.db)
        invoices = [seed_invoice(sidecar.db, job), seed_invoice(sidecar.db, job)]
        deliveries = []
        for inv in invoices:
            body = sp.body_of(sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid",
                                                                  amount_paid=10_000)))
            deliveries.append((body, sp.signature_header(body, TEST_SECRET)))

        assert post_all_at_once(sidecar.url, deliveries) == [200, 200]

        row = sidecar.db.execute("SELECT status FROM crm.jobs WHERE id = %s", (job["job_id"],)).fetchone()
        assert row == {"status": "completed"}


def test_paying_every_invoice_of_a_job_at_once_never_deadlocks(db: Any, database_url: str) -> None:
    # Each paid event writes its invoice row twice, so the second write re-checks the job
    # foreign key and holds KEY SHARE on the job; completion must not then ask for a lock
    # that conflicts with it (FOR UPDATE did, and two such transactions deadlocked).
    import psycopg
    from psycopg.rows import dict_row

    from db.stripe_events import apply_event

    jobs = []
    for _ in range(30):
        job = seed_job(db)
        jobs.append((job, [seed_invoice(db, job), seed_invoice(db, job)]))
    conns = [psycopg.connect(database_url, autocommit=True, row_factory=dict_row) for _ in range(2)]
    failures: list[str] = []
    try:
        for _job, invoices in jobs:
            barrier = threading.Barrier(2)

            def pay(conn: Any, inv: dict[str, Any], barrier: threading.Barrier = barrier) -> None:
                evt = sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000))
                barrier.wait()
                try:
                    apply_event(conn, evt, "test")
                except psycopg.Error as exc:
                    failures.append(type(exc).__name__)

            threads = [threading.Thread(target=pay, args=(c, inv)) for c, inv in zip(conns, invoices, strict=True)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        for c in conns:
            c.close()
    assert failures == []
    completed = db.execute("SELECT count(*) AS n FROM crm.jobs WHERE status = 'completed'").fetchone()
    assert completed == {"n": 30}
