"""Text-to-pay (crm/texts/send.py) against the sandbox's Twilio over HTTP with twilio-python:
an invalid number is refused before anything is recorded or sent; a double tap sends one
text; a lost answer is found again at Twilio, not sent twice; 21610 turns texts off."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from crm.texts.send import TextRefused, text_pay_link
from sandbox.testing import RunningSandbox
from tests.texts_helpers import PHONE, Conn, open_invoice, point_texts_at


@pytest.fixture
def texting(db: Conn, fresh_sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> RunningSandbox:
    point_texts_at(db, fresh_sandbox, monkeypatch)
    return fresh_sandbox


def _rows(db: Conn) -> list[dict[str, Any]]:
    return db.execute("SELECT * FROM crm.text_messages ORDER BY id").fetchall()


@pytest.mark.parametrize("typed", ["555-01", "call me", "+1 512 555", "+44 7700 900123"])
def test_sms_invalid_phone_is_refused_before_sending(db: Conn, texting: RunningSandbox, typed: str) -> None:
    ids = open_invoice(db, texting)
    with pytest.raises(TextRefused) as err:
        text_pay_link(ids["invoice_id"], typed, "staff@example.com")
    assert err.value.field == "phone" and "phone number" in str(err.value)
    assert _rows(db) == [] and texting.control.twilio_messages() == []


def test_sms_text_to_pay_body_and_number_read_in_business_country(db: Conn, texting: RunningSandbox) -> None:
    ids = open_invoice(db, texting)
    result = text_pay_link(ids["invoice_id"], "(512) 555-0123", "staff@example.com")
    assert result.ok and result.sid and result.status == "queued", result
    [msg] = texting.control.twilio_messages()
    assert msg["to"] == PHONE and msg["messaging_service_sid"].startswith("MG")
    assert "Acme HVAC & Plumbing" in msg["body"] and "$345.00" in msg["body"] and "7F3A-0001" in msg["body"]
    assert f"/i/{ids['stripe_invoice_id']}" in msg["body"]
    [row] = _rows(db)
    assert (row["sid"], row["status"], row["kind"]) == (msg["sid"], "queued", "pay_link")


def test_sms_double_tap_sends_one_text(db: Conn, texting: RunningSandbox) -> None:
    """Two taps at once (two threads, two connections) and a third a moment later: one text
    at the emulator, one record. Checked by hand: with DOUBLE_TAP_WINDOW at zero (no lookup) the
    emulator got two texts and this failed."""
    ids = open_invoice(db, texting)
    texting.control.add_fault(service="twilio", latency_ms=300)  # the first call is still going
    results: list[Any] = []
    taps = [threading.Thread(target=lambda: results.append(text_pay_link(ids["invoice_id"], PHONE, "a@x.com")))
            for _ in range(2)]
    for tap in taps:
        tap.start()
    for tap in taps:
        tap.join(30)
    results.append(text_pay_link(ids["invoice_id"], PHONE, "a@x.com"))
    assert len(texting.control.twilio_messages()) == 1
    assert len(_rows(db)) == 1
    assert sum(1 for r in results if r.already) == 2 and all(r.ok for r in results)


def test_sms_retry_after_a_lost_answer_finds_the_text_instead_of_sending_again(db: Conn,
                                                                              texting: RunningSandbox) -> None:
    """Twilio created the text but the answer was lost (500 after the handler ran): the retry
    lists the number's texts, finds it by body and records its SID."""
    ids = open_invoice(db, texting)
    texting.control.add_fault(service="twilio", method="POST", path="/2010-04-01/Accounts/*/Messages.json",
                              status=500, phase="after", times=1)
    first = text_pay_link(ids["invoice_id"], PHONE, "a@x.com")
    assert not first.ok and first.status == "sending"
    second = text_pay_link(ids["invoice_id"], PHONE, "a@x.com")
    [msg] = texting.control.twilio_messages()
    assert second.ok and second.sid == msg["sid"]
    [row] = _rows(db)
    assert row["sid"] == msg["sid"] and row["status"] in ("queued", "sent", "delivered")


def test_sms_21610_turns_texts_off_and_the_next_tap_is_refused(db: Conn, texting: RunningSandbox) -> None:
    ids = open_invoice(db, texting)
    texting.control.set_twilio_number(PHONE, opted_out=True)
    result = text_pay_link(ids["invoice_id"], PHONE, "a@x.com")
    assert not result.ok and "replied STOP" in result.message
    customer = db.execute("SELECT texts_off, texts_off_reason FROM crm.customers WHERE id = %s",
                          (ids["customer_id"],)).fetchone()
    assert customer is not None and customer["texts_off"] and "21610" in customer["texts_off_reason"]
    with pytest.raises(TextRefused, match="replied STOP"):
        text_pay_link(ids["invoice_id"], PHONE, "a@x.com")
    assert texting.control.twilio_messages() == []


def test_sms_refused_for_a_paid_invoice(db: Conn, texting: RunningSandbox) -> None:
    ids = open_invoice(db, texting)
    db.execute("UPDATE crm.invoices SET status = 'paid', amount_paid_cents = amount_due_cents, paid_at = now() "
               "WHERE id = %s", (ids["invoice_id"],))
    with pytest.raises(TextRefused, match="paid"):
        text_pay_link(ids["invoice_id"], PHONE, "a@x.com")
    assert texting.control.twilio_messages() == []
