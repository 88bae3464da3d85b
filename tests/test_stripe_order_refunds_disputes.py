"""Refunds and disputes in Stripe's order, not the delivery's (issue 20, items 4 to 6 of the
order check), through the real sidecar over HTTP:

- a dispute's status moves only forward in Stripe's lifecycle: under_review, then a late
  charge.dispute.created (needs_response), changes nothing, duplicates included;
- a payment and its refund (refund.created and charge.refunded), and a payment and its dispute,
  delivered at the same moment 200 times each: every delivery is answered 200 (no deadlock),
  every refund is counted and every dispute linked to its payment (none left unmatched);
- refund rows and lost disputes are dated by Stripe's timestamps, so a late delivery lands on the
  right Collections day; a dispute's fee (its balance transactions) is in net.

Checked by hand against the old code: with lock_stripe_payment taking every id it is given
(sorted) the refund half deadlocked (the payment, replaying the unmatched refund.created, waits
for the charge's key that charge.refunded holds while it waits for the payment intent's: 503s);
without the lock in crm.apply_stripe_dispute_event 131 of 200 disputes stayed unmatched.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier
from typing import Any

import httpx

from db import queries_collections as qc
from tests import stripe_payloads as sp
from tests.fixtures.sidecar import TEST_SECRET, Sidecar, seed_invoice

ROUNDS = 200


def dispute(charge: str, pi: str, status: str = "needs_response", *, created: int = 1_700_000_500,
            balance_transactions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": "dp_" + charge[3:], "object": "dispute", "amount": 10_000, "charge": charge, "currency": "usd",
            "created": created, "balance_transactions": balance_transactions or [],
            "evidence_details": {"due_by": created + 7 * 86400, "has_evidence": status != "needs_response",
                                 "past_due": False, "submission_count": int(status != "needs_response")},
            "livemode": False, "metadata": {}, "payment_intent": pi, "reason": "fraudulent", "status": status}


def withdrawal(amount: int, fee: int, created: int) -> dict[str, Any]:
    return {"id": sp.stripe_id("txn"), "object": "balance_transaction", "amount": -amount, "fee": fee,
            "net": -amount - fee, "currency": "usd", "created": created, "type": "adjustment",
            "fee_details": [{"amount": fee, "currency": "usd", "description": "Dispute fee", "type": "stripe_fee"}]}


def paid(sidecar: Sidecar) -> dict[str, Any]:
    inv = seed_invoice(sidecar.db)
    pi, ch = sp.stripe_id("pi"), sp.stripe_id("ch")
    assert sidecar.post(sp.event("invoice_payment.paid", sp.invoice_payment(inv["stripe_invoice_id"], pi,
                                                                            10_000))).status_code == 200
    return {**inv, "pi": pi, "ch": ch}


def test_stripe_order_dispute_under_review_then_a_late_created_changes_nothing(sidecar: Sidecar) -> None:
    inv = paid(sidecar)
    created = sp.event("charge.dispute.created", dispute(inv["ch"], inv["pi"]), created=1_700_000_500)
    updated = sp.event("charge.dispute.updated", dispute(inv["ch"], inv["pi"], "under_review"), created=1_700_000_900)

    for evt in (updated, created, updated, created):  # as delivered: the update first, then duplicates
        assert sidecar.post(evt).status_code == 200

    rows = sidecar.db.execute("SELECT status, closed_at FROM crm.disputes").fetchall()
    assert rows == [{"status": "under_review", "closed_at": None}]
    outcomes = sidecar.db.execute("SELECT type, outcome, detail FROM crm.stripe_events WHERE type LIKE "
                                  "'charge.dispute.%' ORDER BY received_at").fetchall()
    assert [(o["type"], o["outcome"]) for o in outcomes] == [("charge.dispute.updated", "applied"),
                                                            ("charge.dispute.created", "ignored")]
    assert "under_review already" in outcomes[1]["detail"]
    # Forward still moves: the dispute lost closes it.
    closed = sp.event("charge.dispute.closed", dispute(inv["ch"], inv["pi"], "lost"), created=1_700_100_000)
    assert sidecar.post(closed).json()["outcome"] == "applied"
    assert sidecar.db.execute("SELECT status FROM crm.disputes").fetchone() == {"status": "lost"}


def _post_together(pool: ThreadPoolExecutor, clients: list[httpx.Client], events: list[dict[str, Any]]) -> list[int]:
    barrier = Barrier(len(events))
    bodies = [sp.body_of(e) for e in events]

    def post(i: int) -> int:
        headers = {"Stripe-Signature": sp.signature_header(bodies[i], TEST_SECRET),
                   "Content-Type": "application/json"}
        barrier.wait()
        return clients[i].post("/webhooks/stripe", content=bodies[i], headers=headers).status_code

    return list(pool.map(post, range(len(events))))


def test_stripe_order_payment_with_refund_and_payment_with_dispute_concurrently_no_deadlock_none_unmatched(
        sidecar: Sidecar) -> None:
    db = sidecar.db
    clients = [httpx.Client(base_url=sidecar.url, timeout=60, trust_env=False) for _ in range(3)]
    refund_invoices, dispute_invoices = [], []
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            for _ in range(ROUNDS):
                inv = seed_invoice(db)
                pi, ch = sp.stripe_id("pi"), sp.stripe_id("ch")
                refund = sp.refund(ch, pi, 4_000, status="pending")
                # Stripe's first refund event beats the payment (recorded unmatched, replayed by
                # the payment); the payment and the refund's next events then arrive together.
                assert sidecar.post(sp.event("refund.created", refund)).json()["outcome"] == "unmatched"
                statuses = _post_together(pool, clients, [
                    sp.event("invoice_payment.paid", sp.invoice_payment(inv["stripe_invoice_id"], pi, 10_000)),
                    sp.event("charge.refunded", sp.charge(ch, pi, 10_000, 4_000)),
                    sp.event("refund.updated", {**refund, "status": "succeeded"})])
                assert statuses == [200, 200, 200], statuses
                refund_invoices.append(inv["invoice_id"])

                inv = seed_invoice(db)
                pi, ch = sp.stripe_id("pi"), sp.stripe_id("ch")
                statuses = _post_together(pool, clients, [
                    sp.event("invoice_payment.paid", sp.invoice_payment(inv["stripe_invoice_id"], pi, 10_000)),
                    sp.event("charge.dispute.created", dispute(ch, pi))])
                assert statuses == [200, 200], statuses
                dispute_invoices.append(inv["invoice_id"])
    finally:
        for c in clients:
            c.close()

    refunded = db.execute("SELECT amount_refunded_cents AS r, count(*) AS n FROM crm.invoices WHERE id = ANY(%s) "
                          "GROUP BY 1", (refund_invoices,)).fetchall()
    assert refunded == [{"r": 4_000, "n": ROUNDS}]
    linked = db.execute("SELECT count(*) FILTER (WHERE invoice_id IS NULL) AS unmatched, count(*) AS n "
                        "FROM crm.disputes").fetchone()
    assert linked == {"unmatched": 0, "n": ROUNDS}
    assert db.execute("SELECT count(*) AS n FROM crm.stripe_events WHERE outcome = 'unmatched'").fetchone() == {"n": 0}
    shown = db.execute("SELECT count(*) AS n FROM crm.invoices WHERE id = ANY(%s) AND EXISTS (SELECT 1 FROM "
                       "crm.disputes d WHERE d.invoice_id = crm.invoices.id AND d.closed_at IS NULL)",
                       (dispute_invoices,)).fetchone()
    assert shown == {"n": ROUNDS}


def _day_row(db: Any, day: datetime) -> dict[str, Any]:
    qc.refresh_daily(db, "UTC")
    row = db.execute("SELECT * FROM crm.collections_daily WHERE day = %s", (day.date(),)).fetchone()
    return dict(row or {})


def test_stripe_order_refund_delivered_late_lands_on_the_day_stripe_made_it(sidecar: Sidecar) -> None:
    inv = paid(sidecar)
    made = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    refund = {**sp.refund(inv["ch"], inv["pi"], 2_500), "created": int(made.timestamp())}

    assert sidecar.post(sp.event("refund.created", refund)).json()["outcome"] == "applied"

    row = sidecar.db.execute("SELECT created_at FROM crm.refunds").fetchone()
    assert row == {"created_at": made}
    assert _day_row(sidecar.db, made)["refunded_cents"] == 2_500
    assert _day_row(sidecar.db, datetime.now(UTC)).get("refunded_cents", 0) == 0


def test_stripe_order_dispute_lost_late_is_dated_by_stripe_and_its_fee_is_in_net(sidecar: Sidecar) -> None:
    db = sidecar.db
    inv = paid(sidecar)
    now = datetime.now(UTC).replace(microsecond=0)
    opened, lost = now - timedelta(days=5), now - timedelta(days=2)
    t_open, t_lost = int(opened.timestamp()), int(lost.timestamp())
    txns = [withdrawal(10_000, 1_500, t_open)]
    before = qc.tiles(db, now.date(), now - timedelta(days=40), now, "UTC")

    sidecar.post(sp.event("charge.dispute.created", dispute(inv["ch"], inv["pi"], created=t_open), created=t_open))
    withdrawn = dispute(inv["ch"], inv["pi"], created=t_open, balance_transactions=txns)
    sidecar.post(sp.event("charge.dispute.funds_withdrawn", withdrawn, created=t_open + 1))
    closed = sp.event("charge.dispute.closed", dispute(inv["ch"], inv["pi"], "lost", created=t_open,
                                                       balance_transactions=txns), created=t_lost)
    late_created = sp.event("charge.dispute.created", dispute(inv["ch"], inv["pi"], created=t_open))
    for evt in (closed, late_created, closed):  # delivered days late, with a duplicate and a stale event
        assert sidecar.post(evt).status_code == 200

    row = db.execute("SELECT status, opened_at, closed_at, fee_cents FROM crm.disputes").fetchone()
    assert row == {"status": "lost", "opened_at": opened, "closed_at": lost, "fee_cents": 1_500}
    assert _day_row(db, lost)["disputes_lost_cents"] == 10_000
    assert _day_row(db, opened)["dispute_fee_cents"] == 1_500
    after = qc.tiles(db, now.date(), now - timedelta(days=40), now, "UTC")
    # The payment's own fee is not known yet (no balance transaction fetched): only the dispute's.
    assert after["fee_cents"] - before["fee_cents"] == 1_500
    assert before["net_cents"] - after["net_cents"] == 10_000 + 1_500
