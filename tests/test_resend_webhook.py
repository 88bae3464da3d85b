"""POST /webhooks/resend on the running sidecar (uvicorn, real HTTP): Svix verification,
dedup on svix-id, email tracking, the bounce flag, and the sandbox delivering real events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from crm.reminders import dispatch as rd
from db.reminders import queue_due
from sandbox.testing import RunningSandbox
from tests.test_reminders_support import (
    WEBHOOK_SECRET,
    add_reminders,
    days,
    gateway,
    make_invoice,
    reminders_of,
    resend_event,
    set_send_at,
    signed,
    test_now,
)

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def resend_hook(db: Conn, sidecar_server: Any) -> Iterator[httpx.Client]:
    from crm.config.settings import save_setting
    from webhook.resend_route import SECRETS

    save_setting(db, "resend.webhook_secret", WEBHOOK_SECRET)
    SECRETS.clear()
    with httpx.Client(base_url=sidecar_server.url, timeout=30, trust_env=False) as client:
        yield client
    SECRETS.clear()


def invoice_email(db: Conn, resend_id: str = "re_inv_1") -> dict[str, Any]:
    inv = make_invoice(db, due=test_now().date())
    row = db.execute(
        "INSERT INTO crm.email_messages (kind, invoice_id, resend_id, idempotency_key, from_address, to_address, "
        "subject, status, sent_at) VALUES ('invoice', %s, %s, %s, 'billing@acme-hvac.test', 'pat@example.com', "
        "'Invoice', 'sent', now()) RETURNING id", (inv["invoice_id"], resend_id, "key-" + resend_id)).fetchone()
    assert row is not None
    return {**inv, "message_id": row["id"], "resend_id": resend_id}


def post(client: httpx.Client, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post("/webhooks/resend", content=body, headers=headers)


def written(db: Conn) -> dict[str, int]:
    row = db.execute("SELECT (SELECT count(*) FROM crm.email_events) AS events, "
                     "(SELECT count(*) FROM crm.audit_log) AS audit, "
                     "(SELECT count(*) FROM crm.invoices WHERE attention IS NOT NULL) AS flagged").fetchone()
    assert row is not None
    return dict(row)


def test_forged_stale_or_unsigned_webhooks_change_nothing(db: Conn, resend_hook: httpx.Client) -> None:
    email = invoice_email(db)
    before = written(db)
    bounce = resend_event("email.bounced", email["resend_id"], test_now())
    forged_secret = "whsec_" + "Zm9yZ2VkLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm"

    forged = post(resend_hook, *signed(bounce, secret=forged_secret))
    stale = post(resend_hook, *signed(bounce, timestamp=int(time.time()) - 301 - 5))
    body, headers = signed(bounce)
    unsigned = post(resend_hook, body, {k: v for k, v in headers.items() if k != "svix-signature"})
    tampered = post(resend_hook, body.replace(b"bounced", b"opened"), headers)

    assert [r.status_code for r in (forged, stale, unsigned, tampered)] == [400, 400, 400, 400]
    assert "timestamp" in stale.json()["error"]
    assert written(db) == before
    inv = db.execute("SELECT attention FROM crm.invoices WHERE id = %s", (email["invoice_id"],)).fetchone()
    assert inv == {"attention": None}


def test_a_bounced_invoice_email_flags_the_invoice(db: Conn, resend_hook: httpx.Client) -> None:
    email = invoice_email(db)
    event = resend_event("email.bounced", email["resend_id"], test_now(),
                         bounce={"message": "Mailbox does not exist", "type": "Permanent"})

    resp = post(resend_hook, *signed(event))

    assert resp.status_code == 200 and resp.json()["outcome"] == "applied"
    inv = db.execute("SELECT status, attention, attention_detail FROM crm.invoices WHERE id = %s",
                     (email["invoice_id"],)).fetchone()
    assert inv is not None and (inv["status"], inv["attention"]) == ("open", "email_bounced")
    assert "Mailbox does not exist" in inv["attention_detail"]
    msg = db.execute("SELECT status FROM crm.email_messages WHERE id = %s", (email["message_id"],)).fetchone()
    assert msg == {"status": "bounced"}
    audit = db.execute("SELECT actor_type, detail->>'attention' AS attention FROM crm.audit_log "
                       "WHERE entity = 'invoice' AND entity_id = %s", (email["invoice_id"],)).fetchall()
    assert audit == [{"actor_type": "resend_event", "attention": "email_bounced"}]


def test_a_complaint_flags_the_invoice_too(db: Conn, resend_hook: httpx.Client) -> None:
    email = invoice_email(db)
    assert post(resend_hook, *signed(resend_event("email.complained", email["resend_id"], test_now()))).is_success
    inv = db.execute("SELECT attention FROM crm.invoices WHERE id = %s", (email["invoice_id"],)).fetchone()
    assert inv == {"attention": "email_complained"}


def test_a_duplicate_webhook_is_recorded_once(db: Conn, resend_hook: httpx.Client) -> None:
    email = invoice_email(db)
    body, headers = signed(resend_event("email.opened", email["resend_id"], test_now()), msg_id="msg_dup_1")

    first, second = post(resend_hook, body, headers), post(resend_hook, body, headers)

    assert (first.json()["outcome"], second.json()["outcome"]) == ("applied", "duplicate")
    assert second.status_code == 200
    msg = db.execute("SELECT open_count FROM crm.email_messages WHERE id = %s", (email["message_id"],)).fetchone()
    assert msg == {"open_count": 1}
    assert written(db)["events"] == 1


def test_opens_and_clicks_are_counted_and_late_events_never_move_status_back(
        db: Conn, resend_hook: httpx.Client) -> None:
    email = invoice_email(db)
    now = test_now()
    for event_type, at in [("email.delivered", now), ("email.opened", now + timedelta(minutes=5)),
                           ("email.clicked", now + timedelta(minutes=6)), ("email.opened", now + timedelta(hours=2)),
                           ("email.sent", now - timedelta(seconds=3))]:
        assert post(resend_hook, *signed(resend_event(event_type, email["resend_id"], at))).status_code == 200

    msg = db.execute("SELECT status, delivered_at, first_opened_at, open_count, first_clicked_at, click_count "
                     "FROM crm.email_messages WHERE id = %s", (email["message_id"],)).fetchone()
    assert msg == {"status": "delivered", "delivered_at": now, "first_opened_at": now + timedelta(minutes=5),
                   "open_count": 2, "first_clicked_at": now + timedelta(minutes=6), "click_count": 1}


def test_an_event_for_an_unknown_email_is_kept_and_applied_once_the_id_is_recorded(
        db: Conn, resend_hook: httpx.Client) -> None:
    resp = post(resend_hook, *signed(resend_event("email.delivered", "re_not_yet", test_now())))
    assert resp.json()["outcome"] == "unmatched"

    email = invoice_email(db, resend_id="re_not_yet")

    msg = db.execute("SELECT status FROM crm.email_messages WHERE id = %s", (email["message_id"],)).fetchone()
    assert msg == {"status": "delivered"}


def test_oversized_body_is_refused(db: Conn, resend_hook: httpx.Client) -> None:
    body, headers = signed({"type": "email.sent", "data": {"email_id": "x", "pad": "a" * 300_000}})
    assert post(resend_hook, body, headers).status_code == 413
    assert written(db)["events"] == 0


def test_the_sandbox_delivers_resend_events_that_mark_a_reminder_sent(
        db: Conn, crm_sandbox: RunningSandbox, resend_hook: httpx.Client, sidecar_server: Any) -> None:
    crm_sandbox.control.set_resend_webhook(f"{sidecar_server.url}/webhooks/resend", WEBHOOK_SECRET)
    now = test_now()
    inv = make_invoice(db, due=(now - days(7)).date())
    rows = add_reminders(db, inv["invoice_id"], (now - days(7)).date())
    set_send_at(db, rows[0]["id"], now)   # its time has come: Resend sends it at once
    queue_due(db, now)
    assert rd.dispatch_queued(db, gateway(db), now)["scheduled"] == 1

    deadline = time.monotonic() + 15
    while reminders_of(db, inv["invoice_id"])[0]["status"] != "sent":
        assert time.monotonic() < deadline, "the sandbox's email.sent never marked the reminder sent"
        crm_sandbox.control.flush_emails()
        time.sleep(0.05)
    msg_status = db.execute("SELECT m.status FROM crm.email_messages m WHERE m.reminder_id = %s",
                            (rows[0]["id"],)).fetchone()
    deadline = time.monotonic() + 10
    while msg_status != {"status": "delivered"}:
        assert time.monotonic() < deadline, f"email never recorded as delivered: {msg_status}"
        time.sleep(0.05)
        msg_status = db.execute("SELECT status FROM crm.email_messages WHERE reminder_id = %s",
                                (rows[0]["id"],)).fetchone()
    # The sandbox posts email.sent and email.delivered concurrently: either may land first.
    deadline = time.monotonic() + 10
    types = {"email.delivered"}
    while not types >= {"email.sent", "email.delivered"} and time.monotonic() < deadline:
        types = {t["type"] for t in db.execute("SELECT type FROM crm.email_events").fetchall()}
        time.sleep(0.05)
    assert types >= {"email.sent", "email.delivered"}


def test_database_down_answers_503_and_the_retry_is_applied(db: Conn, resend_hook: httpx.Client,
                                                            pg_server: Any) -> None:
    if not pg_server.can_restart:
        pytest.skip("an external TEST_DATABASE_URL server cannot be stopped")
    email = invoice_email(db)
    body, headers = signed(resend_event("email.delivered", email["resend_id"], test_now()))
    assert post(resend_hook, *signed(resend_event("email.sent", email["resend_id"], test_now()))).is_success
    pg_server.stop()
    try:
        down = post(resend_hook, body, headers)
    finally:
        pg_server.start()
    assert down.status_code == 503
    # The first delivery after the restart is applied: the pool drops connections that died
    # with the server and the route retries once after a dropped one, like Stripe's.
    retried = post(resend_hook, body, headers)
    assert retried.status_code == 200 and retried.json()["outcome"] == "applied"
