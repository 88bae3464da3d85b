"""Owner-edited settings: what exists, defaults, environment overrides, storage.

Each setting has a key in crm.settings (or crm.secrets when it is secret) and an
environment variable that, when set, wins over the stored value. The dashboard's
Settings page and every worker read settings through `load_settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crm.config import secrets_store
from crm.stripe import webhook_secrets
from db import settings_store
from db.driver import Conn

SANDBOX_URL_DEFAULT = "http://127.0.0.1:12111"


@dataclass(frozen=True)
class SettingSpec:
    key: str
    env: str
    default: Any
    secret: bool = False
    label: str = ""


SPECS: dict[str, SettingSpec] = {
    s.key: s
    for s in [
        SettingSpec("stripe.mode", "STRIPE_MODE", "test", label="Stripe mode"),
        SettingSpec("stripe.test.secret_key", "STRIPE_TEST_SECRET_KEY", "", secret=True,
                    label="Stripe test secret key"),
        SettingSpec("stripe.live.secret_key", "STRIPE_LIVE_SECRET_KEY", "", secret=True,
                    label="Stripe live secret key"),
        SettingSpec("stripe.test.webhook_secrets", "STRIPE_TEST_WEBHOOK_SECRET", "", secret=True,
                    label="Stripe test webhook signing secrets"),
        SettingSpec("stripe.live.webhook_secrets", "STRIPE_LIVE_WEBHOOK_SECRET", "", secret=True,
                    label="Stripe live webhook signing secrets"),
        SettingSpec("stripe.test.webhook_endpoint_id", "STRIPE_TEST_WEBHOOK_ENDPOINT_ID", "",
                    label="Stripe test webhook endpoint (we_...)"),
        SettingSpec("stripe.live.webhook_endpoint_id", "STRIPE_LIVE_WEBHOOK_ENDPOINT_ID", "",
                    label="Stripe live webhook endpoint (we_...)"),
        SettingSpec("resend.api_key", "RESEND_API_KEY", "", secret=True, label="Resend API key"),
        SettingSpec("resend.webhook_secret", "RESEND_WEBHOOK_SECRET", "", secret=True, label="Resend webhook secret"),
        SettingSpec("email.from", "EMAIL_FROM", "billing@example.com", label="From address"),
        SettingSpec("email.reply_to", "EMAIL_REPLY_TO", "", label="Reply-to address"),
        SettingSpec("business.name", "BUSINESS_NAME", "Acme Home Services", label="Business name"),
        SettingSpec("business.timezone", "BUSINESS_TIMEZONE", "America/Chicago", label="Time zone"),
        SettingSpec("business.currency", "BUSINESS_CURRENCY", "usd", label="Currency"),
        SettingSpec("invoice.payment_terms_days", "PAYMENT_TERMS_DAYS", 14, label="Default payment terms (days)"),
        SettingSpec("reminders.offsets_days", "REMINDER_OFFSETS_DAYS", [7, 14, 30],
                    label="Reminder offsets (days after due)"),
        SettingSpec("reminders.send_hour", "REMINDER_SEND_HOUR", 9, label="Reminder send hour (local)"),
        SettingSpec("reminders.tones", "REMINDER_TONES", "",
                    label="Reminder tones in order (upcoming, gentle, firm, final; empty = escalate automatically)"),
    ]
}


def _coerce(spec: SettingSpec, raw: str) -> Any:
    """Environment values are text; give them the type of the default."""
    if isinstance(spec.default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(spec.default, int):
        return int(raw)
    if isinstance(spec.default, list):
        return [int(x) for x in raw.replace(" ", "").split(",") if x]
    return raw


def env_override(key: str) -> Any | None:
    spec = SPECS[key]
    # STRIPE_SECRET_KEY / STRIPE_WEBHOOK_SECRET name the secrets of the current STRIPE_MODE.
    raw = os.environ.get(spec.env)
    if raw is None and key.startswith("stripe.") and key.endswith(("secret_key", "webhook_secrets")):
        mode = os.environ.get("STRIPE_MODE", "").strip()
        if mode and key.startswith(f"stripe.{mode}."):
            generic = "STRIPE_SECRET_KEY" if key.endswith("secret_key") else "STRIPE_WEBHOOK_SECRET"
            raw = os.environ.get(generic)
    if raw is None or raw.strip() == "":
        return None
    return _coerce(spec, raw.strip())


UNDECRYPTABLE_HINT = "cannot be decrypted with CRM_SECRET_KEY — re-enter"


@dataclass(frozen=True)
class Settings:
    """`sources[key]` is 'env', 'database', 'default' or 'undecryptable' (stored, but no
    configured key decrypts it). Reading an undecryptable secret raises
    UndecryptableSecret (so nothing silently falls back to the sandbox); pages can still
    render, check `undecryptable` and offer to re-enter it."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    undecryptable: frozenset[str] = frozenset()
    undecryptable_reason: str = ""

    def __getitem__(self, key: str) -> Any:
        if key in self.undecryptable:
            raise secrets_store.UndecryptableSecret(self.undecryptable_reason)
        return self.values[key]

    @property
    def stripe_mode(self) -> str:
        return str(self.values["stripe.mode"])

    def stripe_secret_key(self, mode: str | None = None) -> str:
        return str(self[f"stripe.{mode or self.stripe_mode}.secret_key"])

    def stripe_webhook_secret_entries(self, mode: str) -> list[webhook_secrets.SecretEntry]:
        return webhook_secrets.parse(str(self[f"stripe.{mode}.webhook_secrets"]))

    def stripe_webhook_secrets(self, mode: str, now: datetime | None = None) -> list[str]:
        """The signing secrets a delivery for this mode may carry now (crm/stripe/webhook_secrets.py)."""
        key = f"stripe.{mode}.secret_key"
        # An undecryptable key is still a key: never the sandbox's secrets in its place.
        origin = "stripe" if key in self.undecryptable or self.values[key] else "sandbox"
        return webhook_secrets.accepted(self.stripe_webhook_secret_entries(mode), origin, now or datetime.now(UTC))

    @property
    def stripe_sandboxed(self) -> bool:
        """No Stripe key for the current mode: the offline sandbox stands in (an undecryptable
        key is a key: never the sandbox in its place)."""
        key = f"stripe.{self.stripe_mode}.secret_key"
        return key not in self.undecryptable and not self.values[key]

    @property
    def resend_sandboxed(self) -> bool:
        return "resend.api_key" not in self.undecryptable and not self.values["resend.api_key"]


def load_settings(conn: Conn) -> Settings:
    stored = settings_store.stored_values(conn)
    secrets = settings_store.stored_ciphertexts(conn)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    undecryptable: set[str] = set()
    reason = ""
    for key, spec in SPECS.items():
        override = env_override(key)
        if override is not None:
            values[key], sources[key] = override, "env"
        elif spec.secret and key in secrets:
            try:
                values[key], sources[key] = secrets_store.decrypt(secrets[key]), "database"
            except secrets_store.SecretKeyError as exc:  # wrong, lost or malformed CRM_SECRET_KEY
                values[key], sources[key], reason = "", "undecryptable", str(exc)
                undecryptable.add(key)
        elif not spec.secret and key in stored:
            values[key], sources[key] = stored[key], "database"
        else:
            values[key], sources[key] = spec.default, "default"
    return Settings(values=values, sources=sources, undecryptable=frozenset(undecryptable),
                    undecryptable_reason=reason)


def save_setting(conn: Conn, key: str, value: Any, user_id: int | None = None, hint: str | None = None) -> None:
    """Store one setting (a secret encrypted; `hint` is what is shown back, masked by default)."""
    spec = SPECS[key]
    if spec.secret:
        text = str(value).strip()
        settings_store.save_secret(conn, key, secrets_store.encrypt(text),
                                   hint if hint is not None else secrets_store.mask(text), user_id)
    else:
        settings_store.save_value(conn, key, value, user_id)


def store_registered_webhook_secret(conn: Conn, settings: Settings, mode: str, secret: str, endpoint_id: str,
                                    user_id: int | None, now: datetime | None = None) -> None:
    """A newly registered endpoint's secret becomes the current one; older ones start their
    rotation window (crm/stripe/webhook_secrets.py)."""
    origin = "stripe" if settings.stripe_secret_key(mode) else "sandbox"
    entries = webhook_secrets.with_new_secret(settings.stripe_webhook_secret_entries(mode), secret, endpoint_id,
                                              origin, now or datetime.now(UTC))
    _save_webhook_secrets(conn, mode, entries, user_id)


def remove_webhook_secret(conn: Conn, settings: Settings, mode: str, index: int, user_id: int | None) -> None:
    """The owner removes one stored signing secret (by its place in the list Settings shows)."""
    _save_webhook_secrets(conn, mode, webhook_secrets.without(settings.stripe_webhook_secret_entries(mode), index),
                          user_id)


def _save_webhook_secrets(conn: Conn, mode: str, entries: list[webhook_secrets.SecretEntry],
                          user_id: int | None) -> None:
    hint = ""
    if entries:
        hint = secrets_store.mask(entries[0].secret) + (f" (+{len(entries) - 1} older)" if len(entries) > 1 else "")
    save_setting(conn, f"stripe.{mode}.webhook_secrets", webhook_secrets.serialize(entries) if entries else "",
                 user_id, hint=hint)


def secret_hints(conn: Conn) -> dict[str, str]:
    """What the Settings page shows for stored secrets (masked, never the value)."""
    return settings_store.secret_hints(conn)


def sandbox_url() -> str:
    return os.environ.get("SANDBOX_URL", SANDBOX_URL_DEFAULT).rstrip("/")
