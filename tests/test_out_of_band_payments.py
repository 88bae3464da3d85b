"""Cash and check payments (crm/money/cash_payments.py) the ways Stripe offers, through the real Send
workflow, the sandbox over HTTP and the real sidecar: part of an invoice as a PaymentRecord
attached to it, all of what is left with `paid_out_of_band`. The invoice, its payments, its
timeline, Collections and the QuickBooks export follow Stripe's webhooks."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from crm.config.settings import load_settings
from crm.money.accounting_export import UNDEPOSITED, build_export
from crm.money.cash_payments import cash_payment_problem, record_cash_payment
from crm.stripe.gateway import StripeGateway, StripeGatewayError, stripe_target
from db import queries_collections as qc
from db.queries_invoices import invoice_payments, invoice_timeline
from sandbox.testing import RunningSandbox
from tests import money_helpers
from tests.fixtures.workflow import MakeInvoice
from tests.money_helpers import invoice_row, sent_invoice, settled
from tests.reconcile_helpers import wait_until
from tests.shown import shown
from ui.timeline_text import timeline

Conn = psycopg.Connection[dict[str, Any]]
wired = money_helpers.wired  # the fixture


def _collected(db: Conn) -> int:
    now = datetime.now(UTC) + timedelta(minutes=1)
    t = qc.tiles(db, date.today(), now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now)
    return int(t["gross_cents"])


def _payments_csv(db: Conn) -> list[dict[str, str]]:
    today = datetime.now(UTC).date()
    res = build_export(db, today - timedelta(days=1), today + timedelta(days=1), "UTC")
    return list(csv.DictReader(io.StringIO(res.files["payments.csv"])))


def test_out_of_band_partial_cash_then_the_rest_by_card_is_paid_with_both_payments_shown_and_exported(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    inv = sent_invoice(db, make_invoice)
    due, cash = int(inv["amount"]), 3_000
    before = _collected(db)

    first = record_cash_payment(inv["invoice_id"], cash, "cash")
    again = record_cash_payment(inv["invoice_id"], cash, "cash")  # a double tap before the webhook
    assert first.ok and again.ok, (first.message, again.message)
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["amount_paid_cents"] == cash, what="the cash recorded")
    settled(wired)
    row = invoice_row(db, inv["invoice_id"])
    assert (row["status"], row["amount_paid_cents"]) == ("open", cash), "part paid: still open"

    # The customer's hosted page now asks for the rest only; they pay it by card.
    assert wired.control.pay_invoice(inv["stripe_invoice_id"])["invoice"]["status"] == "paid"
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["status"] == "paid", what="paid")
    settled(wired)

    payments = invoice_payments(db, inv["invoice_id"])
    assert sorted((p["method"], p["amount_cents"]) for p in payments) == sorted(
        [("out_of_band", cash), ("stripe", due - cash)]), "one cash payment (not two), then the card"
    assert invoice_row(db, inv["invoice_id"])["amount_paid_cents"] == due
    whats = [e.what for e in timeline(invoice_timeline(db, inv["invoice_id"]), "usd")]
    assert "Payment of $30.00 received outside Stripe (cash or check)" in whats, whats
    assert _collected(db) == before + due

    exported = [r for r in _payments_csv(db) if r["JournalNo"].startswith("PAY-")]
    debits = sorted((r["AccountName"], r["Debits"]) for r in exported if r["Debits"])
    assert debits == sorted([(UNDEPOSITED, "30.00"), ("Stripe Clearing", f"{(due - cash) / 100:.2f}")]), debits


def test_out_of_band_in_full_marks_the_invoice_paid_out_of_band(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    inv = sent_invoice(db, make_invoice)
    done = record_cash_payment(inv["invoice_id"], int(inv["amount"]), "check", "1042")
    assert done.ok and "paid in full" in done.message, done.message
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["status"] == "paid", what="paid")
    settled(wired)
    (payment,) = invoice_payments(db, inv["invoice_id"])
    assert (payment["method"], payment["amount_cents"], payment["fee_cents"]) == ("out_of_band", inv["amount"], 0)
    calls = wired.control.requests(service="stripe", path=f"/v1/invoices/{inv['stripe_invoice_id']}/pay")
    assert len(calls) == 1 and calls[0]["status"] == 200


def test_out_of_band_stripe_refuses_more_than_the_amount_remaining(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    inv = sent_invoice(db, make_invoice)
    gateway = StripeGateway(stripe_target(load_settings(db)))
    record = gateway.report_payment(int(inv["amount"]) + 1, "usd", int(datetime.now(UTC).timestamp()), "cash",
                                    "too much", "oob-test-too-much")
    with pytest.raises(StripeGatewayError, match="more than the amount remaining"):
        gateway.attach_payment_record(str(inv["stripe_invoice_id"]), record, "oob-test-too-much-attach")


@pytest.mark.parametrize(("status", "amount", "method", "reference", "problem"), [
    ("open", 0, "cash", "", "Enter the amount"),
    ("open", 10_001, "cash", "", "more than the 100.00 still owed"),
    ("open", 100, "card", "", "Choose how it was paid"),
    ("open", 100, "check", " ", "check number"),
    ("paid", 100, "cash", "", "not yet paid"),
])
def test_out_of_band_problems(status: str, amount: int, method: str, reference: str, problem: str) -> None:
    invoice = {"status": status, "stripe_invoice_id": "in_1", "amount_due_cents": 10_000, "amount_paid_cents": 0,
               "currency": "usd"}
    found = cash_payment_problem(invoice, amount, method, reference)
    assert found is not None and problem in found


def test_out_of_band_no_problem_for_a_check_with_its_number() -> None:
    invoice = {"status": "open", "stripe_invoice_id": "in_1", "amount_due_cents": 10_000, "amount_paid_cents": 2_500,
               "currency": "usd"}
    assert cash_payment_problem(invoice, 7_500, "check", "1042") is None


def test_out_of_band_recorded_from_the_invoice_page(db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice,
                                                    app_as: Callable[..., Any]) -> None:
    """The invoice page's "Record cash or check": a check for part of it, by number."""
    inv = sent_invoice(db, make_invoice)
    at = app_as("staff", "pages/invoices.py")
    at.session_state["open_invoice"] = inv["invoice_id"]
    at.run()
    at.text_input(key=f"cash_amt_{inv['invoice_id']}").set_value("25.00")
    at.radio(key=f"cash_method_{inv['invoice_id']}").set_value("check")
    at.text_input(key=f"cash_ref_{inv['invoice_id']}").set_value("1042")
    at.button(key=f"cash_record_{inv['invoice_id']}").click().run()
    assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
    successes = [shown(s.value) for s in at.success]
    assert any("25.00 by check recorded at Stripe" in s for s in successes), successes
    wait_until(lambda: [(p["method"], p["amount_cents"]) for p in invoice_payments(db, inv["invoice_id"])]
               == [("out_of_band", 2_500)], what="the check recorded")
    settled(wired)
