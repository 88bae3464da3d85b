"""Settings: stored values, environment precedence, secrets encrypted and masked."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from crm.config.secrets_store import mask
from crm.config.settings import load_settings, save_setting, secret_hints

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


def test_a_deployment_without_crm_secret_key_refuses_to_store_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from crm.config import secrets_store

    monkeypatch.delenv("CRM_SECRET_KEY")
    monkeypatch.delenv("CRM_EMBEDDED_DATABASE", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example.com/crm")
    with pytest.raises(secrets_store.SecretKeyError, match="CRM_SECRET_KEY is not set"):
        secrets_store.encrypt("sk_live_abc")


def test_the_embedded_database_uses_a_local_key_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from crm.config import secrets_store

    monkeypatch.delenv("CRM_SECRET_KEY")
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:54329/crm")
    monkeypatch.setenv("CRM_EMBEDDED_DATABASE", "1")
    assert secrets_store.decrypt(secrets_store.encrypt("re_secret")) == "re_secret"
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
