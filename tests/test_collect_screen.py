"""The Collect screen (pages/collect.py) with Streamlit's AppTest against the sandbox: the
customer, what is due and a QR of the pay link; Text it refuses a bad number next to the field
and sends nothing; texts a good one; the states (waiting, processing, declined with the
reason, paid with the card and time) from crm/collect/state.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import segno

from crm.collect.card import card_label
from crm.collect.state import collect_state
from sandbox.testing import RunningSandbox
from tests.shown import shown
from tests.texts_helpers import point_texts_at
from ui.qr import qr_svg

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def sent_invoice(db: Conn, crm_sandbox: RunningSandbox, make_invoice: Callable[..., int],
                 monkeypatch: pytest.MonkeyPatch) -> int:
    from crm.send.workflow import send_invoice

    point_texts_at(db, crm_sandbox, monkeypatch)
    invoice_id = make_invoice()
    assert send_invoice(invoice_id, "staff@example.com").ok
    return invoice_id


def _collect(app_as: Callable[..., Any], invoice_id: int) -> Any:
    at = app_as("staff", "pages/collect.py")
    at.session_state["collect_invoice"] = invoice_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_collect_screen_shows_customer_amount_due_qr_and_waiting(db: Conn, sent_invoice: int,
                                                                 app_as: Callable[..., Any]) -> None:
    at = _collect(app_as, sent_invoice)
    row = db.execute("SELECT amount_due_cents FROM crm.invoices WHERE id = %s", (sent_invoice,)).fetchone()
    assert row is not None
    assert [shown(t.value) for t in at.title] == ["Dana Whitfield"]
    assert [m.value for m in at.metric] == [f"${row['amount_due_cents'] / 100:,.2f}"]
    assert any(shown(i.value).startswith("**Waiting for payment") for i in at.info), [shown(i.value) for i in at.info]
    [qr] = at.get("image")
    assert qr.proto.imgs[0].caption == "Scan to pay" and qr.proto.imgs[0].url.startswith("data:image/svg+xml")
    assert [b.label for b in at.button if b.key in ("collect_text", "collect_email")] == ["Text it", "Email it"]


def test_collect_screen_text_it_refuses_a_bad_number_next_to_the_field(db: Conn, sent_invoice: int,
                                                                       crm_sandbox: RunningSandbox,
                                                                       app_as: Callable[..., Any]) -> None:
    at = _collect(app_as, sent_invoice)
    at.text_input(key=f"collect_phone_{sent_invoice}").set_value("555-01")
    at.button(key="collect_text").click().run()
    assert any("not a valid phone number" in shown(e.value) for e in at.error), [shown(e.value) for e in at.error]
    assert crm_sandbox.control.twilio_messages() == []
    assert db.execute("SELECT count(*) AS n FROM crm.text_messages").fetchone() == {"n": 0}


def test_collect_screen_text_it_sends_the_pay_link(db: Conn, sent_invoice: int, crm_sandbox: RunningSandbox,
                                                   app_as: Callable[..., Any]) -> None:
    at = _collect(app_as, sent_invoice)
    at.text_input(key=f"collect_phone_{sent_invoice}").set_value("(512) 555-0123")
    at.button(key="collect_text").click().run()
    assert any(shown(s.value) == "Texted to +15125550123." for s in at.success), [e.value for e in at.error]
    [msg] = crm_sandbox.control.twilio_messages()
    url = db.execute("SELECT hosted_invoice_url FROM crm.invoices WHERE id = %s", (sent_invoice,)).fetchone()
    assert url is not None and msg["body"].endswith(url["hosted_invoice_url"])
    phone = db.execute("SELECT c.phone FROM crm.customers c JOIN crm.invoices i ON i.customer_id = c.id "
                       "WHERE i.id = %s", (sent_invoice,)).fetchone()
    assert phone == {"phone": "+15125550123"}, "kept for next time: the customer had no phone"


def test_collect_screen_opens_from_an_open_invoice(sent_invoice: int, app_as: Callable[..., Any]) -> None:
    at = app_as("staff", "pages/invoices.py")
    at.session_state["open_invoice"] = sent_invoice
    at.run()
    assert any(b.key == f"collect_{sent_invoice}" and b.label == "Collect now" for b in at.button)


def _view(**over: Any) -> dict[str, Any]:
    base = {"status": "open", "currency": "usd", "amount_due_cents": 34_500, "amount_paid_cents": 0,
            "amount_remaining_cents": 34_500, "paid_at": None, "last_payment_at": None, "processing": False,
            "failed_at": None, "decline_code": None, "decline_error_code": None, "decline_message": None}
    return {**base, **over}


def test_collect_screen_states_paid_processing_declined() -> None:
    paid_at = datetime(2026, 12, 2, 20, 2, tzinfo=UTC)
    paid = collect_state(_view(status="paid", amount_paid_cents=34_500, paid_at=paid_at), "America/Chicago",
                         "Visa •••• 4242")
    assert (paid.kind, paid.headline) == ("paid", "Paid $345.00 · Visa •••• 4242 · 2:02 PM")
    processing = collect_state(_view(processing=True), "UTC")
    assert processing.kind == "processing" and processing.headline.startswith("Processing")
    declined = collect_state(_view(failed_at=paid_at, decline_code="insufficient_funds",
                                   decline_error_code="card_declined"), "UTC")
    assert (declined.kind, declined.headline) == ("declined", "Declined · insufficient funds")
    assert collect_state(_view(), "UTC").headline == "Waiting for payment · $345.00"
    assert collect_state(_view(status="void"), "UTC").kind == "closed"


def test_collect_screen_card_label() -> None:
    assert card_label({"payment_method_details": {"card": {"brand": "visa", "last4": "4242"}}}) == "Visa •••• 4242"
    assert card_label({"payment_method_details": {"us_bank_account": {"last4": "6789"}}}) == "Bank account •••• 6789"
    assert card_label({}) is None


def test_qr_code_of_the_pay_link_is_an_svg_segno_made() -> None:
    url = "http://127.0.0.1:12111/i/in_1Qx2y3z4"
    svg = qr_svg(url)
    assert svg.startswith("<svg") and "<path" in svg and 'viewBox="0 0' in svg
    assert svg == segno.make(url, error="m", micro=False).svg_inline(scale=8, border=4, dark="#111111",
                                                                     light="#ffffff", omitsize=True)
    assert segno.make(url, error="m", micro=False).error == "M"
