"""Fault injection across the whole path: the sandbox delivers signed webhooks to the real
sidecar, which writes to a real Postgres that the test stops and starts.

Exactly-once is counted against the sandbox's own records (its event list and delivery
log) and our ledger and audit rows. Faults covered elsewhere, not repeated here:
a Send killed between steps (tests/test_send_resume.py::
test_killed_after_each_step_then_send_again_makes_one_of_everything) and Resend failing
during reminder cancellation (tests/test_reminders_dispatch.py::
test_cancel_is_retried_with_backoff_while_resend_fails).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from crm.send.workflow import SendOptions, send_invoice
from crm.stripe.event_types import HANDLED_EVENT_TYPES
from crm.stripe.reconcile import run_reconcile
from sandbox.testing import RunningSandbox, run_sandbox
from tests.fixtures.workflow import STAFF, MakeInvoice
from tests.reconcile_helpers import deliveries_settled, open_invoice, point_crm_at, status_of, wait_until, wire_sidecar
from tests.send_helpers import assert_exactly_one_of_each, sandbox_objects

Conn = psycopg.Connection[dict[str, Any]]
SUBSCRIBED = set(HANDLED_EVENT_TYPES)
PAYMENT_EVENTS = ["invoice.paid", "invoice.payment_succeeded", "invoice_payment.paid", "invoice.updated"]


@pytest.fixture(scope="module")
def patient_sandbox() -> Iterator[RunningSandbox]:
    """Retries for ~10 s: long enough to outlast a Postgres restart on a busy machine."""
    with run_sandbox(webhook_max_attempts=14, webhook_retry_base_s=0.1, webhook_retry_cap_s=1.0) as sbx:
        yield sbx


@pytest.fixture
def wired(db: Conn, patient_sandbox: RunningSandbox, sidecar: Any, monkeypatch: pytest.MonkeyPatch
          ) -> RunningSandbox:
    """The CRM pointed at the sandbox, and the sandbox delivering to the running sidecar."""
    patient_sandbox.control.reset()
    point_crm_at(db, patient_sandbox, monkeypatch)
    wire_sidecar(db, sidecar.url)
    return patient_sandbox


def pay_all(sbx: RunningSandbox, invoices: list[dict[str, Any]]) -> None:
    for inv in invoices:
        assert sbx.control.pay_invoice(inv["stripe_invoice_id"])["invoice"]["status"] == "paid"


def assert_each_paid_exactly_once(conn: Conn, invoices: list[dict[str, Any]]) -> None:
    for inv in invoices:
        row = status_of(conn, inv["invoice_id"])
        assert (row["status"], row["amount_paid_cents"]) == ("paid", inv["amount_due"]), inv
        paid = conn.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'invoice' AND entity_id = %s "
                            "AND to_status = 'paid' AND from_status <> 'paid'", (inv["invoice_id"],)).fetchone()
        money = conn.execute("SELECT coalesce(sum(amount_cents), 0) AS s FROM crm.payments WHERE invoice_id = %s",
                             (inv["invoice_id"],)).fetchone()
        assert paid == {"n": 1} and money == {"s": inv["amount_due"]}, inv


def test_postgres_stopped_mid_stream_then_every_event_is_applied_exactly_once(
        db: Conn, wired: RunningSandbox, pg_server: Any, database_url: str) -> None:
    if not pg_server.can_restart:
        pytest.skip("TEST_DATABASE_URL points at a server this test cannot stop")
    from db.pool import get_pool

    invoices = [open_invoice(db, wired, amount=1_000 * (i + 1)) for i in range(6)]
    pay_all(wired, invoices[:2])
    wait_until(lambda: all(status_of(db, i["invoice_id"])["status"] == "paid" for i in invoices[:2]),
               what="the first payments applied")

    pg_server.stop()
    try:
        pay_all(wired, invoices[2:5])
        wait_until(lambda: any(d["status"] == 503 for d in wired.control.deliveries(service="stripe")),
                   what="a 503 from the sidecar")
    finally:
        pg_server.start()
    pay_all(wired, invoices[5:])
    wait_until(lambda: deliveries_settled(wired), timeout=60, what="every delivery settled")
    get_pool().check()  # the test's process shares the pool; drop connections that died with the server

    sent = {e["id"] for e in wired.control.events() if e["type"] in SUBSCRIBED}
    log = wired.control.deliveries(service="stripe")
    delivered = Counter(d["event_id"] for d in log if d["outcome"] == "delivered")
    assert not [d for d in log if d["outcome"] == "gave_up"]
    assert set(delivered) == sent
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        ledger = {r["id"]: r for r in conn.execute("SELECT id, source, duplicate_deliveries FROM crm.stripe_events")}
        assert set(ledger) == sent
        # Each reception is counted in the ledger; one that committed but whose answer was a 503
        # (the server died around the commit) is received again and counted, never re-applied.
        answered = Counter(d["event_id"] for d in log if d["status"] is not None)
        for event_id in sent:
            assert delivered[event_id] <= ledger[event_id]["duplicate_deliveries"] + 1 <= answered[event_id]
        assert {r["source"] for r in ledger.values()} == {"webhook"}
        assert_each_paid_exactly_once(conn, invoices)


def test_lost_webhooks_are_caught_up_by_reconcile_while_late_deliveries_still_arrive(
        db: Conn, wired: RunningSandbox) -> None:
    invoices = [open_invoice(db, wired, amount=2_000 + i) for i in range(8)]
    wait_until(lambda: deliveries_settled(wired), what="finalized events delivered")
    wired.control.set_delivery_faults(service="stripe", drop_rate=0.9, event_types=PAYMENT_EVENTS, seed=11)
    pay_all(wired, invoices[:6])
    wait_until(lambda: deliveries_settled(wired), what="deliveries settled")
    missed = [i for i in invoices[:6] if status_of(db, i["invoice_id"])["status"] != "paid"]
    assert missed, "the drop switch should have cost some invoice its payment events"

    # Now late and doubled deliveries: reconcile runs while they are still on their way.
    wired.control.set_delivery_faults(service="stripe", delay_rate=1.0, delay_s=1.0, duplicate_rate=0.5,
                                      event_types=PAYMENT_EVENTS, seed=5)
    pay_all(wired, invoices[6:])
    report = run_reconcile("cli")
    wait_until(lambda: deliveries_settled(wired), what="late deliveries settled")

    assert report.ok, report.errors
    assert_each_paid_exactly_once(db, invoices)
    sent = {e["id"] for e in wired.control.events() if e["type"] in SUBSCRIBED}
    ledger = {r["id"]: r for r in db.execute("SELECT id, source, duplicate_deliveries FROM crm.stripe_events "
                                             "WHERE id NOT LIKE 'evt\\_reconcile\\_%%'")}
    assert set(ledger) == sent
    dropped = {d["event_id"] for d in wired.control.deliveries(service="stripe", outcome="dropped")}
    assert dropped and all(ledger[e]["source"] == "reconcile" for e in dropped)
    # Every event existed when reconcile listed them: each was received once by it plus once per
    # delivery, and recorded once; the rest were counted as duplicates.
    delivered = Counter(d["event_id"] for d in wired.control.deliveries(service="stripe", outcome="delivered"))
    assert {e: ledger[e]["duplicate_deliveries"] for e in sent} == {e: delivered[e] for e in sent}


def test_stripe_500_429_and_timeouts_during_send_reuse_the_keys_and_make_one_of_everything(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_TIMEOUT_S", "1")
    faults = {"/v1/customers": {"status": 429}, "/v1/invoices": {"status": 500},
              "/v1/invoices/*/add_lines": {"timeout_s": 2}, "/v1/invoices/*/finalize": {"status": 503}}
    for path, fault in faults.items():
        crm_sandbox.control.add_fault(service="stripe", method="POST", path=path, times=1, **fault)
    crm_sandbox.control.add_fault(service="resend", method="POST", path="/emails", status=500, times=1)

    result = send_invoice(draft_invoice, STAFF)

    assert result.ok, result.message
    objs = assert_exactly_one_of_each(crm_sandbox)
    posts = crm_sandbox.control.requests(service="stripe", method="POST")
    for suffix in ("/v1/customers", "/finalize"):
        calls = [r for r in posts if r["path"].endswith(suffix)]
        assert len(calls) == 2 and len({c["idempotency_key"] for c in calls}) == 1, calls
    # The first add_lines hung past the client's timeout (the sandbox logs no answer it never
    # gave); the retry found it still running (409, as Stripe answers a key in use), waited,
    # and got its answer: the lines were added once.
    add_lines = [r for r in posts if r["path"].endswith("/add_lines")]
    assert [r["status"] for r in add_lines if r["status"] != 409] == [200]
    assert len({r["idempotency_key"] for r in add_lines}) == 1
    assert len(objs["invoices"][0]["lines"]["data"]) == 2
    creates = [r for r in posts if r["path"] == "/v1/invoices"]
    assert [c["status"] for c in creates] == [500, 200] and len({c["idempotency_key"] for c in creates}) == 1


def test_a_payment_webhook_during_a_running_send_leaves_one_consistent_state(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    invoice_id = make_invoice()

    def customer_pays_right_after_finalize(step: str) -> None:
        if step != "finalize":
            return
        row = db.execute("SELECT stripe_invoice_id FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
        assert row is not None
        wired.control.pay_invoice(row["stripe_invoice_id"])
        wait_until(lambda: status_of(db, invoice_id)["status"] == "paid", what="the webhook applied mid-Send")

    result = send_invoice(invoice_id, STAFF, options=SendOptions(after_step=customer_pays_right_after_finalize))

    assert result.invoice_status == "paid", result
    # Paid before the email step: one customer and one invoice at Stripe, and no email at all.
    assert result.message == "Paid before the email went out; no email sent."
    assert {k: len(v) for k, v in sandbox_objects(wired).items()} == {"customers": 1, "invoices": 1, "emails": 0}
    inv = db.execute("SELECT i.status, i.send_lease_token, i.amount_paid_cents = i.amount_due_cents AS settled, "
                     "j.status AS job FROM crm.invoices i JOIN crm.jobs j ON j.id = i.job_id WHERE i.id = %s",
                     (invoice_id,)).fetchone()
    assert inv == {"status": "paid", "send_lease_token": None, "settled": True, "job": "completed"}
    # No reminder is planned for an invoice that is already paid; the status went forward only.
    assert db.execute("SELECT count(*) AS n FROM crm.reminders WHERE invoice_id = %s", (invoice_id,)).fetchone() == {
        "n": 0}
    moves = db.execute("SELECT from_status, to_status FROM crm.audit_log WHERE entity = 'invoice' AND entity_id = %s "
                       "AND from_status IS DISTINCT FROM to_status ORDER BY id", (invoice_id,)).fetchall()
    rank = ["draft", "sending", "open", "paid"]  # invoice.finalized may or may not come first
    assert [m["to_status"] for m in moves].count("paid") == 1 and moves[-1]["to_status"] == "paid"
    assert all(rank.index(m["to_status"]) > rank.index(m["from_status"]) for m in moves), moves
