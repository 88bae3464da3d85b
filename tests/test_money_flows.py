"""Every cent, end to end: the real sidecar over HTTP, a real Postgres, the sandbox as Stripe,
and the webhook endpoint registered through the Settings code path (no extra subscriptions).

Refunds of $30 and $20 in every delivery order, with duplicates, total $50 and a reconcile run
changes nothing; a refund delivered before its payment, whose event is dropped, is applied by
reconcile; a paid invoice has its Stripe fee and net after one worker pass; a declined card
shows Stripe's decline code and message in the invoice view.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from crm.config.settings import load_settings
from crm.money.payment_details import payment_details_pass
from crm.stripe.event_types import HANDLED_EVENT_TYPES
from crm.stripe.gateway import as_json_object
from crm.stripe.reconcile import run_reconcile
from db import queries_collections as collections
from sandbox.testing import RunningSandbox
from tests import stripe_payloads as sp
from tests.fixtures.sidecar import SidecarServer
from tests.reconcile_helpers import deliveries_settled, open_invoice, wait_until
from tests.send_helpers import stripe_client
from tests.shown import shown as read
from ui.settings_actions import register_webhook

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def wired(db: Conn, crm_sandbox: RunningSandbox, sidecar_server: SidecarServer) -> RunningSandbox:
    """The sidecar registered at the sandbox exactly as the owner does it in Settings."""
    from webhook.signing_secrets import SECRETS

    outcome = register_webhook(load_settings(db), f"{sidecar_server.url}/webhooks/stripe", None)
    assert outcome.ok, outcome.message
    SECRETS.clear()
    return crm_sandbox


def post_signed(db: Conn, sidecar_url: str, event: dict[str, Any]) -> httpx.Response:
    secret = str(load_settings(db).stripe_webhook_secrets("test")[0])
    body = sp.body_of(event)
    return httpx.post(f"{sidecar_url}/webhooks/stripe", content=body, trust_env=False, timeout=30,
                      headers={"Content-Type": "application/json",
                               "Stripe-Signature": sp.signature_header(body, secret)})


def sandbox_events(sbx: RunningSandbox) -> list[dict[str, Any]]:
    """The events the endpoint subscribes to, oldest first, as Stripe rendered them."""
    listed = stripe_client(sbx).v1.events.list({"limit": 100})
    events = [as_json_object(e.to_dict()) for e in listed.auto_paging_iter()]
    return sorted((e for e in events if e["type"] in HANDLED_EVENT_TYPES), key=lambda e: e["created"])


def pay_and_refund(db: Conn, sbx: RunningSandbox, refunds: tuple[int, ...] = (3_000, 2_000)) -> dict[str, Any]:
    inv = open_invoice(db, sbx, amount=10_000)
    sbx.control.pay_invoice(inv["stripe_invoice_id"])
    client = stripe_client(sbx)
    inpay = next(p for p in client.v1.invoice_payments.list({"invoice": inv["stripe_invoice_id"]}).data
                 if p.status == "paid")
    for amount in refunds:
        client.v1.refunds.create({"payment_intent": inpay.payment.payment_intent, "amount": amount})
    return {**inv, "pi": inpay.payment.payment_intent}


def money_of(db: Conn, invoice_id: int) -> dict[str, Any]:
    row = db.execute("SELECT status, amount_paid_cents, amount_refunded_cents FROM crm.invoices WHERE id = %s",
                     (invoice_id,)).fetchone()
    assert row is not None
    return dict(row)


def forget_what_the_crm_learned(db: Conn, invoice_id: int) -> None:
    """Back to the invoice as Send left it (open, nothing paid), to replay another order."""
    for table in ("stripe_events", "audit_log", "refunds", "payment_failures", "payment_intent_links", "payments"):
        db.execute(f"DELETE FROM crm.{table}")
    db.execute("UPDATE crm.invoices SET status = 'open', amount_paid_cents = 0, amount_refunded_cents = 0, "
               "paid_at = NULL, attention = NULL, attention_detail = NULL WHERE id = %s", (invoice_id,))


def collected_now(db: Conn) -> dict[str, Any]:
    now = datetime.now(UTC) + timedelta(seconds=1)
    return collections.tiles(db, now.date(), now - timedelta(days=1), now)


def orders(events: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    refund_types = {"refund.created", "refund.updated", "charge.refunded"}
    money = [e for e in events if e["type"] in refund_types]
    cumulative = [e for e in money if e["type"] == "charge.refunded"]
    out = [("as created", list(events)), ("reversed: refunds before their payment", list(reversed(events))),
           ("the $50 charge.refunded first, then the rest", [cumulative[-1], *events])]
    for seed in (1, 2, 3):
        rng = random.Random(seed)
        shuffled = events + rng.sample(money, len(money))  # every refund event delivered twice
        rng.shuffle(shuffled)
        out.append((f"shuffled with duplicates (seed {seed})", shuffled))
    return out


def test_refunds_of_30_and_20_in_every_order_with_duplicates_total_50_and_reconcile_changes_nothing(
        db: Conn, wired: RunningSandbox, sidecar_server: SidecarServer) -> None:
    # First as the sandbox delivers them: every event twice, half of them late (reordered).
    wired.control.set_delivery_faults(service="stripe", duplicate_rate=1.0, delay_rate=0.5, delay_s=0.5, seed=7)
    inv = pay_and_refund(db, wired)
    wait_until(lambda: deliveries_settled(wired), what="deliveries settled")
    assert money_of(db, inv["invoice_id"]) == {"status": "paid", "amount_paid_cents": 10_000,
                                               "amount_refunded_cents": 5_000}
    events = sandbox_events(wired)
    assert not any("refunds" in e["data"]["object"] for e in events if e["type"] == "charge.refunded")

    for name, order in orders(events):
        forget_what_the_crm_learned(db, inv["invoice_id"])
        answers = [post_signed(db, sidecar_server.url, e).status_code for e in order]
        assert set(answers) == {200}, name
        assert money_of(db, inv["invoice_id"]) == {"status": "paid", "amount_paid_cents": 10_000,
                                                   "amount_refunded_cents": 5_000}, name
        refunds = db.execute("SELECT amount_cents, status FROM crm.refunds ORDER BY amount_cents").fetchall()
        assert refunds == [{"amount_cents": 2_000, "status": "succeeded"},
                           {"amount_cents": 3_000, "status": "succeeded"}], name
        assert db.execute("SELECT count(*) AS n FROM crm.stripe_events WHERE outcome = 'unmatched'").fetchone() == {
            "n": 0}, name
        tiles = collected_now(db)
        assert (tiles["gross_cents"], tiles["refunded_cents"], tiles["collected_cents"]) == (10_000, 5_000, 5_000)

    payment_details_pass()
    before = {t: db.execute(f"SELECT * FROM crm.{t} ORDER BY id").fetchall() for t in ("invoices", "payments",
                                                                                       "refunds", "audit_log")}
    report = run_reconcile("cli")
    assert report.ok, report.errors
    assert report.repairs == []
    assert {t: db.execute(f"SELECT * FROM crm.{t} ORDER BY id").fetchall() for t in before} == before


def test_a_refund_delivered_before_its_payment_whose_event_was_dropped_is_applied_by_reconcile(
        db: Conn, wired: RunningSandbox, sidecar_server: SidecarServer) -> None:
    wired.control.set_delivery_faults(service="stripe", drop_rate=1.0)  # we deliver, in our order
    inv = pay_and_refund(db, wired, refunds=(3_000,))
    events = sandbox_events(wired)
    refund_events = [e for e in events if e["type"] in ("refund.created", "refund.updated", "charge.refunded")]
    payment_last = [e for e in events if e["type"] in ("invoice.paid", "invoice.payment_succeeded")]

    for event in [*refund_events, *payment_last]:  # invoice_payment.paid is lost
        assert post_signed(db, sidecar_server.url, event).status_code == 200
    assert money_of(db, inv["invoice_id"]) == {"status": "paid", "amount_paid_cents": 10_000,
                                               "amount_refunded_cents": 0}
    unmatched = db.execute("SELECT id FROM crm.stripe_events WHERE outcome = 'unmatched' ORDER BY id").fetchall()
    assert {r["id"] for r in unmatched} == {e["id"] for e in refund_events}

    report = run_reconcile("cli")

    assert report.ok, report.errors
    assert money_of(db, inv["invoice_id"])["amount_refunded_cents"] == 3_000
    ledger = db.execute("SELECT outcome, replayed_at IS NOT NULL AS late FROM crm.stripe_events WHERE id = ANY(%s)",
                        ([e["id"] for e in refund_events],)).fetchall()
    assert {r["outcome"] for r in ledger} <= {"applied", "ignored"} and any(r["late"] for r in ledger)
    payment = db.execute("SELECT stripe_payment_intent_id, stripe_payment_id FROM crm.payments").fetchall()
    assert payment == [{"stripe_payment_intent_id": inv["pi"], "stripe_payment_id": payment[0]["stripe_payment_id"]}]
    assert payment[0]["stripe_payment_id"].startswith("inpay_")
    again = run_reconcile("cli")
    assert again.ok and again.repairs == [] and money_of(db, inv["invoice_id"])["amount_refunded_cents"] == 3_000


def test_a_paid_invoice_gets_its_stripe_fee_and_net_in_one_worker_pass_and_collections_fee_tile_matches(
        db: Conn, wired: RunningSandbox) -> None:
    first = pay_and_refund(db, wired, refunds=(1_500,))
    second = open_invoice(db, wired, amount=4_321)
    wired.control.pay_invoice(second["stripe_invoice_id"])
    wait_until(lambda: deliveries_settled(wired), what="deliveries settled")
    assert db.execute("SELECT count(*) AS n FROM crm.payments WHERE fee_cents IS NULL").fetchone() == {"n": 2}

    counts = payment_details_pass()

    assert counts["fees_recorded"] == 2 and counts["refund_fees_recorded"] == 1, counts
    client = stripe_client(wired)
    txns = [t for t in client.v1.balance_transactions.list({"limit": 100}).data]
    charges = {t.source: t for t in txns if t.type == "charge"}
    rows = db.execute("SELECT stripe_charge_id, fee_cents, net_cents, amount_cents FROM crm.payments").fetchall()
    assert {r["stripe_charge_id"]: (r["fee_cents"], r["net_cents"]) for r in rows} == {
        src: (t.fee, t.net) for src, t in charges.items()}
    assert {r["amount_cents"]: r["fee_cents"] for r in rows} == {10_000: 320, 4_321: 155}  # 2.9% + 30c
    refund = db.execute("SELECT fee_cents, net_cents FROM crm.refunds").fetchone()
    assert refund == {"fee_cents": 0, "net_cents": -1_500}
    tiles = collected_now(db)
    assert tiles["fee_cents"] == sum(abs(t.fee) for t in txns)
    assert tiles["net_cents"] == 10_000 + 4_321 - 1_500 - sum(abs(t.fee) for t in txns)
    weekly = collections.collected_vs_invoiced_weekly(db, datetime.now(UTC) - timedelta(weeks=2),
                                                      datetime.now(UTC) + timedelta(days=1), "UTC")
    assert sum(int(w["fee_cents"]) for w in weekly) == tiles["fee_cents"]
    assert first["invoice_id"] != second["invoice_id"]
    assert payment_details_pass()["fees_recorded"] == 0  # fetched once


def test_a_declined_card_shows_the_decline_code_and_message_in_the_invoice_view(
        db: Conn, wired: RunningSandbox, app_as: Callable[..., Any]) -> None:
    inv = open_invoice(db, wired, amount=10_000)
    hosted = stripe_client(wired).v1.invoices.retrieve(inv["stripe_invoice_id"]).hosted_invoice_url
    for card in ("4000000000000002", "4000000000009995"):
        page = httpx.post(f"{hosted}/pay", data={"card_number": card}, trust_env=False)
        assert page.status_code == 402 and "declined" in page.text
    wait_until(lambda: deliveries_settled(wired), what="deliveries settled")
    payment_details_pass()  # links the declined payment intents; their stored events apply

    failures = db.execute("SELECT code, decline_code, message FROM crm.payment_failures ORDER BY decline_code")
    assert failures.fetchall() == [
        {"code": "card_declined", "decline_code": "generic_decline", "message": "Your card was declined."},
        {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card was declined."}]
    at = app_as("staff", "pages/invoices.py")
    at.session_state["open_invoice"] = inv["invoice_id"]  # what a click on its row does
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = read(" ".join(e.value for e in [*at.error, *at.warning]))
    assert "Your card was declined." in shown and "card_declined" in shown
    assert "generic_decline" in shown and "insufficient_funds" in shown
    activity = app_as("staff", "pages/activity.py")
    assert not activity.exception
    assert any("insufficient_funds" in str(df.value.to_dict()) for df in activity.dataframe)


def test_declines_arriving_after_their_invoice_payment_apply_at_once(db: Conn, sidecar_server: SidecarServer,
                                                                     sidecar: Any) -> None:
    from tests.fixtures.sidecar import seed_invoice

    inv = seed_invoice(db)
    pi = sp.stripe_id("pi")
    open_payment = {**sp.invoice_payment(inv["stripe_invoice_id"], pi, 10_000), "status": "open", "amount_paid": None}
    declined = {"id": pi, "object": "payment_intent", "status": "requires_payment_method", "latest_charge": "ch_1",
                "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds",
                                       "message": "Your card has insufficient funds.", "charge": "ch_1",
                                       "type": "card_error"}}
    assert sidecar.post(sp.event("payment_intent.payment_failed", declined)).json()["outcome"] == "unmatched"
    assert sidecar.post(sp.event("invoice_payment.paid", open_payment)).json()["outcome"] == "applied"
    row = db.execute("SELECT last_payment_error, attention FROM crm.invoices WHERE id = %s",
                     (inv["invoice_id"],)).fetchone()
    assert row == {"last_payment_error": "Your card has insufficient funds. (card_declined: insufficient_funds)",
                   "attention": "payment_failed"}
