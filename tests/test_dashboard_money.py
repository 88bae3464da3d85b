"""Invoices page (AppTest against the real test database): a bank payment on its way shows
Processing, an open dispute shows Disputed with the amount at stake and its evidence
deadline, and an invoice paid in parts shows paid, remaining and each payment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from db import invoices
from db.stripe_events import apply_event
from tests import stripe_payloads as sp
from tests.fixtures.sidecar import seed_invoice

Conn = psycopg.Connection[Any]


def _texts(at: Any, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def _table(at: Any, column: str) -> Any:
    """The first dataframe with that column (the invoice list has 'Remaining', payments 'Payment')."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _open(app_as: Callable[..., Any], invoice_id: int) -> Any:
    at = app_as("staff", "pages/invoices.py")
    at.session_state["open_invoice"] = invoice_id  # what a click on its row does
    at.toggle(key="inv_more_columns").set_value(True).run()  # the list's Paid, Remaining and ID columns
    assert not at.exception, [e.value for e in at.exception]
    return at


def _linked_customer(db: Conn, inv: dict[str, Any]) -> str:
    cus = sp.stripe_id("cus")
    db.execute("UPDATE crm.customers SET stripe_customer_id_test = %s WHERE id = %s", (cus, inv["customer_id"]))
    db.execute("UPDATE crm.invoices SET stripe_invoice_number = 'ACME-0042' WHERE id = %s", (inv["invoice_id"],))
    return cus


def test_invoice_view_shows_a_bank_payment_processing(db: Conn, app_as: Callable[..., Any]) -> None:
    inv = seed_invoice(db, amount_due=480_000)
    pi = {"id": sp.stripe_id("pi"), "object": "payment_intent", "amount": 480_000, "currency": "usd",
          "customer": _linked_customer(db, inv), "description": "Payment for Invoice",
          "payment_method_types": ["us_bank_account"], "status": "processing", "livemode": False,
          "latest_charge": sp.stripe_id("ch")}
    # The invoice's default payment intent, as the Send records it after finalize.
    invoices.record_default_payment_intent(db, inv["invoice_id"], "test", pi["id"], sp.stripe_id("inpay"))
    assert apply_event(db, sp.event("payment_intent.processing", pi), "test").outcome == "applied"

    at = _open(app_as, inv["invoice_id"])

    assert any(h.endswith("· processing") for h in _texts(at, "subheader")), _texts(at, "subheader")
    info = " ".join(_texts(at, "info"))
    assert "Processing: a bank payment of $4,800.00 is on its way" in info and "reminders are paused" in info
    table = _table(at, "Remaining")
    assert list(table.loc[table["ID"] == inv["invoice_id"], "Status"]) == ["processing"]


def test_invoice_view_shows_a_dispute_with_the_amount_at_stake_and_the_deadline(
        db: Conn, app_as: Callable[..., Any]) -> None:
    inv = seed_invoice(db)
    pi = sp.stripe_id("pi")
    apply_event(db, sp.event("invoice_payment.paid", sp.invoice_payment(inv["stripe_invoice_id"], pi, 10_000)), "test")
    apply_event(db, sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000)),
                "test")
    dispute = {"id": sp.stripe_id("dp"), "object": "dispute", "amount": 7_500, "charge": sp.stripe_id("ch"),
               "currency": "usd", "created": 1_790_000_000, "payment_intent": pi, "reason": "fraudulent",
               "status": "needs_response", "livemode": False,
               "evidence_details": {"due_by": 1_790_604_800, "has_evidence": False, "past_due": False,
                                    "submission_count": 0}}
    assert apply_event(db, sp.event("charge.dispute.created", dispute), "test").outcome == "applied"

    at = _open(app_as, inv["invoice_id"])

    assert any(h.endswith("· disputed") for h in _texts(at, "subheader")), _texts(at, "subheader")
    error = " ".join(_texts(at, "error"))
    assert "Disputed: $75.00 at stake (fraudulent, needs response)" in error
    assert "Evidence due by 2026-09-28" in error


def test_invoice_view_shows_partial_payments_paid_remaining_and_each_payment(
        db: Conn, app_as: Callable[..., Any]) -> None:
    inv = seed_invoice(db, amount_due=30_000)
    for amount in (10_000, 5_000):
        pay = sp.invoice_payment(inv["stripe_invoice_id"], sp.stripe_id("pi"), amount)
        assert apply_event(db, sp.event("invoice_payment.paid", pay), "test").outcome == "applied"

    at = _open(app_as, inv["invoice_id"])

    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Paid"], metrics["Remaining"], metrics["Amount due"]) == ("$150.00", "$150.00", "$300.00")
    payments = _table(at, "Payment")
    assert list(payments["Amount"]) == ["$100.00", "$50.00"]
    table = _table(at, "Remaining")
    row = table.loc[table["ID"] == inv["invoice_id"]]
    assert (list(row["Paid"]), list(row["Remaining"])) == (["$150.00"], ["$150.00"])
