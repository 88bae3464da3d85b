"""The sidecar applies signed invoice events through real HTTP to a real Postgres:
paid flips the invoice and completes the job, reminders stop, order and repeats are safe."""

from __future__ import annotations

from typing import Any

from tests import stripe_payloads as sp
from tests.fixtures.sidecar import Sidecar, seed_invoice, seed_job, seed_reminders


def invoice_row(sidecar: Sidecar, invoice_id: int) -> dict[str, Any]:
    row = sidecar.db.execute("SELECT * FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None
    return row


def job_row(sidecar: Sidecar, job_id: int) -> dict[str, Any]:
    row = sidecar.db.execute("SELECT * FROM crm.jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row


def paid_event(inv: dict[str, Any], **kw: Any) -> dict[str, Any]:
    obj = sp.invoice(inv["stripe_invoice_id"], status="paid", amount_due=inv["amount_due"],
                     amount_paid=inv["amount_due"], **kw)
    return sp.event("invoice.paid", obj)


def test_invoice_paid_flips_invoice_and_completes_the_job(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    evt = paid_event(inv, hosted_invoice_url="https://pay.example/i/1", number="ACME-0001")

    resp = sidecar.post(evt)

    assert resp.status_code == 200, resp.text
    assert resp.json()["outcome"] == "applied"
    row = invoice_row(sidecar, inv["invoice_id"])
    assert row["status"] == "paid" and row["paid_at"] is not None
    assert row["amount_paid_cents"] == 10_000
    assert row["hosted_invoice_url"] == "https://pay.example/i/1" and row["stripe_invoice_number"] == "ACME-0001"
    job = job_row(sidecar, inv["job_id"])
    assert job["status"] == "completed" and job["completed_by_event_id"] == evt["id"]
    audit = sidecar.db.execute(
        "SELECT entity, entity_id, from_status, to_status, actor_type, actor, stripe_event_id FROM crm.audit_log "
        "WHERE entity IN ('invoice', 'job') ORDER BY id").fetchall()
    assert audit == [
        {"entity": "invoice", "entity_id": inv["invoice_id"], "from_status": "open", "to_status": "paid",
         "actor_type": "stripe_event", "actor": evt["id"], "stripe_event_id": evt["id"]},
        {"entity": "job", "entity_id": inv["job_id"], "from_status": "in_progress", "to_status": "completed",
         "actor_type": "stripe_event", "actor": evt["id"], "stripe_event_id": evt["id"]},
    ]
    ledger = sidecar.db.execute("SELECT * FROM crm.stripe_events").fetchall()
    assert [(r["id"], r["outcome"], r["invoice_id"], r["mode"]) for r in ledger] == [
        (evt["id"], "applied", inv["invoice_id"], "test")]
    payments = sidecar.db.execute("SELECT amount_cents, mode, stripe_payment_id FROM crm.payments").fetchall()
    assert payments == [{"amount_cents": 10_000, "mode": "test", "stripe_payment_id": evt["id"]}]


def test_job_with_deposit_and_final_completes_only_when_both_are_paid(sidecar: Sidecar) -> None:
    job = seed_job(sidecar.db)
    deposit = seed_invoice(sidecar.db, job, kind="deposit", amount_due=5_000)
    final = seed_invoice(sidecar.db, job, kind="final", amount_due=20_000)

    assert sidecar.post(paid_event(deposit)).json()["outcome"] == "applied"
    assert job_row(sidecar, job["job_id"])["status"] == "in_progress"

    last = paid_event(final)
    assert sidecar.post(last).json()["outcome"] == "applied"
    done = job_row(sidecar, job["job_id"])
    assert done["status"] == "completed" and done["completed_by_event_id"] == last["id"]


def test_paid_deposit_does_not_complete_a_job_whose_final_invoice_is_a_draft(sidecar: Sidecar) -> None:
    job = seed_job(sidecar.db)
    deposit = seed_invoice(sidecar.db, job, kind="deposit", amount_due=5_000)
    seed_invoice(sidecar.db, job, kind="final", status="draft", with_stripe_id=False)

    assert sidecar.post(paid_event(deposit)).json()["outcome"] == "applied"

    assert job_row(sidecar, job["job_id"])["status"] == "in_progress"


def test_void_invoice_does_not_block_completion(sidecar: Sidecar) -> None:
    job = seed_job(sidecar.db)
    seed_invoice(sidecar.db, job, status="void", with_stripe_id=True)
    sidecar.db.execute("UPDATE crm.invoices SET voided_at = now() WHERE status = 'void'")
    live_one = seed_invoice(sidecar.db, job)

    sidecar.post(paid_event(live_one))

    assert job_row(sidecar, job["job_id"])["status"] == "completed"


def test_voiding_the_last_unpaid_invoice_completes_the_job(sidecar: Sidecar) -> None:
    job = seed_job(sidecar.db)
    paid = seed_invoice(sidecar.db, job)
    other = seed_invoice(sidecar.db, job)
    sidecar.post(paid_event(paid))
    assert job_row(sidecar, job["job_id"])["status"] == "in_progress"

    voided = sp.event("invoice.voided", sp.invoice(other["stripe_invoice_id"], status="void"))
    assert sidecar.post(voided).json()["outcome"] == "applied"

    assert invoice_row(sidecar, other["invoice_id"])["status"] == "void"
    assert job_row(sidecar, job["job_id"])["completed_by_event_id"] == voided["id"]


def test_paid_stops_reminders_and_queues_resend_cancellations(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    ids = seed_reminders(sidecar.db, inv["invoice_id"])

    sidecar.post(paid_event(inv))

    rows = {r["id"]: r for r in sidecar.db.execute("SELECT * FROM crm.reminders").fetchall()}
    for status in ("pending", "queued"):
        assert rows[ids[status]]["status"] == "cancelled"
        assert rows[ids[status]]["cancel_reason"] == "paid"
        assert rows[ids[status]]["resend_cancel"] is None
    scheduled = rows[ids["scheduled"]]
    assert (scheduled["status"], scheduled["resend_cancel"], scheduled["cancel_reason"]) == (
        "scheduled", "requested", "paid")
    assert scheduled["next_attempt_at"] is not None
    sent = rows[ids["sent"]]
    assert (sent["status"], sent["resend_cancel"], sent["cancel_reason"]) == ("sent", None, None)


def test_payment_succeeded_after_paid_is_a_no_op(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    sidecar.post(paid_event(inv))
    obj = sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000)

    resp = sidecar.post(sp.event("invoice.payment_succeeded", obj))

    assert resp.status_code == 200 and resp.json()["outcome"] == "ignored"
    assert sidecar.db.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'invoice'").fetchone() == {
        "n": 1}
    assert sidecar.db.execute("SELECT sum(amount_cents) AS s FROM crm.payments").fetchone() == {"s": 10_000}


def test_finalized_after_paid_changes_no_status_but_fills_missing_links(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    sidecar.post(paid_event(inv))
    late = sp.invoice(inv["stripe_invoice_id"], status="open", number="ACME-0042",
                      hosted_invoice_url="https://pay.example/i/42", invoice_pdf="https://pay.example/i/42.pdf")

    resp = sidecar.post(sp.event("invoice.finalized", late))

    assert resp.json()["outcome"] == "applied"
    row = invoice_row(sidecar, inv["invoice_id"])
    assert row["status"] == "paid"
    assert (row["stripe_invoice_number"], row["hosted_invoice_url"], row["invoice_pdf_url"]) == (
        "ACME-0042", "https://pay.example/i/42", "https://pay.example/i/42.pdf")
    assert sidecar.db.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'invoice'").fetchone() == {
        "n": 1}


def test_links_already_set_are_never_overwritten(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    sidecar.db.execute("UPDATE crm.invoices SET hosted_invoice_url = 'https://pay.example/original'")

    sidecar.post(sp.event("invoice.updated", sp.invoice(inv["stripe_invoice_id"],
                                                        hosted_invoice_url="https://evil.example/")))

    assert invoice_row(sidecar, inv["invoice_id"])["hosted_invoice_url"] == "https://pay.example/original"


def test_voided_after_paid_leaves_it_paid(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    ids = seed_reminders(sidecar.db, inv["invoice_id"])
    sidecar.post(paid_event(inv))

    resp = sidecar.post(sp.event("invoice.voided", sp.invoice(inv["stripe_invoice_id"], status="void")))

    assert resp.json()["outcome"] == "ignored"
    row = invoice_row(sidecar, inv["invoice_id"])
    assert row["status"] == "paid" and row["voided_at"] is None
    reasons = {r["cancel_reason"] for r in sidecar.db.execute(
        "SELECT cancel_reason FROM crm.reminders WHERE id <> %s", (ids["sent"],)).fetchall()}
    assert reasons == {"paid"}


def test_paid_arriving_before_finalized_ends_paid(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db, status="sending")
    finalized = sp.event("invoice.finalized", sp.invoice(inv["stripe_invoice_id"], status="open",
                                                         hosted_invoice_url="https://pay.example/i/7"))
    sidecar.post(paid_event(inv))
    sidecar.post(finalized)

    row = invoice_row(sidecar, inv["invoice_id"])
    assert row["status"] == "paid" and row["hosted_invoice_url"] == "https://pay.example/i/7"
    transitions = sidecar.db.execute("SELECT from_status, to_status FROM crm.audit_log WHERE entity = 'invoice'"
                                     ).fetchall()
    assert transitions == [{"from_status": "sending", "to_status": "paid"}]


def test_payment_failed_is_recorded_and_invoice_stays_open(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    failed = sp.event("invoice.payment_failed", sp.invoice(inv["stripe_invoice_id"], attempt_count=1))

    assert sidecar.post(failed).json()["outcome"] == "applied"

    row = invoice_row(sidecar, inv["invoice_id"])
    assert row["status"] == "open" and row["attention"] == "payment_failed"
    assert row["last_payment_error"] == "A payment attempt failed (attempt 1)"
    sidecar.post(paid_event(inv))
    row = invoice_row(sidecar, inv["invoice_id"])
    assert row["status"] == "paid" and row["attention"] is None and row["last_payment_error"] is not None


def test_marked_uncollectible_cancels_reminders_and_does_not_complete_the_job(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    ids = seed_reminders(sidecar.db, inv["invoice_id"])

    sidecar.post(sp.event("invoice.marked_uncollectible", sp.invoice(inv["stripe_invoice_id"],
                                                                     status="uncollectible")))

    assert invoice_row(sidecar, inv["invoice_id"])["status"] == "uncollectible"
    assert job_row(sidecar, inv["job_id"])["status"] == "in_progress"
    pending = sidecar.db.execute("SELECT status, cancel_reason FROM crm.reminders WHERE id = %s",
                                 (ids["pending"],)).fetchone()
    assert pending == {"status": "cancelled", "cancel_reason": "uncollectible"}


def test_partial_payments_are_recorded_and_the_invoice_stays_open(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    stripe_id = inv["stripe_invoice_id"]
    partial = sp.event("invoice.updated", sp.invoice(stripe_id, status="open", amount_paid=4_000))

    assert sidecar.post(partial).json()["outcome"] == "applied"
    row = invoice_row(sidecar, inv["invoice_id"])
    assert (row["status"], row["amount_paid_cents"]) == ("open", 4_000)

    # The InvoicePayment for those 4,000 arrives later: it replaces the amount, not adds to it.
    pi = sp.stripe_id("pi")
    assert sidecar.post(sp.event("invoice_payment.paid", sp.invoice_payment(stripe_id, pi, 4_000))
                        ).json()["outcome"] == "applied"
    assert invoice_row(sidecar, inv["invoice_id"])["amount_paid_cents"] == 4_000

    sidecar.post(paid_event(inv))
    row = invoice_row(sidecar, inv["invoice_id"])
    assert (row["status"], row["amount_paid_cents"]) == ("paid", 10_000)
    payments = sidecar.db.execute("SELECT amount_cents, stripe_payment_intent_id FROM crm.payments ORDER BY id"
                                  ).fetchall()
    assert payments == [{"amount_cents": 4_000, "stripe_payment_intent_id": pi},
                        {"amount_cents": 6_000, "stripe_payment_intent_id": None}]


def test_unknown_invoice_is_recorded_unmatched_and_acknowledged(sidecar: Sidecar) -> None:
    evt = sp.event("invoice.paid", sp.invoice(sp.stripe_id("in"), status="paid", amount_paid=10_000))

    resp = sidecar.post(evt)

    assert resp.status_code == 200 and resp.json()["outcome"] == "unmatched"
    ledger = sidecar.db.execute("SELECT outcome, invoice_id, detail FROM crm.stripe_events").fetchone()
    assert ledger is not None and ledger["outcome"] == "unmatched" and ledger["invoice_id"] is None
    assert sidecar.db.execute("SELECT count(*) AS n FROM crm.audit_log").fetchone() == {"n": 0}
    assert sidecar.post(evt).json()["outcome"] == "duplicate"


def test_metadata_links_an_invoice_whose_stripe_id_was_not_stored(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db, status="sending", with_stripe_id=False)
    stripe_id = sp.stripe_id("in")
    obj = sp.invoice(stripe_id, status="paid", amount_paid=10_000, crm_invoice_id=inv["invoice_id"],
                     crm_job_id=inv["job_id"])

    assert sidecar.post(sp.event("invoice.paid", obj)).json()["outcome"] == "applied"

    row = invoice_row(sidecar, inv["invoice_id"])
    assert (row["status"], row["stripe_invoice_id"]) == ("paid", stripe_id)


def test_metadata_does_not_link_an_invoice_tied_to_another_stripe_invoice(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db)
    obj = sp.invoice(sp.stripe_id("in"), status="paid", amount_paid=10_000, crm_invoice_id=inv["invoice_id"])

    assert sidecar.post(sp.event("invoice.paid", obj)).json()["outcome"] == "unmatched"
    assert invoice_row(sidecar, inv["invoice_id"])["status"] == "open"


def test_event_from_the_other_mode_is_recorded_and_changes_nothing(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db, mode="test")
    obj = sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000, livemode=True)
    evt = sp.event("invoice.paid", obj, livemode=True)

    resp = sidecar.post(evt)  # signed with the live secret

    assert resp.status_code == 200 and resp.json()["outcome"] == "rejected"
    assert invoice_row(sidecar, inv["invoice_id"])["status"] == "open"
    ledger = sidecar.db.execute("SELECT outcome, mode, invoice_id FROM crm.stripe_events").fetchone()
    assert ledger == {"outcome": "rejected", "mode": "live", "invoice_id": inv["invoice_id"]}
    assert sidecar.db.execute("SELECT count(*) AS n FROM crm.payments").fetchone() == {"n": 0}


def test_other_event_types_are_recorded_and_acknowledged(sidecar: Sidecar) -> None:
    evt = sp.event("customer.created", {"id": "cus_123", "object": "customer"})

    resp = sidecar.post(evt)

    assert resp.status_code == 200 and resp.json()["outcome"] == "ignored"
    assert sidecar.db.execute("SELECT type, outcome FROM crm.stripe_events").fetchall() == [
        {"type": "customer.created", "outcome": "ignored"}]
