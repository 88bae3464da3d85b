"""The sandbox's Twilio (sandbox/twilio_*.py, /phone) driven by twilio-python through the CRM's
gateway: Message shape and status enum from Twilio's own description, the refusals (21211,
21610, 21614, 351xx), scheduled texts released at their time or canceled, status callbacks
signed as Twilio signs them (checked with twilio's RequestValidator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from twilio.request_validator import RequestValidator

from crm.texts import gateway as gw
from sandbox.config import Settings
from sandbox.testing import RunningSandbox
from tests import twilio_contract as contract
from tests.sandbox_helpers import Receiver

TO = "+15125550123"


def _gateway(base: str) -> gw.TwilioGateway:
    return gw.TwilioGateway(gw.TwilioTarget(gw.SANDBOX_ACCOUNT_SID, gw.SANDBOX_AUTH_TOKEN,
                                            gw.SANDBOX_MESSAGING_SERVICE_SID, base + "/twilio", True))


def _api_message(base: str, sid: str) -> dict[str, Any]:
    resp = httpx.get(f"{base}/twilio/2010-04-01/Accounts/{gw.SANDBOX_ACCOUNT_SID}/Messages/{sid}.json",
                     auth=(gw.SANDBOX_ACCOUNT_SID, gw.SANDBOX_AUTH_TOKEN), trust_env=False)
    resp.raise_for_status()
    out: dict[str, Any] = resp.json()
    return out


def test_twilio_sandbox_account_matches_the_crm_sandbox_constants() -> None:
    cfg = Settings()
    assert (cfg.twilio_account_sid, cfg.twilio_auth_token, cfg.twilio_messaging_service_sid) == (
        gw.SANDBOX_ACCOUNT_SID, gw.SANDBOX_AUTH_TOKEN, gw.SANDBOX_MESSAGING_SERVICE_SID)


def test_sms_send_queued_then_delivered_with_twilio_shape_and_signed_callbacks(fresh_sandbox: RunningSandbox) -> None:
    receiver = Receiver()
    try:
        msg = _gateway(fresh_sandbox.base_url).send(TO, "Hello from Acme", status_callback=receiver.url)
        assert msg.status == "queued" and msg.sid.startswith("SM") and msg.to == TO
        receiver.wait(lambda got: len(got) >= 2)
        fresh_sandbox.control.wait_for(fresh_sandbox.control.twilio_messages,
                                 lambda rows: rows and rows[0]["status"] == "delivered")
        obj = _api_message(fresh_sandbox.base_url, msg.sid)
        contract.check_message(obj)
        assert obj["status"] == "delivered" and obj["num_segments"] == "1" and obj["from"]
        validator = RequestValidator(gw.SANDBOX_AUTH_TOKEN)
        statuses = []
        for got in receiver.received:
            params = dict(parse_qsl(got["body"].decode()))
            assert validator.validate(receiver.url, params, got["headers"]["X-Twilio-Signature"])
            assert not validator.validate(receiver.url + "?x=1", params, got["headers"]["X-Twilio-Signature"])
            statuses.append(params["MessageStatus"])
            assert params["MessageSid"] == msg.sid and params["AccountSid"] == gw.SANDBOX_ACCOUNT_SID
        assert statuses == ["sent", "delivered"]
    finally:
        receiver.close()


@pytest.mark.parametrize(("to", "code"), [("+1512555", 21211), ("5125550123", 21211), ("+442079460000", 21614)])
def test_sms_refusals_for_numbers_match_twilio(fresh_sandbox: RunningSandbox, to: str, code: int) -> None:
    with pytest.raises(gw.TextError) as err:
        _gateway(fresh_sandbox.base_url).send(to, "Hi", status_callback=None)
    assert err.value.code == code and err.value.status == 400 and not err.value.retryable
    assert fresh_sandbox.control.twilio_messages() == []


def test_sms_to_a_number_that_replied_stop_is_refused_with_21610(fresh_sandbox: RunningSandbox) -> None:
    httpx.post(f"{fresh_sandbox.base_url}/phone/reply", data={"number": TO, "keyword": "STOP"}, trust_env=False)
    with pytest.raises(gw.TextError) as err:
        _gateway(fresh_sandbox.base_url).send(TO, "Hi", status_callback=None)
    assert err.value.code == 21610
    httpx.post(f"{fresh_sandbox.base_url}/phone/reply", data={"number": TO, "keyword": "START"}, trust_env=False)
    assert _gateway(fresh_sandbox.base_url).send(TO, "Hi", status_callback=None).status == "queued"


@pytest.mark.parametrize(("ahead", "code"), [(timedelta(minutes=5), 35114), (timedelta(days=36), 35115)])
def test_twilio_scheduling_window_is_enforced(fresh_sandbox: RunningSandbox, ahead: timedelta, code: int) -> None:
    with pytest.raises(gw.TextError) as err:
        _gateway(fresh_sandbox.base_url).send(TO, "Later", status_callback=None, send_at=datetime.now(UTC) + ahead)
    assert err.value.code == code


def test_twilio_schedule_needs_a_messaging_service_and_send_at(fresh_sandbox: RunningSandbox) -> None:
    url = f"{fresh_sandbox.base_url}/twilio/2010-04-01/Accounts/{gw.SANDBOX_ACCOUNT_SID}/Messages.json"
    auth = (gw.SANDBOX_ACCOUNT_SID, gw.SANDBOX_AUTH_TOKEN)
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cases = [({"ScheduleType": "fixed"}, 35111), ({"ScheduleType": "fixed", "SendAt": later, "From": "+15005550006",
                                                   "MessagingServiceSid": None}, 35118)]
    for extra, code in cases:
        form = {"To": TO, "Body": "x", "MessagingServiceSid": gw.SANDBOX_MESSAGING_SERVICE_SID, **extra}
        resp = httpx.post(url, data={k: v for k, v in form.items() if v is not None}, auth=auth, trust_env=False)
        assert resp.status_code == 400 and resp.json()["code"] == code, resp.text


def test_twilio_scheduled_text_is_released_at_its_time_or_canceled(fresh_sandbox: RunningSandbox) -> None:
    gateway = _gateway(fresh_sandbox.base_url)
    keep = gateway.send(TO, "Reminder A", status_callback=None, send_at=datetime.now(UTC) + timedelta(hours=2))
    stop = gateway.send(TO, "Reminder B", status_callback=None, send_at=datetime.now(UTC) + timedelta(hours=2))
    assert keep.status == stop.status == "scheduled"
    contract.check_message(_api_message(fresh_sandbox.base_url, keep.sid))
    assert gateway.cancel(stop.sid).status == "canceled"
    with pytest.raises(gw.TextError):
        gateway.cancel(stop.sid)
    fresh_sandbox.control.advance_clock(2 * 3600 + 1)
    rows = fresh_sandbox.control.wait_for(fresh_sandbox.control.twilio_messages,
                                    lambda rows: {r["body"]: r["status"] for r in rows}.get("Reminder A")
                                    == "delivered")
    assert {r["body"]: r["status"] for r in rows}["Reminder B"] == "canceled"


def test_twilio_bad_credentials_are_refused_with_20003(fresh_sandbox: RunningSandbox) -> None:
    bad = gw.TwilioGateway(gw.TwilioTarget(gw.SANDBOX_ACCOUNT_SID, "0" * 32, gw.SANDBOX_MESSAGING_SERVICE_SID,
                                           fresh_sandbox.base_url + "/twilio", True))
    with pytest.raises(gw.TextError) as err:
        bad.send(TO, "x", status_callback=None)
    assert err.value.code == 20003 and err.value.status == 401


def test_twilio_account_and_messaging_service_fetch(fresh_sandbox: RunningSandbox) -> None:
    gateway = _gateway(fresh_sandbox.base_url)
    assert gateway.account_status() == "active"
    assert gateway.messaging_service_name()


def test_sms_phone_page_shows_delivered_texts_with_tappable_links(fresh_sandbox: RunningSandbox) -> None:
    _gateway(fresh_sandbox.base_url).send(TO, "Pay here: http://127.0.0.1:1/i/in_123 thanks", status_callback=None)
    fresh_sandbox.control.wait_for(fresh_sandbox.control.twilio_messages, lambda rows: rows[0]["status"] == "delivered")
    html = httpx.get(f"{fresh_sandbox.base_url}/phone", trust_env=False).text
    assert TO in html and '<a href="http://127.0.0.1:1/i/in_123">' in html and "Reply STOP" in html


def test_twilio_every_request_and_message_matches_twilios_api_description(fresh_sandbox: RunningSandbox) -> None:
    """The contract: each request the gateway made (send, schedule, fetch, cancel, list, account)
    against the trimmed OpenAPI, and each Message returned against its schema."""
    gateway = _gateway(fresh_sandbox.base_url)
    now = datetime.now(UTC)
    sent = gateway.send(TO, "Contract", status_callback="http://127.0.0.1:9/cb")
    scheduled = gateway.send(TO, "Contract later", status_callback=None, send_at=now + timedelta(hours=1))
    gateway.fetch(sent.sid)
    gateway.cancel(scheduled.sid)
    gateway.find_sent(TO, "Contract", now - timedelta(minutes=1))
    gateway.account_status()
    seen = set()
    for entry in fresh_sandbox.control.requests(service="twilio"):
        if entry["path"].startswith("/messaging/"):
            seen.add("messaging")
            continue
        seen.add(contract.check_request(entry["method"], entry["path"], [tuple(p) for p in entry["form"]],
                                        entry["query"]))
    assert len(seen) >= 3
    for row in fresh_sandbox.control.twilio_messages():
        contract.check_message(_api_message(fresh_sandbox.base_url, row["sid"]))
