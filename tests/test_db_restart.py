"""The database restarts under both processes: the first request after it is back succeeds.

Every pool checks a connection before handing it out (db/pool.py::check_before_use), and both
webhook routes retry once after a dropped connection (webhook/database.py).

Failed on the code before the fix (checked by hand): after the server was back, the
dashboard's page stopped on the OperationalError of a dead pooled connection (in the browser:
"The database cannot be reached right now"), and Resend's route answered 503 to the first
delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests import stripe_payloads as sp
from tests.fixtures.sidecar import Sidecar, seed_invoice
from tests.test_reminders_support import WEBHOOK_SECRET, resend_event, signed, test_now


def restart(pg_server: Any) -> None:
    if not pg_server.can_restart:
        pytest.skip("an external TEST_DATABASE_URL server cannot be restarted")
    pg_server.stop()
    pg_server.start()


def test_db_restart_the_first_dashboard_page_after_a_restart_renders(app_as: Callable[..., Any],
                                                                      pg_server: Any) -> None:
    at = app_as("owner", "pages/invoices.py")  # the pool holds connections now
    restart(pg_server)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "cannot be reached" in e.value or "busy" in e.value]
    assert at.title[0].value == "Invoices"


def test_db_restart_the_first_webhook_after_a_restart_is_applied_on_both_routes(sidecar: Sidecar,
                                                                                pg_server: Any) -> None:
    from crm.config.settings import save_setting
    from webhook.resend_route import SECRETS

    save_setting(sidecar.db, "resend.webhook_secret", WEBHOOK_SECRET)
    SECRETS.clear()
    invoices = [seed_invoice(sidecar.db) for _ in range(2)]

    def deliver(inv: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
        stripe = sidecar.post(sp.event("invoice.paid", sp.invoice(str(inv["stripe_invoice_id"]), status="paid",
                                                                  amount_paid=10_000)))
        body, headers = signed(resend_event("email.delivered", "re_restart", test_now()))
        return stripe, sidecar.http.post("/webhooks/resend", content=body, headers=headers)

    assert [r.status_code for r in deliver(invoices[0])] == [200, 200]  # pools and secret caches warm
    restart(pg_server)
    stripe, resend = deliver(invoices[1])
    assert (stripe.status_code, resend.status_code) == (200, 200), (stripe.text, resend.text)
    assert stripe.json()["outcome"] == "applied"
