"""A wrong CRM_SECRET_KEY with every kind of secret stored: every page of the dashboard still
renders, says what is wrong and what to do, and Settings lets the owner re-enter what it
cannot decrypt.

Failed on the code before the fix (checked by hand): Settings stopped with
UndecryptableSecret at `stored_secrets = current.stripe_webhook_secret_entries(mode)`,
below its "re-enter" banner, so the secrets could not be re-entered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from crm.config.secrets_store import UNDECRYPTABLE
from crm.config.settings import save_setting
from tests.test_reminders_support import WEBHOOK_SECRET

PAGES = ["pages/invoices.py", "pages/jobs.py", "pages/customers.py", "pages/activity.py",
         "pages/collections_page.py", "pages/settings.py", "pages/users.py"]


@pytest.fixture
def wrong_key(db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in [("stripe.test.secret_key", "sk_test_51Hwrongkeypages4242"),
                       ("stripe.live.secret_key", "sk_live_51Hwrongkeypages4242"),
                       ("stripe.test.webhook_secrets", "whsec_test_wrong_key_0123456789"),
                       ("stripe.live.webhook_secrets", "whsec_live_wrong_key_0123456789"),
                       ("resend.api_key", "re_wrongkeypages_0123456789"),
                       ("resend.webhook_secret", WEBHOOK_SECRET)]:
        save_setting(db, key, value)
    monkeypatch.setenv("CRM_SECRET_KEY", Fernet.generate_key().decode())


@pytest.mark.usefixtures("wrong_key")
@pytest.mark.parametrize("page", PAGES)
def test_wrong_key_every_page_renders_and_says_what_to_do(app_as: Callable[..., Any], page: str) -> None:
    at = app_as("owner", page)
    assert not at.exception, [e.value for e in at.exception]
    shown = [e.value for e in at.error] + [w.value for w in at.warning]
    assert any(UNDECRYPTABLE in s and "CRM_SECRET_KEYS_OLD" in s for s in shown), shown


@pytest.mark.usefixtures("wrong_key")
def test_wrong_key_settings_lets_the_owner_re_enter_the_webhook_secret(
        db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    from crm.config.settings import load_settings

    at = app_as("owner", "pages/settings.py")
    fresh = "whsec_" + "cmUtZW50ZXJlZC1yZXNlbmQtc2VjcmV0LTAxMjM0NQ=="
    at.text_input(key="resend_webhook_input").input(fresh)
    at.text_input(key="email_from").input("billing@example.com")
    next(b for b in at.button if b.label == "Save email settings").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert load_settings(db)["resend.webhook_secret"] == fresh
