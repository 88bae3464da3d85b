"""Several sidecars (real `python -m webhook` processes, each with its own pools) against one
database through PgBouncer in transaction mode as crm_app (tests/fixtures/pooler.py): Stripe
events applied once whichever sidecar gets them, the reconcile run lock and the dispatcher's
leases holding across processes, 503 (never a hang) when a sidecar's pool is exhausted, Send
via Stripe with this process's pool through the pooler, and a soak over two sidecars."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from crm.config.settings import save_setting
from db.embedded import free_port
from ops.soak import RoundRobinProxy, run_soak
from sandbox.testing import RunningSandbox
from tests import stripe_payloads as sp
from tests.fixtures.pooler import PooledDatabase, SidecarProcess, StartSidecars
from tests.fixtures.sandbox import TEST_STRIPE_KEY
from tests.fixtures.sidecar import TEST_SECRET, seed_invoice, seed_job
from tests.reconcile_helpers import open_invoice, wait_until
from tests.test_reminders_support import email_posts, mailbox, test_now

pytestmark = pytest.mark.pooled
Conn = psycopg.Connection[dict[str, Any]]
QUIET_WORKERS = {"RECONCILE_INTERVAL_S": "3600", "REMINDER_DISPATCH_INTERVAL_S": "3600",
                 "REMINDER_CANCEL_INTERVAL_S": "3600"}


def post(sidecar: SidecarProcess, evt: dict[str, Any], timeout: float = 30) -> int:
    body = sp.body_of(evt)
    with httpx.Client(base_url=sidecar.url, timeout=timeout, trust_env=False) as client:
        return client.post("/webhooks/stripe", content=body,
                           headers={"Content-Type": "application/json",
                                    "Stripe-Signature": sp.signature_header(body, TEST_SECRET)}).status_code


def passes(sidecar: SidecarProcess, worker: str) -> list[dict[str, Any]]:
    """The sidecar's own log of its worker passes (one JSON line each)."""
    out = []
    for line in sidecar.log().splitlines():
        if line.startswith("{") and '"worker pass"' in line:
            entry = json.loads(line)
            if entry.get("worker") == worker:
                out.append(entry)
    return out


def no_deadlock(*sidecars: SidecarProcess) -> None:
    for sc in sidecars:
        assert "deadlock" not in sc.log().lower(), sc.log()


def test_pooled_two_sidecars_apply_each_stripe_event_once(pooled_db: Conn, sidecar_processes: StartSidecars) -> None:
    save_setting(pooled_db, "stripe.test.webhook_secrets", TEST_SECRET)
    a, b = sidecar_processes(2)
    jobs = [seed_job(pooled_db) for _ in range(10)]
    invoices = [seed_invoice(pooled_db, job) for job in jobs for _ in range(2)]  # two per job: job completion races
    events = [sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000))
              for inv in invoices]
    deliveries = [(sc, evt) for evt in events for sc in (a, b, a, b)]  # each event twice to each sidecar

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda d: post(*d), deliveries))

    assert statuses == [200] * len(deliveries)
    ledger = pooled_db.execute("SELECT outcome, duplicate_deliveries, count(*) AS n FROM crm.stripe_events "
                               "GROUP BY 1, 2").fetchall()
    assert ledger == [{"outcome": "applied", "duplicate_deliveries": 3, "n": len(events)}]
    paid = pooled_db.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'invoice' AND to_status = 'paid'"
                             ).fetchone()
    assert paid == {"n": len(invoices)}
    assert pooled_db.execute("SELECT count(*) AS n FROM crm.jobs WHERE status = 'completed'").fetchone() == {"n": 10}
    no_deadlock(a, b)


def test_pooled_sidecar_answers_503_when_its_pool_is_exhausted_and_never_hangs(
        pooled_db: Conn, pooled_database: PooledDatabase, sidecar_processes: StartSidecars) -> None:
    """A sidecar with one pooled connection: while a delivery holds it (blocked on a row lock
    the test takes), the next delivery waits WEBHOOK_DB_TIMEOUT_S and answers 503, so Stripe
    retries; once the lock goes, the held delivery commits and the retry applies."""
    save_setting(pooled_db, "stripe.test.webhook_secrets", TEST_SECRET)
    (sc,) = sidecar_processes(1, DB_POOL_MIN="1", DB_POOL_MAX="1", WEBHOOK_DB_TIMEOUT_S="1")
    first, second = seed_invoice(pooled_db), seed_invoice(pooled_db)
    evt1 = sp.event("invoice.paid", sp.invoice(first["stripe_invoice_id"], status="paid", amount_paid=10_000))
    evt2 = sp.event("invoice.paid", sp.invoice(second["stripe_invoice_id"], status="paid", amount_paid=10_000))
    assert post(sc, sp.event("invoice.sent", sp.invoice(first["stripe_invoice_id"]))) == 200  # loads the secrets

    with psycopg.connect(pooled_database.direct_url) as blocker:
        blocker.execute("SELECT 1 FROM crm.invoices WHERE id = %s FOR UPDATE", (first["invoice_id"],))
        held: dict[str, int] = {}
        thread = threading.Thread(target=lambda: held.setdefault("status", post(sc, evt1, timeout=60)))
        thread.start()
        with psycopg.connect(pooled_database.admin_url) as admin:
            wait_until(lambda: bool(admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND usename = 'crm_app'").fetchone()),
                what="the first delivery waiting on the row lock")
        started = time.monotonic()
        status = post(sc, evt2)
        waited = time.monotonic() - started
        assert status == 503
        assert 0.9 <= waited < 5, waited
        blocker.rollback()
    thread.join(30)
    assert held == {"status": 200}
    assert post(sc, evt2) == 200
    rows = pooled_db.execute("SELECT status FROM crm.invoices WHERE id = ANY(%s) ORDER BY id",
                             ([first["invoice_id"], second["invoice_id"]],)).fetchall()
    assert rows == [{"status": "paid"}, {"status": "paid"}]


def test_pooled_reconcile_run_lock_holds_across_two_sidecars(
        pooled_db: Conn, pooled_sandbox: RunningSandbox, pooled_database: PooledDatabase,
        sidecar_processes: StartSidecars) -> None:
    """Both sidecars start a reconcile at start-up; the run lock lets one run and the other
    skip, and the lock is gone when the run ends (no advisory lock left on any server
    connection the pooler keeps), so the next run is not refused.

    By hand, once: with the run lock taken session-scoped, i.e. in db/reconcile_runs.py
    `pg_try_advisory_lock` instead of `pg_try_advisory_xact_lock`, this test fails at the
    `pg_locks` assertion: the pooler hands the server connection on with the lock still
    held, and the next run that lands on another server connection is refused for good.
    (Direct connections hide it: closing the connection releases a session lock.)
    """
    invoices = [open_invoice(pooled_db, pooled_sandbox) for _ in range(3)]
    # The run that takes the lock is held at Stripe's events list until the other sidecar has
    # skipped: the overlap is a condition, not a race between two start-ups and a clock.
    pooled_sandbox.control.add_fault(service="stripe", path="/v1/events", hold=True)

    a, b = sidecar_processes(2, WEBHOOK_RUN_WORKERS="1", **{**QUIET_WORKERS, "RECONCILE_INTERVAL_S": "3600"})

    wait_until(lambda: any("skipped" in p for sc in (a, b) for p in passes(sc, "reconcile")), timeout=120,
               what="one sidecar's start-up reconcile skipped while the other's run is held")
    pooled_sandbox.control.clear_faults()  # releases the held run
    wait_until(lambda: len(passes(a, "reconcile")) + len(passes(b, "reconcile")) == 2, timeout=120,
               what="both sidecars' start-up reconcile passes")
    outcomes = sorted("skipped" if "skipped" in p else "ran" for sc in (a, b) for p in passes(sc, "reconcile"))
    assert outcomes == ["ran", "skipped"], (a.log(), b.log())
    runs = pooled_db.execute("SELECT status, invoices_checked FROM crm.reconcile_runs").fetchall()
    assert runs == [{"status": "succeeded", "invoices_checked": len(invoices)}]
    with psycopg.connect(pooled_database.admin_url) as admin:
        left = admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
    assert left == (0,), "an advisory lock outlived its run on a pooled server connection"

    from crm.stripe.reconcile import run_reconcile

    for _ in range(3):  # this process through the pooler too: never refused once the run is over
        assert not run_reconcile("test").skipped
    no_deadlock(a, b)


def test_pooled_dispatcher_leases_hold_across_two_sidecars(
        pooled_db: Conn, pooled_sandbox: RunningSandbox, sidecar_processes: StartSidecars) -> None:
    """Two sidecars' dispatchers claim queued reminders (FOR UPDATE SKIP LOCKED, then a claim
    token and lease per row) through the pooler: each reminder goes to Resend exactly once."""
    n = 200
    a, b = sidecar_processes(2, WEBHOOK_RUN_WORKERS="1",
                             **{**QUIET_WORKERS, "REMINDER_DISPATCH_INTERVAL_S": "1"})
    pooled_sandbox.control.add_fault(service="resend", latency_ms=20)  # both get a share
    now = test_now()
    pooled_db.execute("INSERT INTO crm.customers (name, email) VALUES ('Bulk Co', 'ap@bulk.example')")
    pooled_db.execute("INSERT INTO crm.jobs (customer_id, title) VALUES (1, 'Maintenance plan')")
    pooled_db.execute(
        "INSERT INTO crm.invoices (job_id, customer_id, status, amount_due_cents, due_date, mode, stripe_invoice_id, "
        "stripe_invoice_number, hosted_invoice_url) SELECT 1, 1, 'open', 10000 + g, %s, 'test', 'in_bulk' || g, "
        "'B-' || g, 'https://pay.example.test/' || g FROM generate_series(1, %s) g",
        ((now - timedelta(days=7)).date(), n))
    pooled_db.execute("INSERT INTO crm.reminders (invoice_id, sequence, offset_days, send_at) "
                      "SELECT id, 1, 7, %s FROM crm.invoices", (now + timedelta(hours=2),))
    assert pooled_db.execute("SELECT crm.queue_due_reminders(%s) AS n", (now,)).fetchone() == {"n": n}

    wait_until(lambda: pooled_db.execute("SELECT count(*) AS n FROM crm.reminders WHERE status = 'scheduled'"
                                         ).fetchone() == {"n": n}, timeout=90, what="every reminder handed off")

    posts = email_posts(pooled_sandbox)
    assert len(posts) == n, "one Resend request per reminder, none twice"
    assert len({p["idempotency_key"] for p in posts}) == n
    assert len(mailbox(pooled_sandbox)) == n
    shares = [sum(int(p.get("scheduled", 0)) for p in passes(sc, "reminders-dispatch")) for sc in (a, b)]
    assert sum(shares) == n and all(shares), shares
    no_deadlock(a, b)


def test_pooled_send_via_stripe_then_paid_through_a_pooled_sidecar(
        pooled_db: Conn, pooled_sandbox: RunningSandbox, sidecar_processes: StartSidecars) -> None:
    """The dashboard's Send (this process's pool through the pooler) and the webhook (a
    sidecar process through the pooler): one customer, invoice and email; then Paid."""
    from crm.send.workflow import send_invoice
    from tests.fixtures.workflow import STAFF, insert_draft_invoice
    from tests.reconcile_helpers import wire_sidecar
    from tests.send_helpers import assert_exactly_one_of_each

    (sc,) = sidecar_processes(1)
    wire_sidecar(pooled_db, sc.url)
    invoice_id = insert_draft_invoice(pooled_db)

    result = send_invoice(invoice_id, STAFF)

    assert result.ok, result.message
    assert_exactly_one_of_each(pooled_sandbox)
    stripe_id = pooled_db.execute("SELECT stripe_invoice_id FROM crm.invoices WHERE id = %s",
                                  (invoice_id,)).fetchone()["stripe_invoice_id"]  # type: ignore[index]
    pooled_sandbox.control.pay_invoice(stripe_id)
    wait_until(lambda: pooled_db.execute("SELECT status FROM crm.invoices WHERE id = %s", (invoice_id,)
                                         ).fetchone() == {"status": "paid"}, what="the invoice paid")
    reminders = pooled_db.execute("SELECT DISTINCT status FROM crm.reminders WHERE invoice_id = %s",
                                  (invoice_id,)).fetchall()
    assert reminders == [{"status": "cancelled"}]


def test_pooled_soak_over_two_sidecars_loses_nothing_and_sends_no_reminder_twice(
        pooled_db: Conn, pooled_sandbox: RunningSandbox, sidecar_processes: StartSidecars) -> None:
    """Paid invoices at a steady rate, 10% of deliveries duplicated and 10% delayed, spread
    round-robin over two sidecars through the pooler, whose dispatchers hand off the
    reminders of the invoices left open while payments cancel the others. Full run for
    docs/PERFORMANCE.md: SOAK_TEST_SECONDS=60 pytest -k pooled_soak -s."""
    from tests.reconcile_helpers import wire_sidecar

    a, b = sidecar_processes(2, WEBHOOK_RUN_WORKERS="1",
                             **{**QUIET_WORKERS, "REMINDER_DISPATCH_INTERVAL_S": "1",
                                "REMINDER_CANCEL_INTERVAL_S": "1"})
    proxy = RoundRobinProxy([a.url, b.url])
    port = free_port()
    server = proxy.serve(port)
    try:
        wire_sidecar(pooled_db, f"http://127.0.0.1:{port}")
        seconds = float(os.environ.get("SOAK_TEST_SECONDS", "8"))

        result = run_soak(pooled_db, pooled_sandbox.control, pooled_sandbox.stripe_api_base, TEST_STRIPE_KEY,
                          seconds, rate=3, reminders=True)
    finally:
        server.should_exit = True

    print("\n".join([*result.lines(), f"deliveries per sidecar: {sorted(proxy.counts.values())}"]))
    assert (result.lost, result.double_applied, result.duplicate_reminders) == (0, 0, 0)
    assert result.duplicates_absorbed > 0 and result.deliveries > result.events_sent
    assert result.reminders_handed >= result.left_open > 0
    assert len(proxy.counts) == 2 and min(proxy.counts.values()) > 0
    paid = pooled_db.execute("SELECT count(*) AS n FROM crm.invoices WHERE status = 'paid'").fetchone()
    assert paid == {"n": result.invoices_paid}
    no_deadlock(a, b)
