"""Settings → Integrations and Users pages (owner), AppTest against the real database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from crm.config.settings import load_settings
from sandbox.testing import RunningSandbox
from tests.fixtures.dashboard import OWNER_EMAIL
from tests.shown import shown


def _page_text(at: Any) -> str:
    """Everything the page shows as text (where a leaked secret would appear)."""
    parts = [str(e.value) for kind in ("markdown", "caption", "success", "error", "info", "warning", "code")
             for e in getattr(at, kind)]
    parts += [str(m.value) for m in at.metric] + [str(t.value) for t in at.text_input]
    return "\n".join(parts)


def test_stripe_key_is_saved_encrypted_and_shown_masked(db: psycopg.Connection[Any],
                                                        app_as: Callable[..., Any]) -> None:
    secret = "sk_test_51Habcdefghijklmnop4242"
    at = app_as("owner", "pages/settings.py")
    assert "SANDBOX" in _page_text(at)
    at.text_input(key="stripe_test_key_input").input("sk_live_wrongmode123456789")
    next(b for b in at.button if b.label == "Save test key").click().run()
    assert "A test-mode key starts with sk_test_ or rk_test_." in [shown(e.value) for e in at.error]
    assert db.execute("SELECT count(*) AS n FROM crm.secrets").fetchone() == {"n": 0}
    at.text_input(key="stripe_test_key_input").input(secret)
    next(b for b in at.button if b.label == "Save test key").click().run()
    assert "Stripe test key saved (shown masked)." in [shown(s.value) for s in at.success]
    assert "Test secret key: **sk_test_…4242**" in [shown(m.value) for m in at.markdown]
    assert secret not in _page_text(at)
    row = db.execute("SELECT ciphertext, hint FROM crm.secrets WHERE name = 'stripe.test.secret_key'").fetchone()
    assert row is not None and row["hint"] == "sk_test_…4242" and secret.encode() not in bytes(row["ciphertext"])
    assert load_settings(db).stripe_secret_key("test") == secret
    assert not any(m.label == "Stripe" and "SANDBOX" in m.value for m in at.metric)


def test_business_settings_are_validated_then_saved(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    """Business and Reminders are separate sections, each with its own Save; the time zone is
    chosen from a list, so a made-up zone cannot be entered at all."""
    at = app_as("owner", "pages/settings.py")
    assert "Mars/Olympus" not in at.selectbox(key="business_tz").options
    at.text_input(key="business_name").input("<script>")
    next(b for b in at.button if b.label == "Save business settings").click().run()
    errors = [shown(e.value) for e in at.error]
    assert "Business name cannot contain < or > (no HTML)." in errors
    assert db.execute("SELECT count(*) AS n FROM crm.settings").fetchone() == {"n": 0}
    at.text_input(key="offsets").input("30, 3, 10")
    at.text_input(key="tones").input("Gentle, firm , final")
    next(b for b in at.button if b.label == "Save reminders").click().run()
    at.selectbox(key="business_tz").select("Europe/Berlin")
    at.text_input(key="business_name").input("Berlin Boilers")
    next(b for b in at.button if b.label == "Save business settings").click().run()
    saved = load_settings(db)
    assert saved["reminders.offsets_days"] == [3, 10, 30]
    assert saved["reminders.tones"] == "gentle,firm,final"
    assert (saved["business.timezone"], saved["business.name"]) == ("Europe/Berlin", "Berlin Boilers")


def test_reminder_settings_are_validated_before_saving(db: psycopg.Connection[Any],
                                                       app_as: Callable[..., Any]) -> None:
    at = app_as("owner", "pages/settings.py")
    at.text_input(key="offsets").input("7, x")
    at.text_input(key="tones").input("gentle, shouty")
    next(b for b in at.button if b.label == "Save reminders").click().run()
    errors = [shown(e.value) for e in at.error]
    assert any("unknown reminder tone(s) ['shouty']" in e for e in errors)
    assert "Offsets are whole numbers of days, separated by commas." in errors
    assert db.execute("SELECT count(*) AS n FROM crm.settings").fetchone() == {"n": 0}


def test_mode_switch_needs_confirmation(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    at = app_as("owner", "pages/settings.py")
    next(r for r in at.radio if r.label == "Mode").set_value("live")
    next(b for b in at.button if b.label == "Switch mode").click().run()
    assert "Tick the confirmation to switch modes." in [shown(e.value) for e in at.error]
    assert load_settings(db).stripe_mode == "test"
    next(c for c in at.checkbox if c.label == "I understand what changes").check()
    next(r for r in at.radio if r.label == "Mode").set_value("live")
    next(b for b in at.button if b.label == "Switch mode").click().run()
    # Confirmed, but the go-live checklist is not green: the core refuses (tests/test_dashboard_golive.py).
    assert any(shown(e.value).startswith("Live mode is refused until steps 1-5 are green.") for e in at.error)
    assert load_settings(db).stripe_mode == "test"


def test_register_webhook_and_test_email_against_the_sandbox(db: psycopg.Connection[Any],
                                                             crm_sandbox: RunningSandbox,
                                                             app_as: Callable[..., Any]) -> None:
    at = app_as("owner", "pages/settings.py")
    url_input = next(t for t in at.text_input if t.label == "Sidecar URL")
    url_input.input("http://example.com/hooks")
    next(b for b in at.button if b.label == "Register webhook endpoint").click().run()
    assert any("Stripe only delivers to https://" in shown(e.value) for e in at.error)
    next(t for t in at.text_input if t.label == "Sidecar URL").input("http://127.0.0.1:9/webhooks/stripe")
    next(b for b in at.button if b.label == "Register webhook endpoint").click().run()
    assert any(shown(s.value).startswith("Registered we_") for s in at.success), [e.value for e in at.error]
    secrets = load_settings(db).stripe_webhook_secrets("test")
    assert len(secrets) == 1 and secrets[0].startswith("whsec_")
    assert secrets[0] not in _page_text(at)
    at.text_input(key="test_email_to").input("owner@example.com")
    next(b for b in at.button if b.label == "Send test email").click().run()
    assert any(shown(s.value).startswith("Test email sent to owner@example.com") for s in at.success)
    row = db.execute("SELECT kind, to_address, resend_id FROM crm.email_messages").fetchone()
    assert row is not None and row["kind"] == "test" and row["resend_id"]


def test_owner_adds_disables_and_resets_a_user(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    at = app_as("owner", "pages/users.py")
    at.text_input(key="new_user_email").input("bad@")
    at.text_input(key="new_user_pw").input("short")
    next(b for b in at.button if b.label == "Add user").click().run()
    errors = [shown(e.value) for e in at.error]
    assert any("is not a valid email address" in e for e in errors)
    assert "Passwords need at least 10 characters." in errors
    assert db.execute("SELECT count(*) AS n FROM crm.app_users").fetchone() == {"n": 2}
    at.text_input(key="new_user_email").input("New.Hire@example.com")
    at.text_input(key="new_user_pw").input("a long enough password")
    next(b for b in at.button if b.label == "Add user").click().run()
    new = db.execute("SELECT id, role, active FROM crm.app_users WHERE email = 'new.hire@example.com'").fetchone()
    assert new is not None and new["role"] == "staff" and new["active"]
    at.selectbox(key="manage_user").set_value(new["id"]).run()
    at.button(key="disable_user").click().run()
    assert db.execute("SELECT active FROM crm.app_users WHERE id = %s", (new["id"],)).fetchone() == {"active": False}
    db.execute("UPDATE crm.app_users SET failed_logins = 5, locked_until = now() + interval '1 hour' WHERE id = %s",
               (new["id"],))
    at.selectbox(key="manage_user").set_value(new["id"]).run()
    at.text_input(key="reset_pw").input("another long password")
    next(b for b in at.button if b.label == "Reset password").click().run()
    row = db.execute("SELECT failed_logins, locked_until FROM crm.app_users WHERE id = %s", (new["id"],)).fetchone()
    assert row == {"failed_logins": 0, "locked_until": None}
    audit = db.execute("SELECT from_status, to_status, actor, detail::text AS detail FROM crm.audit_log "
                       "WHERE entity = 'user' AND entity_id = %s ORDER BY id", (new["id"],)).fetchall()
    assert [(a["from_status"], a["to_status"], a["actor"]) for a in audit] == [
        (None, "active", OWNER_EMAIL), ("active", "disabled", OWNER_EMAIL), (None, None, OWNER_EMAIL)]
    assert "password reset" in audit[2]["detail"]
    assert not any("another long password" in a["detail"] or "a long enough" in a["detail"] for a in audit)


def test_the_core_refuses_to_disable_the_last_owner(db: psycopg.Connection[Any],
                                                    dashboard_users: dict[str, int]) -> None:
    from crm.users.admin import UserAdminError, set_user_active

    with pytest.raises(UserAdminError, match="last active owner"):
        set_user_active(db, OWNER_EMAIL, dashboard_users["owner"], False)
    assert db.execute("SELECT active FROM crm.app_users WHERE id = %s",
                      (dashboard_users["owner"],)).fetchone() == {"active": True}
    assert db.execute("SELECT count(*) AS n FROM crm.audit_log").fetchone() == {"n": 0}


def test_the_last_owner_cannot_be_disabled(db: psycopg.Connection[Any], app_as: Callable[..., Any],
                                           dashboard_users: dict[str, int]) -> None:
    at = app_as("owner", "pages/users.py")
    at.selectbox(key="manage_user").set_value(dashboard_users["owner"]).run()
    assert at.button(key="disable_user").disabled


def test_settings_refuses_a_currency_the_crm_cannot_bill(db: psycopg.Connection[Any],
                                                         app_as: Callable[..., Any]) -> None:
    """Currencies are chosen from a list of those the CRM bills correctly: KWD (three decimals) is not
    offered, JPY is and saves."""
    at = app_as("owner", "pages/settings.py")
    options = at.selectbox(key="business_currency").options
    assert "KWD — Kuwaiti Dinar" not in options and "USD — US Dollar" in options
    at.selectbox(key="business_currency").select("jpy")
    next(b for b in at.button if b.label == "Save business settings").click().run()
    assert load_settings(db)["business.currency"] == "jpy"
