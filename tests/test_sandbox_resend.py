# The libraries type most response fields as Optional/unions; these tests assert the values instead.
# mypy: disable-error-code="union-attr,arg-type,operator,index,typeddict-item,return-value"
"""Resend emulator through real HTTP with the real resend-python library."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from html import unescape
from typing import Any

import httpx
import pytest
import resend
import resend.exceptions

from sandbox.testing import RunningSandbox
from tests import sandbox_helpers as helpers
from tests.sandbox_helpers import Receiver

# Fixtures shared through the helpers module.
receiver = helpers.receiver
sandbox = helpers.sandbox
sbx = helpers.sbx
use_resend = helpers.use_resend

SECRET = "whsec_" + base64.b64encode(b"sandbox-test-secret-0123456789").decode()


def _params(**extra: Any) -> Any:
    base = {"from": "Acme HVAC <billing@acme.example>", "to": ["pat@example.com"],
            "subject": "Invoice INV-0001", "html": '<p>Hi</p><a href="http://127.0.0.1:9/i/in_1">Pay now</a>',
            "text": "Pay at http://127.0.0.1:9/i/in_1", "tags": [{"name": "invoice_id", "value": "in_1"}]}
    base.update(extra)
    return base


def _in(seconds: int) -> str:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return when.isoformat().replace("+00:00", "Z")


def test_send_and_get_email(use_resend: RunningSandbox) -> None:
    sent = resend.Emails.send(_params(reply_to="office@acme.example", headers={"X-Entity-Ref-ID": "42"}))
    got = resend.Emails.get(sent["id"])
    assert got["object"] == "email" and got["id"] == sent["id"]
    assert got["to"] == ["pat@example.com"] and got["subject"] == "Invoice INV-0001"
    assert got["last_event"] == "delivered" and got["scheduled_at"] is None
    with pytest.raises(resend.exceptions.ResendError) as err:
        resend.Emails.get("00000000-0000-0000-0000-000000000000")
    assert err.value.code == 404


def test_validation_errors_map_to_resend_exceptions(use_resend: RunningSandbox) -> None:
    with pytest.raises(resend.exceptions.ValidationError, match=r"[Tt]ags should only contain"):
        resend.Emails.send(_params(tags=[{"name": "invoice id", "value": "x"}]))
    with pytest.raises(resend.exceptions.MissingRequiredFieldsError, match="to"):
        resend.Emails.send(_params(to=[]))
    with pytest.raises(resend.exceptions.ValidationError, match="from"):
        resend.Emails.send(_params(**{"from": "not-an-address"}))
    with pytest.raises(resend.exceptions.ValidationError, match="30 days"):
        resend.Emails.send(_params(scheduled_at=_in(31 * 86400)))
    assert use_resend.control.resend_emails() == []


def test_missing_api_key_is_401(use_resend: RunningSandbox) -> None:
    resp = httpx.post(use_resend.resend_api_url + "/emails", json=_params())
    assert resp.status_code == 401 and resp.json()["name"] == "missing_api_key"


def test_scheduled_email_is_sent_when_due_and_cancel_only_while_scheduled(use_resend: RunningSandbox) -> None:
    later = resend.Emails.send(_params(scheduled_at=_in(3600)))
    assert resend.Emails.get(later["id"])["last_event"] == "scheduled"
    moved = _in(7200)
    resend.Emails.update({"id": later["id"], "scheduled_at": moved})
    assert resend.Emails.get(later["id"])["scheduled_at"][:16] == moved[:16]
    doomed = resend.Emails.send(_params(scheduled_at=_in(3600)))
    resend.Emails.cancel(doomed["id"])
    assert resend.Emails.get(doomed["id"])["last_event"] == "canceled"

    use_resend.control.advance_clock(7300)
    assert resend.Emails.get(later["id"])["last_event"] == "delivered"
    assert resend.Emails.get(doomed["id"])["last_event"] == "canceled"
    with pytest.raises(resend.exceptions.ResendError, match="already been sent"):
        resend.Emails.cancel(later["id"])


def test_idempotency_replays_and_conflicts(use_resend: RunningSandbox) -> None:
    first = resend.Emails.send(_params(), {"idempotency_key": "reminder-in_1-7"})
    again = resend.Emails.send(_params(), {"idempotency_key": "reminder-in_1-7"})
    assert first["id"] == again["id"]
    assert len(use_resend.control.resend_emails()) == 1
    with pytest.raises(resend.exceptions.ResendError) as err:
        resend.Emails.send(_params(subject="Other"), {"idempotency_key": "reminder-in_1-7"})
    assert err.value.code == 409 and err.value.error_type == "invalid_idempotent_request"


def test_batch_send(use_resend: RunningSandbox) -> None:
    out = resend.Batch.send([_params(to=[f"c{i}@example.com"]) for i in range(3)])
    assert len(out["data"]) == 3
    with pytest.raises(resend.exceptions.ValidationError):
        resend.Batch.send([_params()] * 101)
    assert len(use_resend.control.resend_emails()) == 3


def test_svix_signed_webhooks_verify(use_resend: RunningSandbox, receiver: Receiver) -> None:
    use_resend.control.set_resend_webhook(receiver.url, SECRET)
    sent = resend.Emails.send(_params())
    receiver.wait(lambda got: len(got) >= 2)
    for hit in receiver.received:
        headers = {k.lower(): v for k, v in hit["headers"].items()}
        payload = resend.Webhooks.verify({
            "payload": hit["body"].decode(),
            "headers": {"id": headers["svix-id"], "timestamp": headers["svix-timestamp"],
                        "signature": headers["svix-signature"]},
            "webhook_secret": SECRET})
        assert payload["data"]["email_id"] == sent["id"]
    # Deliveries run concurrently, so arrival order is not guaranteed (as with Svix).
    assert sorted(e["type"] for e in receiver.events()) == ["email.delivered", "email.sent"]
    assert all(e["data"]["tags"] == {"invoice_id": "in_1"} for e in receiver.events())
    bad = receiver.received[0]
    with pytest.raises(ValueError):
        resend.Webhooks.verify({"payload": bad["body"].decode() + " ",
                                "headers": {"id": bad["headers"]["svix-id"],
                                            "timestamp": bad["headers"]["svix-timestamp"],
                                            "signature": bad["headers"]["svix-signature"]},
                                "webhook_secret": SECRET})


def test_webhooks_api_create_returns_signing_secret(use_resend: RunningSandbox, receiver: Receiver) -> None:
    created = resend.Webhooks.create({"endpoint": receiver.url, "events": ["email.scheduled"]})
    assert created["signing_secret"].startswith("whsec_")
    resend.Emails.send(_params(scheduled_at=_in(600)))
    receiver.wait(lambda got: len(got) == 1)
    assert receiver.events()[0]["type"] == "email.scheduled"


def test_mailbox_renders_email_and_tracks_open_and_click(use_resend: RunningSandbox, receiver: Receiver) -> None:
    use_resend.control.set_resend_webhook(receiver.url, SECRET)
    sent = resend.Emails.send(_params())
    box = httpx.get(use_resend.base_url + "/mailbox")
    assert box.status_code == 200 and "SANDBOX" in box.text
    assert "Invoice INV-0001" in box.text and "pat@example.com" in box.text
    view = httpx.get(f"{use_resend.base_url}/mailbox/{sent['id']}")
    assert view.status_code == 200 and "No real money" in view.text
    srcdoc = unescape(re.search(r'srcdoc="([^"]*)"', view.text).group(1))  # type: ignore[union-attr]
    link = re.search(r'href="([^"]+)"', srcdoc.split("<base", 1)[1].split(">", 1)[1]).group(1)  # type: ignore[union-attr]
    assert "/click?url=" in link and "Pay now" in srcdoc
    click = httpx.get(link)
    assert click.status_code == 302 and click.headers["location"] == "http://127.0.0.1:9/i/in_1"
    receiver.wait(lambda got: len(got) >= 4)
    by_type = {e["type"]: e for e in receiver.events()}
    assert sorted(by_type) == ["email.clicked", "email.delivered", "email.opened", "email.sent"]
    clicked = by_type["email.clicked"]["data"]["click"]
    assert clicked["link"] == "http://127.0.0.1:9/i/in_1"
    assert resend.Emails.get(sent["id"])["last_event"] == "clicked"
    assert {json.loads(r["body"])["data"]["email_id"] for r in receiver.received} == {sent["id"]}
