"""A Send killed after any step, or cut off from Stripe, resumes without a second customer, invoice or email."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from crm.send.result import SendResult
from crm.send.workflow import SendOptions, SendRefused, SimulatedCrash, send_invoice
from sandbox.testing import RunningSandbox
from tests.fixtures.workflow import STAFF
from tests.send_helpers import assert_exactly_one_of_each

Conn = psycopg.Connection[dict[str, Any]]
LATER = datetime.now(timezone.utc) + timedelta(days=1)  # a claim clock past any lease taken in the test


def crash_after(target: str) -> SendOptions:
    def hook(step: str) -> None:
        if step == target:
            raise SimulatedCrash(f"killed after {step}")
    return SendOptions(lease_s=300, after_step=hook)


def status_of(db: Conn, invoice_id: int) -> dict[str, Any]:
    row = db.execute("SELECT status, attention, attention_detail, resend_email_id FROM crm.invoices WHERE id = %s",
                     (invoice_id,)).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize("step", ["customer", "invoice", "lines", "finalize", "email"])
def test_killed_after_each_step_then_send_again_makes_one_of_everything(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int, step: str) -> None:
    with pytest.raises(SimulatedCrash):
        send_invoice(draft_invoice, STAFF, options=crash_after(step))
    assert status_of(db, draft_invoice)["status"] == "sending"
    # The dead Send's lease is still live: a second click is refused, not doubled.
    with pytest.raises(SendRefused, match=f"already being sent by {STAFF} since"):
        send_invoice(draft_invoice, "other@acme-hvac.test")

    result = send_invoice(draft_invoice, STAFF, options=SendOptions(now=LATER))

    assert result.ok, result.message
    assert status_of(db, draft_invoice)["status"] == "open"
    objs = assert_exactly_one_of_each(crm_sandbox)
    assert objs["invoices"][0]["status"] == "open" and len(objs["invoices"][0]["lines"]["data"]) == 2
    assert db.execute("SELECT count(*) AS n FROM crm.reminders WHERE invoice_id = %s",
                      (draft_invoice,)).fetchone() == {"n": 3}
    # The step that was running when the process died stays 'started' in the record.
    attempts = db.execute("SELECT DISTINCT attempt FROM crm.send_steps WHERE invoice_id = %s ORDER BY attempt",
                          (draft_invoice,)).fetchall()
    assert [a["attempt"] for a in attempts] == [1, 2]


def test_killed_after_completing_leaves_it_open_and_refuses_a_second_send(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    with pytest.raises(SimulatedCrash):
        send_invoice(draft_invoice, STAFF, options=crash_after("complete"))
    assert status_of(db, draft_invoice)["status"] == "open"
    with pytest.raises(SendRefused, match="this one is open"):
        send_invoice(draft_invoice, STAFF, options=SendOptions(now=LATER))
    assert_exactly_one_of_each(crm_sandbox)


@pytest.mark.parametrize(("path", "step"), [("/v1/customers", "customer"), ("/v1/invoices", "invoice"),
                                            ("/v1/invoices/*/add_lines", "lines"),
                                            ("/v1/invoices/*/finalize", "finalize")])
def test_stripe_did_it_but_the_answer_was_lost_and_stripe_went_away_then_send_again_resumes(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int, path: str, step: str) -> None:
    # The first call is carried out but its answer lost; the retries then find Stripe down.
    crm_sandbox.control.add_fault(service="stripe", method="POST", path=path, status=500, phase="after", times=1)
    crm_sandbox.control.add_fault(service="stripe", method="POST", path=path, status=503, times=2)

    first = send_invoice(draft_invoice, STAFF)

    assert not first.ok and first.failed_step == step and first.invoice_status == "sending"
    state = status_of(db, draft_invoice)
    assert state["status"] == "sending" and state["attention"] == "send_failed"
    assert "press Send again to resume" in state["attention_detail"]
    second = send_invoice(draft_invoice, STAFF)
    assert second.ok, second.message
    objs = assert_exactly_one_of_each(crm_sandbox)
    assert len(objs["invoices"][0]["lines"]["data"]) == 2
    assert status_of(db, draft_invoice)["attention"] is None
    if step == "lines":
        lines_steps = db.execute("SELECT status FROM crm.send_steps WHERE invoice_id = %s AND step = 'lines' "
                                 "ORDER BY id", (draft_invoice,)).fetchall()
        assert [s["status"] for s in lines_steps] == ["failed", "skipped"]


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/invoices", "/v1/invoices/*/finalize"])
def test_a_lost_stripe_response_is_retried_with_the_same_key(
        crm_sandbox: RunningSandbox, draft_invoice: int, path: str) -> None:
    crm_sandbox.control.add_fault(service="stripe", method="POST", path=path, status=502, phase="after", times=1)
    assert send_invoice(draft_invoice, STAFF).ok
    assert_exactly_one_of_each(crm_sandbox)
    calls = [r for r in crm_sandbox.control.requests(service="stripe", method="POST")
             if r["path"] == path or r["path"].endswith(path.rsplit("/", 1)[-1])]
    assert len(calls) == 2 and calls[0]["idempotency_key"] == calls[1]["idempotency_key"]
    assert calls[1]["idempotent_replayed"]


def test_a_lost_resend_response_is_retried_with_the_same_key(crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    crm_sandbox.control.add_fault(service="resend", method="POST", path="/emails", status=500, phase="after", times=1)
    assert send_invoice(draft_invoice, STAFF).ok
    assert_exactly_one_of_each(crm_sandbox)


def test_two_concurrent_sends_one_runs_the_other_is_refused(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    # Slow Stripe down so the first Send is still running when the second one asks.
    crm_sandbox.control.add_fault(service="stripe", method="POST", path="/v1/customers", latency_ms=400)
    barrier = threading.Barrier(2)
    outcomes: dict[str, SendResult | Exception] = {}

    def click(who: str) -> None:
        barrier.wait()
        try:
            outcomes[who] = send_invoice(draft_invoice, who)
        except SendRefused as exc:
            outcomes[who] = exc

    threads = [threading.Thread(target=click, args=(w,)) for w in ("ann@acme-hvac.test", "bob@acme-hvac.test")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    results = [o for o in outcomes.values() if isinstance(o, SendResult)]
    refusals = [o for o in outcomes.values() if isinstance(o, SendRefused)]
    assert len(results) == 1 and results[0].ok, outcomes
    assert len(refusals) == 1
    assert "already being sent by" in str(refusals[0]) or "being sent right now" in str(refusals[0])
    assert_exactly_one_of_each(crm_sandbox)
    assert status_of(db, draft_invoice)["status"] == "open"
