"""Settings → Text messages (Twilio) with AppTest against the sandbox's Twilio: the go-live check
(account active, Messaging Service exists), Send test text, the auth token stored encrypted
and shown masked, SIDs checked next to their fields, the A2P 10DLC note."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from crm.config.settings import load_settings
from sandbox.testing import RunningSandbox
from tests.shown import shown
from tests.texts_helpers import point_texts_at

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def settings_page(db: Conn, crm_sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch,
                  app_as: Callable[..., Any]) -> Any:
    point_texts_at(db, crm_sandbox, monkeypatch)
    at = app_as("owner", "pages/settings.py")
    assert any(shown(s.value) == "Text messages (Twilio)" for s in at.subheader)
    return at


def test_twilio_settings_check_and_a2p_note(settings_page: Any) -> None:
    at = settings_page
    assert any("A2P 10DLC" in shown(i.value) and "30034" in shown(i.value) for i in at.info)
    at.button(key="twilio_check").click().run()
    messages = [shown(s.value) for s in at.success]
    assert any("is active" in m for m in messages) and any("exists" in m for m in messages), messages


def test_sms_settings_send_test_text(settings_page: Any, crm_sandbox: RunningSandbox) -> None:
    at = settings_page
    at.text_input(key="test_text_to").set_value("not a phone")
    at.button[[b.label for b in at.button].index("Send test text")].click().run()
    assert any("not a phone number" in shown(e.value) for e in at.error)
    assert crm_sandbox.control.twilio_messages() == []
    at.text_input(key="test_text_to").set_value("(512) 555-0188")
    at.button[[b.label for b in at.button].index("Send test text")].click().run()
    assert any(shown(s.value) == "Texted to +15125550188." for s in at.success), [e.value for e in at.error]
    assert [m["to"] for m in crm_sandbox.control.twilio_messages()] == ["+15125550188"]


def test_twilio_settings_token_encrypted_and_masked(db: Conn, settings_page: Any) -> None:
    at = settings_page
    token = "0123456789abcdef0123456789abcdef"
    at.text_input(key="twilio_sid").set_value("AC" + "1" * 31)
    at.text_input(key="twilio_token_input").set_value(token)
    at.button[[b.label for b in at.button].index("Save text settings")].click().run()
    assert any("32 hexadecimal" in shown(e.value) for e in at.error), "a short SID is refused next to its field"
    assert load_settings(db)["twilio.auth_token"] == ""
    at.text_input(key="twilio_sid").set_value("AC" + "1" * 32)
    at.text_input(key="twilio_token_input").set_value(token)
    at.button[[b.label for b in at.button].index("Save text settings")].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert load_settings(db)["twilio.auth_token"] == token
    stored = db.execute("SELECT ciphertext FROM crm.secrets WHERE name = 'twilio.auth_token'").fetchone()
    assert stored is not None and token.encode() not in bytes(stored["ciphertext"])
    page_text = " ".join(str(getattr(e, "value", "")) for e in at.main)
    assert token not in page_text
