"""The reconciler against the sandbox and a real Postgres: missed events are applied once,
drift is repaired with audited synthetic events, modes never mix, runs exclude each other,
and a failed run keeps the checkpoint. The pure rules are tested without I/O first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from crm.stripe.reconcile import (
    drift_repair,
    latest_runs,
    listing_start,
    next_checkpoint,
    repair_event_id,
    run_reconcile,
)
from ops.cli import main
from sandbox.testing import RunningSandbox
from tests.fixtures.sidecar import seed_invoice
from tests.reconcile_helpers import open_invoice, status_of
from tests.send_helpers import stripe_client

Conn = psycopg.Connection[dict[str, Any]]
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------- pure rules

def test_listing_starts_at_the_checkpoint_minus_the_overlap_within_the_lookback() -> None:
    assert listing_start(None, NOW) == NOW - timedelta(days=30)
    assert listing_start(NOW - timedelta(hours=1), NOW) == NOW - timedelta(hours=1, minutes=5)
    assert listing_start(NOW - timedelta(days=40), NOW) == NOW - timedelta(days=30)
    assert listing_start(NOW, NOW, overlap_s=60, lookback_days=1) == NOW - timedelta(minutes=1)


def test_checkpoint_moves_to_the_newest_event_or_stays_before_the_oldest_failure() -> None:
    t = int(NOW.timestamp())
    assert next_checkpoint(None, [t - 10, t], []) == NOW
    assert next_checkpoint(NOW, [t - 100], []) == NOW  # never backwards
    assert next_checkpoint(NOW, [], []) == NOW
    assert next_checkpoint(None, [], []) is None
    assert next_checkpoint(NOW, [t - 50, t - 20, t], [t - 20, t]) == NOW - timedelta(seconds=20)


@pytest.mark.parametrize(("crm", "paid", "stripe", "stripe_paid", "expected"), [
    ("open", 0, "paid", 10_000, "invoice.paid"),
    ("sending", 0, "paid", 10_000, "invoice.paid"),
    ("open", 0, "void", 0, "invoice.voided"),
    ("open", 0, "uncollectible", 0, "invoice.marked_uncollectible"),
    ("uncollectible", 0, "paid", 10_000, "invoice.paid"),
    ("open", 0, "open", 2_500, "invoice.updated"),  # a partial payment
    ("open", 2_500, "open", 2_500, None),
    ("open", 0, "open", 0, None),
    ("sending", 0, "open", 0, None),  # a Send in progress (or stopped): Send's business, not ours
    ("uncollectible", 0, "open", 0, None),  # never backwards
    ("paid", 10_000, "open", 0, None),
    ("void", 0, "paid", 10_000, None),
])
def test_drift_repair_only_moves_forward(crm: str, paid: int, stripe: str, stripe_paid: int,
                                         expected: str | None) -> None:
    repair = drift_repair(crm, paid, stripe, stripe_paid)
    assert (repair.event_type if repair else None) == expected


def test_repair_ids_are_deterministic_per_status_and_amount() -> None:
    a = repair_event_id({"id": "in_1Abc", "status": "open", "amount_paid": 2500})
    assert a == "evt_reconcile_in_1Abc_open_2500"
    assert a != repair_event_id({"id": "in_1Abc", "status": "paid", "amount_paid": 10000})


# ---------------------------------------------------------------- against the sandbox

def audit_count(db: Conn) -> int:
    row = db.execute("SELECT count(*) AS n FROM crm.audit_log").fetchone()
    assert row is not None
    return int(row["n"])


def test_missed_events_are_applied_once_and_a_second_run_finds_nothing_new(db: Conn,
                                                                           crm_sandbox: RunningSandbox) -> None:
    full = open_invoice(db, crm_sandbox, amount=10_000)
    partial = open_invoice(db, crm_sandbox, amount=8_000)
    crm_sandbox.control.pay_invoice(full["stripe_invoice_id"])
    crm_sandbox.control.pay_invoice(partial["stripe_invoice_id"], amount=3_000)
    # No webhook endpoint: every event was "lost"; the CRM knows nothing yet.
    assert status_of(db, full["invoice_id"])["status"] == "open"

    report = run_reconcile("cli")

    assert report.ok and not report.skipped, report.errors
    assert status_of(db, full["invoice_id"])["status"] == "paid"
    assert status_of(db, partial["invoice_id"]) | {"paid_at": None} == {
        "status": "open", "amount_paid_cents": 3_000, "paid_at": None}
    assert db.execute("SELECT status FROM crm.jobs WHERE id = %s", (full["job_id"],)).fetchone() == {
        "status": "completed"}
    sources = db.execute("SELECT DISTINCT source FROM crm.stripe_events").fetchall()
    assert sources == [{"source": "reconcile"}]
    counts = report.counts()
    assert counts["events_applied"] >= 2 and counts["invoices_repaired"] == 0 and counts["invoices_checked"] == 1
    assert any("applied" in line for line in report.lines())
    audits = audit_count(db)

    again = run_reconcile("cli")

    assert again.ok and again.counts()["events_applied"] == 0
    # The overlap lists the same events again; the ledger absorbs them.
    assert again.counts()["events_duplicate"] == counts["events_seen"]
    assert audit_count(db) == audits
    runs = latest_runs(db, 5)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert runs[0]["listed_since"] > runs[1]["listed_since"] and runs[0]["checkpoint"] == runs[1]["checkpoint"]


def test_drift_past_the_checkpoint_is_repaired_with_audited_synthetic_events(db: Conn,
                                                                            crm_sandbox: RunningSandbox) -> None:
    to_pay = open_invoice(db, crm_sandbox, amount=10_000)
    to_void = open_invoice(db, crm_sandbox, amount=4_000)
    in_part = open_invoice(db, crm_sandbox, amount=9_000)
    crm_sandbox.control.pay_invoice(to_pay["stripe_invoice_id"])
    stripe_client(crm_sandbox).v1.invoices.void_invoice(to_void["stripe_invoice_id"])
    crm_sandbox.control.pay_invoice(in_part["stripe_invoice_id"], amount=4_000)
    # A checkpoint later than every event: the listing finds nothing, only the comparison can.
    db.execute("INSERT INTO crm.reconcile_runs (mode, actor, status, finished_at, checkpoint) "
               "VALUES ('test', 'earlier', 'succeeded', now(), now() + interval '1 day')")

    report = run_reconcile("owner@acme-hvac.test")

    assert report.ok, report.errors
    assert report.counts()["events_seen"] == 0
    assert report.counts()["invoices_checked"] == 3 and report.counts()["invoices_repaired"] == 3
    assert status_of(db, to_pay["invoice_id"])["status"] == "paid"
    assert status_of(db, to_void["invoice_id"])["status"] == "void"
    assert status_of(db, in_part["invoice_id"]) | {"paid_at": None} == {
        "status": "open", "amount_paid_cents": 4_000, "paid_at": None}
    paid_audit = db.execute("SELECT actor, stripe_event_id, to_status FROM crm.audit_log WHERE entity = 'invoice' "
                            "AND entity_id = %s", (to_pay["invoice_id"],)).fetchall()
    event_id = f"evt_reconcile_{to_pay['stripe_invoice_id']}_paid_10000"
    assert paid_audit == [{"actor": event_id, "stripe_event_id": event_id, "to_status": "paid"}]
    ledger = db.execute("SELECT source, outcome, payload->>'synthetic' AS synthetic FROM crm.stripe_events "
                        "WHERE id = %s", (event_id,)).fetchone()
    assert ledger == {"source": "reconcile", "outcome": "applied", "synthetic": "reconcile"}
    assert any(f"fixed invoice #{to_void['invoice_id']}" in line for line in report.lines())

    crm_sandbox.control.pay_invoice(in_part["stripe_invoice_id"])  # the rest
    again = run_reconcile("cli")

    assert [r["invoice_id"] for r in again.repairs] == [in_part["invoice_id"]]
    assert status_of(db, in_part["invoice_id"])["amount_paid_cents"] == 9_000
    assert status_of(db, in_part["invoice_id"])["status"] == "paid"
    assert run_reconcile("cli").repairs == []


def test_invoices_of_the_other_mode_are_never_checked(db: Conn, crm_sandbox: RunningSandbox) -> None:
    live = seed_invoice(db, mode="live")
    test = open_invoice(db, crm_sandbox)

    report = run_reconcile("cli")

    assert report.mode == "test" and report.invoices_checked == 1
    gets = [r["path"] for r in crm_sandbox.control.requests(service="stripe", method="GET")]
    assert f"/v1/invoices/{test['stripe_invoice_id']}" in gets
    assert not [p for p in gets if live["stripe_invoice_id"] in p]


def test_an_invoice_stripe_does_not_know_is_reported_not_a_failed_run(db: Conn, crm_sandbox: RunningSandbox,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Demo data, or an invoice sent with other keys: Stripe answers 404 for it.
    ghost = seed_invoice(db, stripe_invoice_id="in_demo_00017")
    real = open_invoice(db, crm_sandbox)

    report = run_reconcile("cli")

    assert report.ok, report.errors
    assert report.invoices_checked == 2
    assert report.missing_at_stripe == [{"invoice_id": ghost["invoice_id"], "stripe_invoice_id": "in_demo_00017"}]
    assert status_of(db, ghost["invoice_id"])["status"] == "open"
    assert main(["reconcile"]) == 0
    printed = capsys.readouterr().out
    assert f"invoice #{ghost['invoice_id']} (in_demo_00017) is unknown to Stripe in test mode" in printed
    assert f"#{real['invoice_id']} " not in printed


def test_a_second_run_while_one_holds_the_lock_says_so_and_exits_0(db: Conn, crm_sandbox: RunningSandbox,
                                                                   database_url: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(database_url) as other:
        other.execute("SELECT pg_advisory_xact_lock(crm.reconcile_lock_key('test'))")

        assert main(["reconcile"]) == 0

        assert "another reconcile of test mode is running" in capsys.readouterr().out
    assert latest_runs(db, 5) == []
    assert main(["reconcile"]) == 0
    assert "reconcile test mode" in capsys.readouterr().out


def test_a_stuck_send_is_reported_not_resent(db: Conn, crm_sandbox: RunningSandbox,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # The Send died after creating the Stripe draft: Stripe holds a draft, the CRM says sending.
    client = stripe_client(crm_sandbox)
    customer = client.v1.customers.create({"email": "pat@example.com"})
    draft = client.v1.invoices.create({"customer": customer.id, "collection_method": "send_invoice",
                                       "days_until_due": 7, "auto_advance": False})
    stuck = seed_invoice(db, status="sending", stripe_invoice_id=draft.id)
    db.execute("UPDATE crm.invoices SET send_lease_token = gen_random_uuid(), send_lease_owner = 'x', "
               "send_lease_until = now() - interval '1 hour' WHERE id = %s", (stuck["invoice_id"],))
    posts_before = len(crm_sandbox.control.requests(service="stripe", method="POST"))

    assert main(["reconcile"]) == 0

    out = capsys.readouterr().out
    assert f"invoice #{stuck['invoice_id']} is stuck in sending" in out
    assert status_of(db, stuck["invoice_id"])["status"] == "sending"
    assert len(crm_sandbox.control.requests(service="stripe", method="POST")) == posts_before
    assert latest_runs(db, 1)[0]["detail"]["stuck_sends"] == [stuck["invoice_id"]]


def test_stripe_unreachable_fails_the_run_and_keeps_the_checkpoint(db: Conn, crm_sandbox: RunningSandbox,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    inv = open_invoice(db, crm_sandbox)
    assert run_reconcile("cli").ok
    checkpoint = latest_runs(db, 1)[0]["checkpoint"]
    assert checkpoint is not None
    crm_sandbox.control.pay_invoice(inv["stripe_invoice_id"])
    crm_sandbox.control.add_fault(service="stripe", method="GET", path="/v1/events", status=500, times=10)

    assert main(["reconcile"]) == 1

    assert "could not list Stripe events" in capsys.readouterr().out
    failed = latest_runs(db, 1)[0]
    assert (failed["status"], failed["checkpoint"], failed["errors"]) == ("failed", None, 1)
    assert status_of(db, inv["invoice_id"])["status"] == "open"
    crm_sandbox.control.clear_faults()

    assert run_reconcile("cli").ok
    assert status_of(db, inv["invoice_id"])["status"] == "paid"


def test_a_run_left_running_by_a_dead_process_is_closed_by_the_next(db: Conn, crm_sandbox: RunningSandbox) -> None:
    db.execute("INSERT INTO crm.reconcile_runs (mode, actor) VALUES ('test', 'worker')")

    assert run_reconcile("cli").ok

    runs = latest_runs(db, 5)
    assert [r["status"] for r in runs] == ["succeeded", "failed"]
    assert "interrupted" in runs[1]["detail"]["errors"][0]


def test_the_sidecar_runs_it_hourly_and_records_the_pass(db: Conn, crm_sandbox: RunningSandbox) -> None:
    from webhook.app import WORKERS
    from webhook.workers import WorkerRunner

    worker = next(w for w in WORKERS if w.name == "reconcile")
    assert worker.interval_s == 3600

    assert WorkerRunner([worker]).run_once(worker)

    row = db.execute("SELECT last_ok_at, last_error, detail FROM crm.worker_runs WHERE worker = 'reconcile'"
                     ).fetchone()
    assert row is not None and row["last_error"] is None and row["detail"]["run_id"] == latest_runs(db, 1)[0]["id"]
