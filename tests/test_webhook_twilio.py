"""POST /webhooks/twilio on the real sidecar (uvicorn over HTTP, real Postgres): callbacks the
sandbox posts after a text-to-pay land on the invoice's timeline; a bad or missing
signature writes nothing; replays are deduplicated by SID + status; 21610 turns texts off;
behind a proxy the signature is checked over the configured public URL. Signatures are made
and checked with twilio's own RequestValidator."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from crm.texts.gateway import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN
from crm.texts.send import text_pay_link
from db.queries_invoices import invoice_timeline
from sandbox.testing import RunningSandbox
from tests.fixtures.sidecar import Sidecar, snapshot
from tests.texts_helpers import PHONE, Conn, open_invoice, point_texts_at
from ui.timeline_text import timeline

SID = "SM" + "ab" * 16


@pytest.fixture
def twilio_hook(sidecar: Sidecar, fresh_sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> Sidecar:
    """The sidecar with the CRM's texts pointed at the sandbox and the callback URL set to it."""
    from webhook.twilio_route import VERIFIER

    point_texts_at(sidecar.db, fresh_sandbox, monkeypatch, callback_url=f"{sidecar.url}/webhooks/twilio")
    VERIFIER.clear()
    yield sidecar
    VERIFIER.clear()


def _params(sid: str = SID, status: str = "delivered", **extra: str) -> dict[str, str]:
    return {"AccountSid": SANDBOX_ACCOUNT_SID, "ApiVersion": "2010-04-01", "From": "+15005550006",
            "MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status, "To": PHONE, **extra}


def post_signed(hook: Sidecar, params: dict[str, str], *, signed_url: str | None = None,
                token: str = SANDBOX_AUTH_TOKEN) -> httpx.Response:
    url = f"{hook.url}/webhooks/twilio"
    signature = RequestValidator(token).compute_signature(signed_url or url, params)
    return hook.http.post("/webhooks/twilio", content=urlencode(params),
                          headers={"Content-Type": "application/x-www-form-urlencoded",
                                   "X-Twilio-Signature": signature})


def _texted(db: Conn, sbx: RunningSandbox) -> tuple[dict[str, Any], str]:
    ids = open_invoice(db, sbx)
    result = text_pay_link(ids["invoice_id"], PHONE, "staff@example.com")
    assert result.ok and result.sid
    return ids, result.sid


def test_twilio_sandbox_callbacks_land_on_the_invoice_timeline(twilio_hook: Sidecar,
                                                               fresh_sandbox: RunningSandbox) -> None:
    db = twilio_hook.db
    ids, sid = _texted(db, fresh_sandbox)
    fresh_sandbox.control.wait_for(
        lambda: db.execute("SELECT status FROM crm.text_messages WHERE sid = %s", (sid,)).fetchall(),
        lambda rows: rows[0]["status"] == "delivered")
    fresh_sandbox.control.wait_for(
        lambda: db.execute("SELECT status FROM crm.text_message_events WHERE sid = %s", (sid,)).fetchall(),
        lambda rows: len(rows) == 2)
    events = db.execute("SELECT status FROM crm.text_message_events WHERE sid = %s", (sid,)).fetchall()
    assert sorted(e["status"] for e in events) == ["delivered", "sent"]  # in either order, as from Twilio
    whats = [e.what for e in timeline(invoice_timeline(db, ids["invoice_id"]), "usd")]
    assert f"Pay link text delivered to {PHONE}" in whats
    assert "Pay link text delivered" in whats and "Pay link text sent" in whats
    assert all(d["outcome"] == "delivered" for d in fresh_sandbox.control.deliveries(service="twilio"))


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 400), ({"X-Twilio-Signature": "not base64!"}, 400), ({"X-Twilio-Signature": "A" * 28}, 400)])
def test_twilio_bad_signature_is_refused_and_writes_nothing(twilio_hook: Sidecar, headers: dict[str, str],
                                                            status: int) -> None:
    before = snapshot(twilio_hook.db)
    resp = twilio_hook.http.post("/webhooks/twilio", content=urlencode(_params()),
                                 headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
    assert resp.status_code == status and resp.json()["outcome"] == "rejected"
    assert snapshot(twilio_hook.db) == before


def test_twilio_signed_with_another_token_or_changed_is_400(twilio_hook: Sidecar) -> None:
    before = snapshot(twilio_hook.db)
    assert post_signed(twilio_hook, _params(), token="f" * 32).status_code == 400
    params = _params()
    url = f"{twilio_hook.url}/webhooks/twilio"
    signature = RequestValidator(SANDBOX_AUTH_TOKEN).compute_signature(url, params)
    tampered = {**params, "MessageStatus": "failed"}
    resp = twilio_hook.http.post("/webhooks/twilio", content=urlencode(tampered),
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": signature})
    assert resp.status_code == 400
    assert snapshot(twilio_hook.db) == before


def test_twilio_replayed_callback_is_deduplicated(twilio_hook: Sidecar, fresh_sandbox: RunningSandbox) -> None:
    db = twilio_hook.db
    _ids, sid = _texted(db, fresh_sandbox)
    fresh_sandbox.control.wait_for(
        lambda: db.execute("SELECT status FROM crm.text_message_events WHERE sid = %s", (sid,)).fetchall(),
        lambda rows: len(rows) == 2)
    audits = db.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'text'").fetchone()
    for _ in range(3):
        resp = post_signed(twilio_hook, _params(sid, "delivered", RawDlrDoneDate="2612021402"))
        assert resp.status_code == 200 and resp.json()["outcome"] == "duplicate"
    assert db.execute("SELECT count(*) AS n FROM crm.text_message_events WHERE sid = %s AND status = 'delivered'",
                      (sid,)).fetchone() == {"n": 1}
    assert db.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'text'").fetchone() == audits
    # A late 'sent' after 'delivered' is recorded but never moves the text backwards.
    assert post_signed(twilio_hook, _params(sid, "queued")).json()["outcome"] == "applied"
    assert db.execute("SELECT status FROM crm.text_messages WHERE sid = %s", (sid,)).fetchone() == {
        "status": "delivered"}


def test_twilio_21610_callback_turns_texts_off_for_that_customer(twilio_hook: Sidecar,
                                                                 fresh_sandbox: RunningSandbox) -> None:
    db = twilio_hook.db
    ids, sid = _texted(db, fresh_sandbox)
    resp = post_signed(twilio_hook, _params(sid, "failed", ErrorCode="21610"))
    assert resp.status_code == 200 and resp.json()["outcome"] == "applied"
    customer = db.execute("SELECT texts_off, texts_off_reason, email FROM crm.customers WHERE id = %s",
                          (ids["customer_id"],)).fetchone()
    assert customer is not None and customer["texts_off"] and customer["email"]
    whats = [e.what for e in timeline(invoice_timeline(db, ids["invoice_id"]), "usd")]
    assert any("error 21610" in w and "replied STOP" in w for w in whats), whats


def test_twilio_unknown_sid_is_acknowledged_as_unmatched(twilio_hook: Sidecar) -> None:
    resp = post_signed(twilio_hook, _params("SM" + "cd" * 16, "sent"))
    assert resp.status_code == 200 and resp.json()["outcome"] == "unmatched"


def test_twilio_behind_a_proxy_verifies_over_the_public_url(twilio_hook: Sidecar) -> None:
    """Twilio signed https://crm.example.com/...; this process sees http://127.0.0.1:port/...:
    with the public URL configured the callback verifies, signed over the internal URL it does not."""
    from crm.config.settings import save_setting
    from webhook.twilio_route import VERIFIER

    public = "https://crm.example.com/webhooks/twilio"
    save_setting(twilio_hook.db, "twilio.status_callback_url", public)
    VERIFIER.clear()
    assert post_signed(twilio_hook, _params("SM" + "ef" * 16, "sent"), signed_url=public).status_code == 200
    assert post_signed(twilio_hook, _params("SM" + "ef" * 16, "delivered")).status_code == 400
