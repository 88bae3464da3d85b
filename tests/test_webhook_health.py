"""Webhook health (crm/stripe/webhook_health.py): a sidecar that was down while a payment was made shows
as a missed delivery after the next reconcile; a disabled endpoint is an emergency that one call
re-enables. Real sidecar processes under uvicorn, the sandbox over HTTP, a real Postgres."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
import uvicorn

from crm.config.settings import load_settings, save_setting
from crm.stripe.endpoint import reenable, register
from crm.stripe.reconcile import run_reconcile
from crm.stripe.webhook_health import mode_health
from db.embedded import free_port
from sandbox.testing import RunningSandbox
from tests.reconcile_helpers import deliveries_settled, open_invoice, status_of, wait_until

Conn = psycopg.Connection[dict[str, Any]]


class OwnSidecar:
    """A sidecar of this test's own, so the test can stop it (the shared one keeps running)."""

    def __init__(self, port: int) -> None:
        from webhook.app import app

        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="on", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="sidecar-to-stop", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the sidecar did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_webhook_health_a_payment_while_the_sidecar_was_down_is_a_missed_delivery(
        db: Conn, crm_sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from webhook.signing_secrets import SECRETS

    monkeypatch.setenv("WEBHOOK_RUN_WORKERS", "0")
    sidecar = OwnSidecar(free_port())
    try:
        assert register(load_settings(db), "test", f"{sidecar.url}/webhooks/stripe", None).ok
        SECRETS.clear()
        delivered = open_invoice(db, crm_sandbox)
        crm_sandbox.control.pay_invoice(delivered["stripe_invoice_id"])
        wait_until(lambda: status_of(db, delivered["invoice_id"])["status"] == "paid", what="the delivered payment")
        wait_until(lambda: deliveries_settled(crm_sandbox))
    finally:
        sidecar.stop()

    missed = open_invoice(db, crm_sandbox)
    crm_sandbox.control.pay_invoice(missed["stripe_invoice_id"])  # nobody listens at the sidecar's URL now
    wait_until(lambda: deliveries_settled(crm_sandbox), what="the sandbox giving up")
    assert crm_sandbox.control.deliveries(service="stripe", outcome="gave_up")
    assert status_of(db, missed["invoice_id"])["status"] == "open"
    before = mode_health(db, load_settings(db), "test")
    assert before.missed_24h == 0 and before.received_24h > 0

    run_reconcile("cli")

    assert status_of(db, missed["invoice_id"])["status"] == "paid"
    health = mode_health(db, load_settings(db), "test")
    assert health.missed_24h > 0
    assert {"invoice.paid"} <= {m["type"] for m in health.missed}
    assert {m["invoice_id"] for m in health.missed if m["invoice_id"]} == {missed["invoice_id"]}
    assert any(w.startswith("Stripe is failing to reach the sidecar: reconcile found") for w in health.warnings)
    assert health.pending_events == 0  # too recent to say Stripe is failing: it may still be retrying
    later = mode_health(db, load_settings(db), "test", now=time.time() + 600)
    assert later.pending_events and any("has not managed to deliver" in w for w in later.warnings)
    assert health.last_received is not None


def test_webhook_health_a_disabled_endpoint_is_an_emergency_and_is_reenabled(
        db: Conn, crm_sandbox: RunningSandbox, sidecar: Any) -> None:
    assert register(load_settings(db), "test", f"{sidecar.url}/webhooks/stripe", None).ok
    healthy = mode_health(db, load_settings(db), "test")
    assert healthy.endpoint.status == "enabled" and not healthy.emergency and not healthy.endpoint.missing_types
    assert not healthy.warnings

    crm_sandbox.control.disable_webhook_endpoint(str(load_settings(db)["stripe.test.webhook_endpoint_id"]))
    down = mode_health(db, load_settings(db), "test")
    assert down.emergency and down.warnings[0].startswith("EMERGENCY: Stripe has DISABLED the test webhook endpoint")

    outcome = reenable(load_settings(db), "test")
    assert outcome.ok and outcome.message.endswith("is enabled again.")
    assert not mode_health(db, load_settings(db), "test").emergency


def test_webhook_health_live_mode_not_in_use_raises_no_alarm(db: Conn, crm_sandbox: RunningSandbox,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_URL", crm_sandbox.base_url)
    live = mode_health(db, load_settings(db), "live")
    assert not live.in_use and not live.warnings and live.endpoint.sandboxed
    save_setting(db, "stripe.test.webhook_endpoint_id", "we_gone")  # a stored endpoint Stripe no longer has
    test = mode_health(db, load_settings(db), "test")
    assert test.warnings == ["No test-mode webhook endpoint is registered: Stripe sends the CRM nothing."]
