"""Activity page: Stripe events by outcome (duplicates included), emails, reminders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from sandbox.testing import RunningSandbox
from tests.fixtures.sidecar import seed_invoice


def test_activity_filters_stripe_events_by_outcome(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    for eid, outcome, dups in (("evt_a", "applied", 2), ("evt_b", "unmatched", 0), ("evt_c", "rejected", 0)):
        db.execute("INSERT INTO crm.stripe_events (id, type, mode, outcome, duplicate_deliveries, payload) "
                   "VALUES (%s, 'invoice.paid', 'test', %s, %s, '{}')", (eid, outcome, dups))
    at = app_as("staff", "pages/activity.py")
    assert sorted(at.dataframe[0].value["Event"]) == ["evt_a", "evt_b", "evt_c"]
    at.selectbox(key="act_outcome").select("duplicate").run()
    assert list(at.dataframe[0].value["Event"]) == ["evt_a"]
    at.selectbox(key="act_outcome").select("rejected").run()
    assert list(at.dataframe[0].value["Event"]) == ["evt_c"]
    assert "No emails yet." in [i.value for i in at.info] and "No reminders." in [i.value for i in at.info]


def test_reconcile_button_runs_one_and_lists_it(db: psycopg.Connection[Any], app_as: Callable[..., Any],
                                                crm_sandbox: RunningSandbox) -> None:
    ghost = seed_invoice(db, stripe_invoice_id="in_demo_00042")
    at = app_as("staff", "pages/activity.py")
    assert "No reconcile runs yet." in [i.value for i in at.info]
    at.button(key="act_reconcile").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [message] = at.success
    # In sentences, local time, no ISO stamp (issue 22); the CLI keeps crm.stripe.reconcile's own lines.
    assert message.value.startswith("Done: see below.")
    assert "- Checked 1 open or sending invoices: 0 repaired." in message.value
    assert f"- Invoice #{ghost['invoice_id']} is unknown to Stripe in test mode." in message.value
    assert "T" not in message.value.split("since ")[1][:16]
    runs = at.dataframe[-1].value
    assert list(runs["By"]) == ["staff@example.com"] and list(runs["Invoices checked"]) == [1]
