"""Settings: stored values, environment precedence, secrets encrypted and masked."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from crm.secrets_store import mask
from crm.settings import load_settings, save_setting, secret_hints

KEY = "sk_test_51Habcdefghijklmnop4242"


def test_defaults(db: psycopg.Connection[Any]) -> None:
    settings = load_settings(db)
    assert settings["reminders.offsets_days"] == [7, 14, 30]
    assert settings.stripe_mode == "test"
    assert settings.stripe_sandboxed and settings.resend_sandboxed


def test_secret_is_encrypted_at_rest_and_masked(db: psycopg.Connection[Any]) -> None:
    save_setting(db, "stripe.test.secret_key", KEY)
    raw = db.execute("SELECT ciphertext, hint FROM crm.secrets WHERE name = 'stripe.test.secret_key'").fetchone()
    assert raw is not None
    assert KEY.encode() not in bytes(raw["ciphertext"])
    assert raw["hint"] == "sk_test_…4242"
    assert secret_hints(db) == {"stripe.test.secret_key": "sk_test_…4242"}
    settings = load_settings(db)
    assert settings.stripe_secret_key() == KEY
    assert not settings.stripe_sandboxed


def test_environment_wins(db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    save_setting(db, "business.name", "Stored Name")
    save_setting(db, "reminders.offsets_days", [3, 10])
    monkeypatch.setenv("BUSINESS_NAME", "Env Name")
    monkeypatch.setenv("STRIPE_MODE", "live")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b")
    settings = load_settings(db)
    assert settings["business.name"] == "Env Name"
    assert settings.sources["business.name"] == "env"
    assert settings["reminders.offsets_days"] == [3, 10]
    assert settings.stripe_webhook_secrets("live") == ["whsec_a", "whsec_b"]
    assert settings.stripe_webhook_secrets("test") == []


@pytest.mark.parametrize(
    ("secret", "shown"),
    [("re_123456789abcdef", "re_…cdef"), ("whsec_abcdefghijkl", "whsec_…ijkl"), ("short", "…"), ("", "")],
)
def test_mask(secret: str, shown: str) -> None:
    assert mask(secret) == shown
