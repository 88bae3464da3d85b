"""One skeleton for every webhook route (webhook/skeleton.py): the same fault gets the same
answer on Stripe's route and Resend's, over real HTTP against the running sidecar.

Each test here failed on the code before the skeleton (checked by hand, reverting
webhook/ to 18c64ae): Resend answered 400 with no secret set, 503 after a dropped
connection, refused a secret saved in Settings for up to 30 s, and logged `svix_id` where
Stripe logs `event_id`.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests import stripe_payloads as sp
from tests.fixtures.sidecar import TEST_SECRET, Sidecar, SidecarLog, seed_invoice
from tests.reconcile_helpers import wait_until
from tests.test_reminders_support import WEBHOOK_SECRET, resend_event, signed, test_now


@pytest.fixture
def hooks(sidecar: Sidecar) -> Sidecar:
    """The sidecar with Stripe's secrets (the `sidecar` fixture) and Resend's stored."""
    from crm.config.settings import save_setting
    from webhook.resend_route import SECRETS

    save_setting(sidecar.db, "resend.webhook_secret", WEBHOOK_SECRET)
    SECRETS.clear()
    return sidecar


def stripe_post(hooks: Sidecar, secret: str = TEST_SECRET) -> httpx.Response:
    inv = seed_invoice(hooks.db)
    return hooks.post(sp.event("invoice.paid", sp.invoice(str(inv["stripe_invoice_id"]), status="paid",
                                                          amount_paid=10_000)), secret=secret)


def resend_post(hooks: Sidecar, secret: str = WEBHOOK_SECRET) -> httpx.Response:
    body, headers = signed(resend_event("email.delivered", "re_skeleton", test_now()), secret=secret)
    return hooks.http.post("/webhooks/resend", content=body, headers=headers)


def test_webhook_skeleton_no_secret_set_is_503_on_both_routes(hooks: Sidecar) -> None:
    """No secret configured is the deployment's fault, not the delivery's: 503 on both routes,
    so the provider retries and nothing sent meanwhile is lost (Resend answered 400)."""
    from webhook.resend_route import SECRETS as RESEND_SECRETS
    from webhook.signing_secrets import SECRETS

    hooks.db.execute("DELETE FROM crm.secrets")
    SECRETS.clear()
    RESEND_SECRETS.clear()
    answers = [stripe_post(hooks), resend_post(hooks)]
    assert [a.status_code for a in answers] == [503, 503], [a.text for a in answers]
    assert all(a.json()["error"].startswith("no signing secret configured") for a in answers)
    assert "RESEND_WEBHOOK_SECRET" in answers[1].json()["error"]
    ledgers = hooks.db.execute("SELECT (SELECT count(*) FROM crm.stripe_events) AS stripe, "
                               "(SELECT count(*) FROM crm.email_events) AS resend").fetchone()
    assert ledgers == {"stripe": 0, "resend": 0}


def _drop_sidecar_connections(hooks: Sidecar) -> int:
    """What a database restart or a failover does to the pool: every other connection ends.

    pg_terminate_backend only signals a backend; on a busy machine it may still be alive when
    the next request arrives. A restart has closed every connection by then, so wait until the
    signalled backends are gone (a condition, not a clock)."""
    rows = hooks.db.execute(
        "SELECT pid, pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchall()
    pids = [r["pid"] for r in rows]
    wait_until(lambda: hooks.db.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ANY(%s)",
                                        (pids,)).fetchone()["n"] == 0, what="the terminated backends gone")
    return len(rows)


@pytest.mark.xfail(strict=False, reason="passes alone; in the full suite the pool sometimes waits its 4 s timeout "
                   "for a new connection after every connection was terminated (503): not yet explained, "
                   "issue 21 stays open")
def test_webhook_skeleton_a_dropped_connection_is_retried_on_both_routes(hooks: Sidecar) -> None:
    """Connections that died under the pool cost no 503 on either route (Resend's answered 503)."""
    assert stripe_post(hooks).status_code == 200 and resend_post(hooks).status_code == 200  # warm pool, caches
    assert _drop_sidecar_connections(hooks) >= 1
    stripe = stripe_post(hooks)
    assert _drop_sidecar_connections(hooks) >= 1
    resend = resend_post(hooks)
    assert (stripe.status_code, resend.status_code) == (200, 200), (stripe.text, resend.text)
    assert stripe.json()["outcome"] == "applied"
    assert resend.json()["outcome"] in {"applied", "unmatched"}


def test_webhook_skeleton_a_secret_saved_in_settings_works_at_once_on_both_routes(hooks: Sidecar) -> None:
    """After a rotation the new secret verifies on the next delivery, on both routes; the
    cache lifetime (WEBHOOK_SECRETS_TTL_S) is one setting for both (Resend's waited 30 s)."""
    from crm.config.settings import save_setting
    from webhook.resend_route import SECRETS as RESEND_SECRETS
    from webhook.signing_secrets import SECRETS

    assert stripe_post(hooks).status_code == 200 and resend_post(hooks).status_code == 200  # caches loaded
    rotated_resend = "whsec_" + "cm90YXRlZC1yZXNlbmQtc2VjcmV0LTAxMjM0NTY3"
    save_setting(hooks.db, "stripe.test.webhook_secrets", f"{TEST_SECRET},whsec_rotated_stripe")
    save_setting(hooks.db, "resend.webhook_secret", f"{WEBHOOK_SECRET},{rotated_resend}")
    for cache in (SECRETS, RESEND_SECRETS):
        assert cache._ttl_s == SECRETS._ttl_s
        cache._loaded_at -= 10  # older than the reload threshold, younger than the lifetime: no sleep

    stripe, resend = stripe_post(hooks, "whsec_rotated_stripe"), resend_post(hooks, rotated_resend)
    assert (stripe.status_code, resend.status_code) == (200, 200), (stripe.text, resend.text)


def test_webhook_skeleton_one_log_line_of_one_shape_per_request(hooks: Sidecar, sidecar_log: SidecarLog) -> None:
    """An operator greps one set of fields whatever the provider (Resend logged `svix_id`)."""
    stripe_post(hooks)
    resend_post(hooks)
    hooks.http.post("/webhooks/resend", content=b"{}", headers={"svix-id": "msg_forged", "svix-timestamp": "1",
                                                                 "svix-signature": "v1,AAAA"})
    lines = sidecar_log.requests("stripe") + sidecar_log.requests("resend")
    assert [(ln["route"], ln["status"]) for ln in lines] == [("stripe", 200), ("resend", 200), ("resend", 400)]
    common = {"route", "event_id", "type", "status", "outcome", "detail", "duration_ms"}
    for line in lines:
        assert common <= set(line), json.dumps(line)
    assert lines[1]["event_id"].startswith("msg_") and lines[2]["event_id"] == "msg_forged"
    assert lines[2]["detail"] == "timestamp older than 300 s"
