"""Payments and refunds linked through InvoicePayment ids: partial and full refunds are
recorded against the invoice, whatever order the refund events arrive in."""

from __future__ import annotations

from typing import Any

from tests import stripe_payloads as sp
from tests.fixtures.sidecar import Sidecar, seed_invoice


def paid_with_intent(sidecar: Sidecar) -> dict[str, Any]:
    inv = seed_invoice(sidecar.db)
    pi, ch = sp.stripe_id("pi"), sp.stripe_id("ch")
    sidecar.post(sp.event("invoice_payment.paid", sp.invoice_payment(inv["stripe_invoice_id"], pi, 10_000)))
    sidecar.post(sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000)))
    return {**inv, "pi": pi, "ch": ch}


def invoice_amounts(sidecar: Sidecar, invoice_id: int) -> tuple[str, int, int]:
    row = sidecar.db.execute("SELECT status, amount_paid_cents, amount_refunded_cents FROM crm.invoices "
                             "WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None
    return row["status"], row["amount_paid_cents"], row["amount_refunded_cents"]


def test_invoice_payment_then_paid_records_one_payment_with_its_ids(sidecar: Sidecar) -> None:
    inv = paid_with_intent(sidecar)
    rows = sidecar.db.execute("SELECT amount_cents, stripe_payment_intent_id, stripe_payment_id, fee_cents "
                              "FROM crm.payments").fetchall()
    assert len(rows) == 1
    assert rows[0]["amount_cents"] == 10_000 and rows[0]["stripe_payment_intent_id"] == inv["pi"]
    assert rows[0]["stripe_payment_id"].startswith("inpay_") and rows[0]["fee_cents"] is None
    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 0)


def test_partial_refund_then_the_rest(sidecar: Sidecar) -> None:
    inv = paid_with_intent(sidecar)
    first = sp.refund(inv["ch"], inv["pi"], 2_500, status="pending")

    assert sidecar.post(sp.event("refund.created", first)).json()["outcome"] == "applied"
    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 2_500)

    sidecar.post(sp.event("refund.updated", {**first, "status": "succeeded"}))
    second = sp.refund(inv["ch"], inv["pi"], 7_500)
    sidecar.post(sp.event("refund.created", second))

    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 10_000)
    refunds = sidecar.db.execute("SELECT amount_cents, status FROM crm.refunds ORDER BY id").fetchall()
    assert refunds == [{"amount_cents": 2_500, "status": "succeeded"}, {"amount_cents": 7_500, "status": "succeeded"}]
    audit = sidecar.db.execute("SELECT from_status, to_status FROM crm.audit_log WHERE entity = 'refund' "
                               "ORDER BY id").fetchall()
    assert audit == [{"from_status": None, "to_status": "pending"},
                     {"from_status": "pending", "to_status": "succeeded"},
                     {"from_status": None, "to_status": "succeeded"}]


def test_charge_refunded_records_the_refunds_it_lists(sidecar: Sidecar) -> None:
    inv = paid_with_intent(sidecar)
    listed = sp.refund(inv["ch"], inv["pi"], 4_000)
    charge = sp.charge(inv["ch"], inv["pi"], 10_000, 4_000, [listed])

    assert sidecar.post(sp.event("charge.refunded", charge)).json()["outcome"] == "applied"
    # refund.created for the same refund arrives late: nothing more to record.
    assert sidecar.post(sp.event("refund.created", {**listed, "status": "pending"})).json()["outcome"] == "ignored"

    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 4_000)
    assert sidecar.db.execute("SELECT stripe_charge_id FROM crm.payments").fetchone() == {
        "stripe_charge_id": inv["ch"]}


def test_charge_refunded_without_a_refund_list_still_counts_the_amount(sidecar: Sidecar) -> None:
    inv = paid_with_intent(sidecar)

    sidecar.post(sp.event("charge.refunded", sp.charge(inv["ch"], inv["pi"], 10_000, 10_000)))

    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 10_000)


def test_a_failed_refund_no_longer_counts(sidecar: Sidecar) -> None:
    inv = paid_with_intent(sidecar)
    refund = sp.refund(inv["ch"], inv["pi"], 3_000, status="pending")
    sidecar.post(sp.event("refund.created", refund))

    sidecar.post(sp.event("refund.failed", {**refund, "status": "failed"}))

    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 0)


def test_refund_for_an_unknown_payment_is_unmatched(sidecar: Sidecar) -> None:
    resp = sidecar.post(sp.event("refund.created", sp.refund(sp.stripe_id("ch"), sp.stripe_id("pi"), 100)))

    assert (resp.status_code, resp.json()["outcome"]) == (200, "unmatched")
    assert sidecar.db.execute("SELECT count(*) AS n FROM crm.refunds").fetchone() == {"n": 0}


def test_refund_from_the_other_mode_changes_nothing(sidecar: Sidecar) -> None:
    inv = paid_with_intent(sidecar)
    evt = sp.event("refund.created", sp.refund(inv["ch"], inv["pi"], 100), livemode=True)

    assert sidecar.post(evt).json()["outcome"] == "rejected"
    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 0)


def test_a_late_charge_refunded_or_retried_refund_never_moves_the_refunded_total_back(sidecar: Sidecar) -> None:
    """Refunds of $30 then $20: the $50 cumulative charge.refunded first (no refunds.data, as
    real Stripe sends it since 2022-11-15), then a retried $30 refund.created, then an older
    $30 charge.refunded: $50 throughout."""
    inv = paid_with_intent(sidecar)
    thirty, twenty = sp.refund(inv["ch"], inv["pi"], 3_000), sp.refund(inv["ch"], inv["pi"], 2_000)
    charge_50 = {k: v for k, v in sp.charge(inv["ch"], inv["pi"], 10_000, 5_000).items() if k != "refunds"}
    charge_30 = {**charge_50, "amount_refunded": 3_000, "refunded": False}

    sidecar.post(sp.event("charge.refunded", charge_50, created=1_700_000_900))
    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 5_000)
    sidecar.post(sp.event("refund.created", thirty))
    sidecar.post(sp.event("charge.refunded", charge_30, created=1_700_000_800))
    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 5_000)
    sidecar.post(sp.event("refund.created", twenty))
    sidecar.post(sp.event("refund.created", thirty))  # a retry, same refund id
    assert invoice_amounts(sidecar, inv["invoice_id"]) == ("paid", 10_000, 5_000)
    assert sidecar.db.execute("SELECT count(*) AS n FROM crm.refunds").fetchone() == {"n": 2}


def test_a_refund_before_its_payment_is_applied_when_the_payment_arrives(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    pi, ch = sp.stripe_id("pi"), sp.stripe_id("ch")
    refund = sp.refund(ch, pi, 2_500)
    assert sidecar.post(sp.event("refund.created", refund)).json()["outcome"] == "unmatched"

    paid = sidecar.post(sp.event("invoice_payment.paid", sp.invoice_payment(inv["stripe_invoice_id"], pi, 10_000)))

    assert "1 earlier events applied" in paid.json()["detail"]
    assert invoice_amounts(sidecar, inv["invoice_id"])[2] == 2_500
    ledger = sidecar.db.execute("SELECT outcome, replayed_at IS NOT NULL AS late, detail FROM crm.stripe_events "
                                "WHERE type = 'refund.created'").fetchone()
    assert ledger is not None and ledger["outcome"] == "applied" and ledger["late"]
    # Delivered again: a duplicate, counted once.
    assert sidecar.post(sp.event("refund.created", refund)).json()["outcome"] == "ignored"
    assert invoice_amounts(sidecar, inv["invoice_id"])[2] == 2_500
