"""The one list of Stripe event types (crm/stripe_event_types.py) against what the SQL
dispatcher acts on, and against what the Settings page registers at Stripe."""

from __future__ import annotations

import re
from typing import Any

import psycopg

from crm.settings import load_settings
from crm.stripe_event_types import HANDLED_EVENT_TYPES
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
