"""Settings → Go live and Webhook health in AppTest, against the sandbox and the real sidecar:
the live switch refused with its reasons, each step checked and shown, the test invoice turning
green once its webhook arrives, then the switch allowed; a disabled endpoint as an emergency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from crm.config.settings import load_settings, save_setting
from crm.stripe.endpoint import register
from sandbox.testing import RunningSandbox
from tests.fixtures.dashboard import OWNER_EMAIL
from tests.reconcile_helpers import wait_until
from tests.shown import shown as read

Conn = psycopg.Connection[dict[str, Any]]
RESEND_WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


@pytest.fixture
def golive_sandbox(db: Conn, crm_sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> RunningSandbox:
    monkeypatch.setenv("SANDBOX_URL", crm_sandbox.base_url)  # live has no key: the sandbox's live mode
    crm_sandbox.control.clear_resend_domains()  # go-live adds the From domain itself
    return crm_sandbox


def _button(at: Any, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def _switch_to_live(at: Any) -> Any:
    next(r for r in at.radio if r.label == "Mode").set_value("live")
    next(c for c in at.checkbox if c.label == "I understand what changes").check()
    return _button(at, "Switch mode").click().run()


def _texts(at: Any) -> list[str]:
    return [read(e.value) for e in [*at.error, *at.warning, *at.success, *at.info]]


def test_golive_checklist_refuses_live_with_reasons_then_allows_it(
        db: Conn, golive_sandbox: RunningSandbox, sidecar: Any, app_as: Callable[..., Any]) -> None:
    at = app_as("owner", "pages/settings.py")
    assert any(m.value.startswith("**6. Switch to live**") or "6. Switch to live" in m.value for m in at.markdown)
    at = _switch_to_live(at)
    refusal = next(read(e.value) for e in at.error if read(e.value).startswith("Live mode is refused"))
    assert "Step 1 (Stripe test key) has not been checked." in refusal
    assert "Step 4 (Test invoice, paid) has not been checked." in refusal
    assert load_settings(db).stripe_mode == "test"

    # Steps 1-3 and 5 from the page's own controls (register below, set up Resend, check).
    register(load_settings(db), "test", f"{sidecar.url}/webhooks/stripe", None)
    register(load_settings(db), "live", f"{sidecar.url}/webhooks/stripe", None)
    save_setting(db, "resend.webhook_secret", RESEND_WEBHOOK_SECRET)
    at = app_as("owner", "pages/settings.py")
    at = _button(at, "Set up domain in Resend").click().run()
    assert any("added acme-hvac.test with open and click tracking on" in read(s.value) for s in at.success)
    at = _button(at, "Check all steps").click().run()
    shown = _texts(at)
    assert any(t.startswith("The test key works: account Acme HVAC & Plumbing") for t in shown), shown
    assert any("is enabled for all the event types the CRM handles" in t for t in shown)
    assert any(t.startswith("Resend key works; acme-hvac.test is verified") for t in shown)
    assert any(t.startswith("Not sent yet") for t in shown)

    at = _button(at, "Send test invoice").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(t.startswith("Test invoice #") and OWNER_EMAIL in t for t in _texts(at)), _texts(at)
    at = _switch_to_live(at)
    refusal = next(read(e.value) for e in at.error if read(e.value).startswith("Live mode is refused"))
    assert "Step 4 (Test invoice, paid) is not done" in refusal and "Step 1" not in refusal

    row = db.execute("SELECT stripe_invoice_id FROM crm.invoices").fetchone()
    assert row is not None
    golive_sandbox.control.pay_invoice(row["stripe_invoice_id"])
    wait_until(lambda: db.execute("SELECT status FROM crm.invoices").fetchone() == {"status": "paid"})
    wait_until(lambda: db.execute("SELECT count(*) AS n FROM crm.stripe_events WHERE type = 'invoice.paid' "
                                  "AND webhook_received_at IS NOT NULL").fetchone() == {"n": 1})
    at = app_as("owner", "pages/settings.py")
    assert any("was paid and its webhook arrived" in t for t in _texts(at)), _texts(at)
    assert any(t.startswith("Steps 1–5 are green") for t in _texts(at)), _texts(at)
    at = _switch_to_live(at)
    assert load_settings(db).stripe_mode == "live"


def test_webhook_health_shows_a_disabled_endpoint_as_an_emergency_and_reenables_it(
        db: Conn, golive_sandbox: RunningSandbox, sidecar: Any, app_as: Callable[..., Any]) -> None:
    register(load_settings(db), "test", f"{sidecar.url}/webhooks/stripe", None)
    at = app_as("owner", "pages/settings.py")
    assert not [e for e in at.error if read(e.value).startswith("EMERGENCY")]
    assert any(m.label == "Endpoint" and m.value == "ENABLED" for m in at.metric)

    golive_sandbox.control.disable_webhook_endpoint(str(load_settings(db)["stripe.test.webhook_endpoint_id"]))
    at = app_as("owner", "pages/settings.py")
    emergency = next(read(e.value) for e in at.error if read(e.value).startswith("EMERGENCY"))
    assert "Stripe has DISABLED the test webhook endpoint" in emergency
    at = _button(at, "Re-enable the test endpoint").click().run()
    assert any(read(s.value).endswith("Run reconcile (Activity) to catch up on what it missed.") for s in at.success)
    assert not [e for e in at.error if read(e.value).startswith("EMERGENCY")]


def test_webhook_health_a_missing_endpoint_is_said_plainly(db: Conn, golive_sandbox: RunningSandbox,
                                                           app_as: Callable[..., Any]) -> None:
    at = app_as("owner", "pages/settings.py")
    warnings = [read(w.value) for w in at.warning]
    assert "No test-mode webhook endpoint is registered: Stripe sends the CRM nothing." in warnings
    assert any(read(c.value) == "Not set up: no live-mode endpoint is registered." for c in at.caption)
