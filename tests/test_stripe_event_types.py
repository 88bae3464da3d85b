"""The one list of Stripe event types (crm/stripe/event_types.py) against what the SQL
dispatcher acts on, and against what the Settings page registers at Stripe."""

from __future__ import annotations

import re
from typing import Any

import psycopg

from crm.config.settings import load_settings
from crm.stripe.event_types import HANDLED_EVENT_TYPES
from sandbox.testing import RunningSandbox
from tests.send_helpers import stripe_client
from ui.settings_actions import register_webhook

# A quoted event type in the function's source: 'invoice.paid', 'invoice_payment.paid', ...
EVENT_TYPE_LITERAL = re.compile(r"'([a-z_]+(?:\.[a-z_]+)+)'")


def test_the_list_is_exactly_what_apply_stripe_event_dispatches_on(db: psycopg.Connection[Any]) -> None:
    row = db.execute("SELECT pg_get_functiondef('crm.apply_stripe_event'::regproc) AS src").fetchone()
    assert row is not None
    dispatched = set(EVENT_TYPE_LITERAL.findall(row["src"]))

    assert len(HANDLED_EVENT_TYPES) == len(set(HANDLED_EVENT_TYPES)), "a type is listed twice"
    assert set(HANDLED_EVENT_TYPES) == dispatched
    assert len(HANDLED_EVENT_TYPES) <= 20, "Stripe's event list filter takes at most 20 types (reconcile)"


def test_the_settings_page_registers_every_handled_type(db: psycopg.Connection[Any],
                                                        crm_sandbox: RunningSandbox) -> None:
    outcome = register_webhook(load_settings(db), "http://127.0.0.1:9/webhooks/stripe", None)

    assert outcome.ok, outcome.message
    endpoints = stripe_client(crm_sandbox).v1.webhook_endpoints.list().data
    assert len(endpoints) == 1
    assert sorted(endpoints[0].enabled_events) == sorted(HANDLED_EVENT_TYPES)



def test_an_endpoint_registered_before_a_type_was_added_is_reported_and_updated_in_place(
        db: psycopg.Connection[Any], crm_sandbox: RunningSandbox) -> None:
    """An endpoint without invoice_payment.paid and payment_intent.payment_failed (registered by an
    older version) loses refunds and declines: its state says so, and registering again fixes it in
    place, with the same signing secret."""
    from crm.config.settings import store_registered_webhook_secret
    from crm.stripe.endpoint import endpoint_state

    url = "http://127.0.0.1:9/webhooks/stripe"
    old = [t for t in HANDLED_EVENT_TYPES if t not in ("invoice_payment.paid", "payment_intent.payment_failed")]
    client = stripe_client(crm_sandbox)
    created = client.v1.webhook_endpoints.create({"url": url, "enabled_events": old})
    store_registered_webhook_secret(db, load_settings(db), "test", str(created.secret), created.id, None)

    state = endpoint_state(load_settings(db), "test")
    assert state.endpoint_id == created.id
    assert sorted(state.missing_types) == ["invoice_payment.paid", "payment_intent.payment_failed"]

    outcome = register_webhook(load_settings(db), url, None)

    assert outcome.ok and "in place" in outcome.message, outcome.message
    endpoints = client.v1.webhook_endpoints.list().data
    assert [e.id for e in endpoints] == [created.id]  # fixed in place, not a second endpoint
    assert sorted(endpoints[0].enabled_events) == sorted(HANDLED_EVENT_TYPES)
    assert load_settings(db).stripe_webhook_secrets("test") == [created.secret]
    assert endpoint_state(load_settings(db), "test").missing_types == []


def test_the_payment_events_are_handled_ones() -> None:
    """Go-live waits for one of these; each must be a type the endpoint subscribes and SQL applies."""
    from crm.stripe.event_types import HANDLED_EVENT_TYPES, PAYMENT_EVENT_TYPES

    assert set(PAYMENT_EVENT_TYPES) <= set(HANDLED_EVENT_TYPES)
