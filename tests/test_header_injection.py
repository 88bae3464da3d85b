"""CR/LF in what becomes an email header (from, reply-to, subject): refused at the Settings
field, and flattened to one line in every request to Resend whatever is stored.

Failed on the code before the fix (checked by hand): a business name with CR/LF stored in
Settings reached the sandbox's Resend `from` (and the subject) with the line break in it,
and the Settings form saved such a from address.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from crm.config.settings import load_settings, save_setting
from crm.email.header_values import flattened, one_line
from crm.send.workflow import send_invoice
from crm.validation import header_error, name_error
from sandbox.testing import RunningSandbox
from tests.fixtures.workflow import STAFF

Conn = psycopg.Connection[dict[str, Any]]
EVIL = "Acme\r\nBcc: victim@example.com"


def test_header_injection_a_stored_business_name_reaches_resend_on_one_line(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    save_setting(db, "business.name", EVIL)
    save_setting(db, "email.from", "billing@acme-hvac.test")

    assert send_invoice(draft_invoice, STAFF).ok

    [email] = crm_sandbox.control.resend_emails()
    assert email["from"] == '"Acme Bcc: victim@example.com" <billing@acme-hvac.test>'
    assert "\r" not in email["subject"] and "\n" not in email["subject"] and "Acme Bcc:" in email["subject"]


@pytest.mark.parametrize("field", ["email_from", "email_reply_to"])
def test_header_injection_the_settings_fields_refuse_a_line_break(
        db: Conn, app_as: Callable[..., Any], field: str) -> None:
    before = load_settings(db)
    at = app_as("owner", "pages/settings.py")
    at.text_input(key="email_from").input("billing@acme-hvac.test")
    at.text_input(key=field).input("Acme <billing@acme-hvac.test>\r\nBcc: victim@example.com"
                                   if field == "email_from" else "office@acme-hvac.test\nBcc: x@example.com")
    next(b for b in at.button if b.label == "Save email settings").click().run()
    assert not at.exception
    assert any("must be one line" in e.value for e in at.error), [e.value for e in at.error]
    after = load_settings(db)
    assert (after["email.from"], after["email.reply_to"]) == (before["email.from"], before["email.reply_to"])


def test_header_injection_rules() -> None:
    assert one_line("Acme\r\n\tBcc:\u2028x") == "Acme Bcc: x"
    assert flattened({"from": "a\nb", "reply_to": ["c\r\nd"], "subject": "e\rf", "text": "keep\nthis"}) == \
        {"from": "a b", "reply_to": ["c d"], "subject": "e f", "text": "keep\nthis"}
    assert header_error("ok value", "X") is None and header_error("a\nb", "X")
    assert name_error(EVIL, "Business name") == "Business name must be one line (no line breaks or control characters)."
