"""Disputes (chargebacks): an invoice with an open dispute shows Disputed with the amount at
stake and the evidence deadline; a lost dispute takes the amount off what was collected; a
won one leaves it Paid. Events come from the sandbox (Stripe's dispute shape) through the
real sidecar over HTTP; a dispute that arrives before its payment is recorded unmatched and
linked when its event is applied again."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from db import queries_collections as qc
from db.queries_invoices import InvoiceFilter, get_invoice, invoice_disputes, invoice_timeline, list_invoices
from sandbox.testing import RunningSandbox
from tests import money_helpers
from tests import stripe_payloads as sp
from tests.fixtures.sidecar import Sidecar, seed_invoice
from tests.fixtures.workflow import MakeInvoice
from tests.money_helpers import invoice_row, sent_invoice, settled
from tests.reconcile_helpers import wait_until

Conn = psycopg.Connection[dict[str, Any]]
wired = money_helpers.wired  # the fixture


def paid_by_card(db: Conn, sbx: RunningSandbox, make_invoice: MakeInvoice) -> dict[str, Any]:
    inv = sent_invoice(db, make_invoice)
    assert sbx.control.pay_invoice(inv["stripe_invoice_id"])["invoice"]["status"] == "paid"
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["status"] == "paid", what="paid")
    wait_until(lambda: db.execute("SELECT count(*) AS n FROM crm.payments WHERE invoice_id = %s AND "
                                  "stripe_payment_intent_id IS NOT NULL", (inv["invoice_id"],)).fetchone() == {"n": 1},
               what="the payment recorded with its payment intent")
    settled(sbx)
    return inv


def collected_this_month(db: Conn) -> int:
    now = datetime.now(UTC) + timedelta(minutes=1)
    t = qc.tiles(db, date.today(), now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now)
    return int(t["gross_cents"])


def shown(db: Conn, invoice_id: int) -> str:
    return str(next(r for r in list_invoices(db, InvoiceFilter(), date.today()) if r["id"] == invoice_id)["status"])


def test_dispute_opened_then_lost_shows_disputed_then_reduces_collected(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    inv = paid_by_card(db, wired, make_invoice)
    before = collected_this_month(db)

    dp = wired.control.open_dispute(inv["stripe_invoice_id"], amount=10_000, reason="product_unacceptable")
    wait_until(lambda: len(invoice_disputes(db, inv["invoice_id"])) == 1, what="the dispute recorded")
    settled(wired)

    assert shown(db, inv["invoice_id"]) == "disputed"
    assert [r["id"] for r in list_invoices(db, InvoiceFilter(status="disputed"), date.today())] == [inv["invoice_id"]]
    (d,) = invoice_disputes(db, inv["invoice_id"])
    assert (d["stripe_dispute_id"], d["amount_cents"], d["reason"], d["status"], d["open"]) == (
        dp["id"], 10_000, "product_unacceptable", "needs_response", True)
    assert int(d["evidence_due_by"].timestamp()) == dp["evidence_details"]["due_by"]
    assert [r["stripe_dispute_id"] for r in qc.open_disputes(db)] == [dp["id"]]
    assert collected_this_month(db) == before, "open: the money is at stake, not lost yet"

    wired.control.close_dispute(dp["id"], "lost")
    wait_until(lambda: invoice_disputes(db, inv["invoice_id"])[0]["status"] == "lost", what="the dispute lost")
    settled(wired)

    assert collected_this_month(db) == before - 10_000
    assert shown(db, inv["invoice_id"]) == "paid" and invoice_row(db, inv["invoice_id"])["status"] == "paid"
    assert qc.open_disputes(db) == []
    moves = db.execute("SELECT from_status, to_status FROM crm.audit_log WHERE entity = 'invoice' AND entity_id = %s "
                       "AND detail ? 'dispute' ORDER BY id", (inv["invoice_id"],)).fetchall()
    assert [(m["from_status"], m["to_status"]) for m in moves] == [("paid", "disputed"), ("disputed", "dispute_lost")]
    whats = [t["what"] for t in invoice_timeline(db, inv["invoice_id"])]
    assert any(w.startswith("paid → disputed — dispute needs_response, 100.00 (product_unacceptable)") for w in whats)


def test_dispute_won_returns_the_invoice_to_paid_and_keeps_collected(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    inv = paid_by_card(db, wired, make_invoice)
    before = collected_this_month(db)
    dp = wired.control.open_dispute(inv["stripe_invoice_id"])
    wait_until(lambda: len(invoice_disputes(db, inv["invoice_id"])) == 1, what="the dispute recorded")
    wired.control.submit_dispute_evidence(dp["id"])
    wait_until(lambda: invoice_disputes(db, inv["invoice_id"])[0]["status"] == "under_review", what="under review")
    assert shown(db, inv["invoice_id"]) == "disputed"

    wired.control.close_dispute(dp["id"], "won")
    wait_until(lambda: invoice_disputes(db, inv["invoice_id"])[0]["status"] == "won", what="the dispute won")
    settled(wired)

    assert shown(db, inv["invoice_id"]) == "paid"
    assert get_invoice(db, inv["invoice_id"])["shown_status"] == "paid"  # type: ignore[index]
    assert collected_this_month(db) == before
    moves = db.execute("SELECT from_status, to_status FROM crm.audit_log WHERE entity = 'invoice' AND entity_id = %s "
                       "AND detail ? 'dispute' ORDER BY id", (inv["invoice_id"],)).fetchall()
    assert [(m["from_status"], m["to_status"]) for m in moves] == [("paid", "disputed"), ("disputed", "paid")]


def dispute_payload(charge: str, pi: str, status: str = "needs_response", amount: int = 10_000) -> dict[str, Any]:
    return {"id": "dp_" + charge[3:], "object": "dispute", "amount": amount, "charge": charge, "currency": "usd",
            "created": 1_700_000_500, "evidence_details": {"due_by": 1_700_600_000, "has_evidence": False,
                                                           "past_due": False, "submission_count": 0},
            "livemode": False, "metadata": {}, "payment_intent": pi, "reason": "fraudulent", "status": status}


def test_dispute_before_its_payment_is_recorded_unmatched_then_linked_when_applied_again(sidecar: Sidecar) -> None:
    db = sidecar.db
    inv = seed_invoice(db)
    pi, ch = sp.stripe_id("pi"), sp.stripe_id("ch")
    created = sp.event("charge.dispute.created", dispute_payload(ch, pi))

    resp = sidecar.post(created)
    assert (resp.status_code, resp.json()["outcome"]) == (200, "unmatched")
    assert db.execute("SELECT invoice_id, status FROM crm.disputes").fetchall() == [
        {"invoice_id": None, "status": "needs_response"}]
    assert [r["number"] for r in qc.open_disputes(db)] == [None], "the owner sees it, not matched yet"

    sidecar.post(sp.event("invoice_payment.paid", sp.invoice_payment(inv["stripe_invoice_id"], pi, 10_000)))
    sidecar.post(sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000)))
    # The payment's arrival re-applied the unmatched event from its stored payload (same handler).
    ledger = db.execute("SELECT outcome, replayed_at IS NOT NULL AS late FROM crm.stripe_events WHERE id = %s",
                        (created["id"],)).fetchone()
    assert ledger == {"outcome": "applied", "late": True}
    again = db.execute("SELECT crm.apply_stripe_dispute_event(%s, %s, %s, 'test') AS r",
                       (created["id"], created["type"], Jsonb(created["data"]["object"]))).fetchone()
    assert again is not None and again["r"]["outcome"] == "ignored", "applying it twice changes nothing"

    assert [(d["status"], d["open"]) for d in invoice_disputes(db, inv["invoice_id"])] == [("needs_response", True)]
    assert get_invoice(db, inv["invoice_id"])["shown_status"] == "disputed"  # type: ignore[index]
    assert db.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'invoice' AND entity_id = %s "
                      "AND to_status = 'disputed'", (inv["invoice_id"],)).fetchone() == {"n": 1}


def test_dispute_closed_is_final_whatever_arrives_after_it(sidecar: Sidecar) -> None:
    db = sidecar.db
    inv = seed_invoice(db)
    pi, ch = sp.stripe_id("pi"), sp.stripe_id("ch")
    sidecar.post(sp.event("invoice_payment.paid", sp.invoice_payment(inv["stripe_invoice_id"], pi, 10_000)))

    closed = sidecar.post(sp.event("charge.dispute.closed", dispute_payload(ch, pi, "lost")))
    assert closed.json()["outcome"] == "applied"
    late = sidecar.post(sp.event("charge.dispute.created", dispute_payload(ch, pi, "needs_response")))

    assert late.json()["outcome"] == "ignored"
    assert [(d["status"], d["open"]) for d in invoice_disputes(db, inv["invoice_id"])] == [("lost", False)]
    other_mode = sp.event("charge.dispute.updated", dispute_payload(ch, pi, "under_review"), livemode=True)
    assert sidecar.post(other_mode).json()["outcome"] == "rejected"


def test_reconcile_repairs_a_dispute_whose_events_were_lost(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    """A chargeback opened, then lost, while every delivery was dropped: reconcile brings the
    invoice to Disputed, then takes the lost amount off what was collected; again, nothing."""
    from crm.stripe.reconcile import run_reconcile

    inv = paid_by_card(db, wired, make_invoice)
    before = collected_this_month(db)
    wired.control.set_delivery_faults(service="stripe", drop_rate=1.0)
    dp = wired.control.open_dispute(inv["stripe_invoice_id"], amount=10_000, reason="fraudulent")
    settled(wired)
    assert invoice_disputes(db, inv["invoice_id"]) == []

    assert run_reconcile("cli").ok
    assert shown(db, inv["invoice_id"]) == "disputed"
    wired.control.close_dispute(dp["id"], "lost")
    settled(wired)
    assert run_reconcile("cli").ok
    assert [d["status"] for d in invoice_disputes(db, inv["invoice_id"])] == ["lost"]
    assert collected_this_month(db) == before - 10_000
    again = run_reconcile("cli")
    assert again.ok and again.repairs == []


def test_reconcile_compares_each_charges_disputes_with_the_crms(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    """What the event catch-up cannot repair (the ledger already holds the events, so a replay
    is a duplicate): the CRM's dispute row says open while Stripe says lost. The money
    comparison fetches the charge's disputes and applies a synthetic `charge.dispute.closed`."""
    from crm.stripe.reconcile import run_reconcile

    inv = paid_by_card(db, wired, make_invoice)
    dp = wired.control.open_dispute(inv["stripe_invoice_id"], amount=10_000, reason="fraudulent")
    wired.control.close_dispute(dp["id"], "lost")
    wait_until(lambda: [d["status"] for d in invoice_disputes(db, inv["invoice_id"])] == ["lost"],
               what="the lost dispute recorded")
    settled(wired)
    db.execute("UPDATE crm.disputes SET status = 'needs_response', closed_at = NULL")  # the drift

    assert run_reconcile("cli").ok
    assert [d["status"] for d in invoice_disputes(db, inv["invoice_id"])] == ["lost"]
    repairs = db.execute("SELECT id, type FROM crm.stripe_events WHERE id LIKE 'evt_reconcile_dp_%%'").fetchall()
    assert [r["type"] for r in repairs] == ["charge.dispute.closed"]
    assert run_reconcile("cli").ok
    assert db.execute("SELECT count(*) AS n FROM crm.stripe_events WHERE id LIKE 'evt_reconcile_dp_%%'"
                      ).fetchone() == {"n": 1}
