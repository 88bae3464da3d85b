"""The owner's Refund button (issue 20): real Postgres, the real sidecar over HTTP, the sandbox as
Stripe, the real Send workflow and the Invoices page in AppTest.

- The owner presses Refund once: the sandbox holds one refund, and the invoice shows it (Refunded,
  the refunds list) once Stripe's refund events arrive by webhook. The same press again, twice at
  the same moment, makes no second refund (one idempotency record per Stripe refund).
- A bank-debit refund is pending (counted, shown as pending) until the bank answers; when it fails,
  it is taken back out of Refunded and shown with Stripe's reason.
- Staff see the refunds but have no button; the core refuses them too.

Checked by hand: with `press` replaced by a fresh token per call in
crm.money.refunds.refund_invoice, the double press makes two refunds and the first test fails.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import stripe

from crm.money.refunds import RefundablePayment, RefundRefused, check_request, plan_refund, refund_invoice
from crm.users.auth import Session
from sandbox.testing import RunningSandbox
from tests import money_helpers
from tests.fixtures.workflow import MakeInvoice
from tests.money_helpers import invoice_row, sent_invoice, settled
from tests.reconcile_helpers import wait_until
from tests.shown import shown

Conn = psycopg.Connection[dict[str, Any]]
wired = money_helpers.wired  # the fixture
LATER = datetime.now(UTC) + timedelta(hours=1)
OWNER = Session(1, "owner@example.com", "Olive Owner", "owner", LATER)
STAFF = Session(2, "staff@example.com", "Sam Staff", "staff", LATER)


def stripe_refunds(sbx: RunningSandbox, payment_intent: str) -> list[Any]:
    client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": sbx.stripe_api_base})
    return list(client.v1.refunds.list({"payment_intent": payment_intent}).data)


def paid_by_card(db: Conn, sbx: RunningSandbox, make_invoice: MakeInvoice) -> dict[str, Any]:
    inv = sent_invoice(db, make_invoice)
    sbx.control.pay_invoice(inv["stripe_invoice_id"])
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["status"] == "paid", what="the invoice paid")
    settled(sbx)
    return {**inv, "pi": payment_intent_of(db, inv["invoice_id"])}


def payment_intent_of(db: Conn, invoice_id: int) -> str:
    row = db.execute("SELECT stripe_payment_intent_id FROM crm.payments WHERE invoice_id = %s",
                     (invoice_id,)).fetchone()
    assert row is not None
    return str(row["stripe_payment_intent_id"])


def refunded(db: Conn, invoice_id: int) -> int:
    return int(invoice_row(db, invoice_id)["amount_refunded_cents"])


def _open(app_as: Callable[..., Any], role: str, invoice_id: int) -> Any:
    at = app_as(role, "pages/invoices.py")
    at.session_state["open_invoice"] = invoice_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_refund_button_owner_presses_once_one_refund_shown_after_the_webhook(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice, app_as: Callable[..., Any]) -> None:
    inv = paid_by_card(db, wired, make_invoice)
    at = _open(app_as, "owner", inv["invoice_id"])

    at.text_input(key=f"refund_amount_{inv['invoice_id']}").set_value("40.00")
    at.selectbox(key=f"refund_reason_{inv['invoice_id']}").set_value("requested_by_customer")
    next(b for b in at.button if b.label == "Refund").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]

    assert [(r.amount, r.reason) for r in stripe_refunds(wired, inv["pi"])] == [(4_000, "requested_by_customer")]
    successes = [shown(s.value) for s in at.success]
    assert any("Refund of $40.00 asked of Stripe" in s for s in successes), successes
    wait_until(lambda: refunded(db, inv["invoice_id"]) == 4_000, what="the refund recorded from its webhook")
    settled(wired)
    at = _open(app_as, "owner", inv["invoice_id"])
    refunds = next(d.value for d in at.dataframe if "Refund" in d.value.columns)
    assert list(refunds["Status"]) == ["succeeded"] and list(refunds["By"]) == ["owner@example.com"]
    assert any(m.label == "Refunded" and m.value == "$40.00" for m in at.metric)

    # The same press again, twice at the same moment (a double tap, a retry): no second refund.
    press = secrets.token_hex(8)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: refund_invoice(inv["invoice_id"], 1_000, "duplicate", None, OWNER, press),
                                range(2)))
    assert all(r.ok for r in results), [r.message for r in results]
    assert results[0].refund_ids == results[1].refund_ids
    again = refund_invoice(inv["invoice_id"], 1_000, "duplicate", None, OWNER, press)
    assert again.refund_ids == results[0].refund_ids
    assert sorted(r.amount for r in stripe_refunds(wired, inv["pi"])) == [1_000, 4_000]
    wait_until(lambda: refunded(db, inv["invoice_id"]) == 5_000, what="the second refund recorded")
    assert db.execute("SELECT count(*) AS n FROM crm.refund_requests").fetchone() == {"n": 2}


def test_refund_button_failed_bank_refund_is_taken_back_out_with_its_reason(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice, app_as: Callable[..., Any]) -> None:
    inv = sent_invoice(db, make_invoice)
    pi = wired.control.pay_by_bank(inv["stripe_invoice_id"])
    wired.control.settle_bank_debit(pi["id"])
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["status"] == "paid", what="the bank payment settled")
    wired.control.set_refunds(bank_delay_s=4 * 86400)  # the bank answers in days

    result = refund_invoice(inv["invoice_id"], inv["amount"], "requested_by_customer", "moved away", OWNER,
                            secrets.token_hex(8))
    assert result.ok, result.message
    [refund] = stripe_refunds(wired, pi["id"])
    assert refund.status == "pending"
    wait_until(lambda: refunded(db, inv["invoice_id"]) == inv["amount"], what="the pending refund counted")
    settled(wired)
    at = _open(app_as, "owner", inv["invoice_id"])
    states = list(next(d.value for d in at.dataframe if "Refund" in d.value.columns)["Status"])
    assert states == ["pending"]

    assert wired.control.settle_refund(refund.id, "failed", "insufficient_funds")["status"] == "failed"
    wait_until(lambda: refunded(db, inv["invoice_id"]) == 0, what="the failed refund taken back out")
    settled(wired)

    row = db.execute("SELECT status, failure_reason FROM crm.refunds").fetchone()
    assert row == {"status": "failed", "failure_reason": "insufficient_funds"}
    at = _open(app_as, "owner", inv["invoice_id"])
    states = list(next(d.value for d in at.dataframe if "Refund" in d.value.columns)["Status"])
    assert states == ["failed: insufficient_funds (not counted)"]
    timeline = " ".join(str(v) for d in at.dataframe if "What" in d.value.columns for v in d.value["What"])
    assert "insufficient_funds, taken back out" in timeline
    # The money is refundable again: the button is back.
    assert any(b.label == "Refund" for b in at.button)


def test_refund_button_is_for_owners_only(db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice,
                                         app_as: Callable[..., Any]) -> None:
    inv = paid_by_card(db, wired, make_invoice)
    at = _open(app_as, "staff", inv["invoice_id"])
    assert not any(b.label == "Refund" for b in at.button)
    with pytest.raises(RefundRefused, match="Only an owner"):
        refund_invoice(inv["invoice_id"], 1_000, "duplicate", None, STAFF, secrets.token_hex(8))
    assert stripe_refunds(wired, inv["pi"]) == []
    assert db.execute("SELECT count(*) AS n FROM crm.refund_requests").fetchone() == {"n": 0}


def test_refund_button_rules_and_plan() -> None:
    payments = [RefundablePayment(2, 3_000), RefundablePayment(1, 10_000)]  # newest first
    assert plan_refund(payments, 2_000) == [(2, 2_000)]
    assert plan_refund(payments, 5_000) == [(2, 3_000), (1, 2_000)]
    with pytest.raises(RefundRefused):
        plan_refund(payments, 13_001)
    check_request(OWNER, 13_000, "requested_by_customer", 13_000)
    for session, amount, reason, left, why in (
            (STAFF, 100, "duplicate", 1_000, "Only an owner"), (OWNER, 0, "duplicate", 1_000, "more than zero"),
            (OWNER, 100, "because", 1_000, "Pick a reason"), (OWNER, 1_001, "duplicate", 1_000, r"At most \$10.00"),
            (OWNER, 100, "duplicate", 0, "Nothing on this invoice")):
        with pytest.raises(RefundRefused, match=why):
            check_request(session, amount, reason, left)
