"""Helpers for the reconcile, fault and soak tests: invoices that exist both at the sandbox
and in the CRM, wiring the sidecar to a sandbox, and waiting for deliveries to settle."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from sandbox.testing import RunningSandbox
from tests.fixtures.sandbox import (
    point_crm_at,  # noqa: F401 - re-exported for the reconcile tests
)
from tests.fixtures.sidecar import seed_invoice
from tests.sandbox_helpers import make_open_invoice
from tests.send_helpers import stripe_client

Conn = psycopg.Connection[dict[str, Any]]


def open_invoice(db: Conn, sbx: RunningSandbox, amount: int = 10_000, status: str = "open") -> dict[str, Any]:
    """An open invoice at the sandbox and the CRM row a finished Send leaves for it."""
    inv = make_open_invoice(stripe_client(sbx), unit_amount=amount)
    return seed_invoice(db, stripe_invoice_id=inv.id, amount_due=amount, status=status)


def wire_sidecar(db: Conn, sidecar_url: str) -> None:
    """Register the sidecar at the sandbox as an owner does at Stripe (the production list of
    event types, nothing more or less), and store the secret."""
    from crm.config.settings import load_settings, save_setting
    from crm.stripe.event_types import HANDLED_EVENT_TYPES
    from crm.stripe.gateway import StripeGateway, stripe_target
    from webhook.signing_secrets import SECRETS

    _endpoint, secret = StripeGateway(stripe_target(load_settings(db))).register_webhook_endpoint(
        f"{sidecar_url}/webhooks/stripe", list(HANDLED_EVENT_TYPES))
    save_setting(db, "stripe.test.webhook_secrets", secret)
    SECRETS.clear()


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.05)


def deliveries_settled(sbx: RunningSandbox) -> bool:
    """No delivery is waiting, being attempted or scheduled for a retry at the sandbox."""
    in_flight: int = sbx.control.http.get("/deliveries", params={"service": "stripe"}).json()["in_flight"]
    return in_flight == 0


def status_of(conn: Conn, invoice_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT status, amount_paid_cents, paid_at FROM crm.invoices WHERE id = %s",
                       (invoice_id,)).fetchone()
    assert row is not None
    return row
