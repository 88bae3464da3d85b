"""CRM_SECRET_KEY wrong or lost, and rotating it (CRM_SECRET_KEYS_OLD + `python -m crm
rotate-secret-key`): what the sidecar, /readyz, doctor and the Settings page show."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from crm.config.settings import load_settings, save_setting
from tests import stripe_payloads as sp
from tests.fixtures.sidecar import TEST_SECRET, Sidecar, SidecarLog, seed_invoice, snapshot
from tests.test_reminders_support import WEBHOOK_SECRET, resend_event, signed, test_now

CAUSE = "stored secrets cannot be decrypted with CRM_SECRET_KEY"
STRIPE_KEY = "sk_test_51Hsecretkeyrotation4242"


def _clear_caches() -> None:
    from webhook.resend_route import SECRETS as RESEND_SECRETS
    from webhook.signing_secrets import SECRETS

    SECRETS.clear()
    RESEND_SECRETS.clear()


@pytest.fixture
def stored(sidecar: Sidecar) -> Iterator[Sidecar]:
    """Stripe signing secrets (the `sidecar` fixture), a Stripe key and the Resend webhook secret,
    all stored encrypted with the session's CRM_SECRET_KEY."""
    save_setting(sidecar.db, "stripe.test.secret_key", STRIPE_KEY)
    save_setting(sidecar.db, "resend.webhook_secret", WEBHOOK_SECRET)
    _clear_caches()
    yield sidecar
    _clear_caches()


def paid(sidecar: Sidecar) -> dict[str, Any]:
    inv = seed_invoice(sidecar.db)
    return sp.event("invoice.paid", sp.invoice(str(inv["stripe_invoice_id"]), status="paid", amount_paid=10_000))


def _crm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crm", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_wrong_secret_key_webhooks_503_and_readyz_names_the_cause(stored: Sidecar, sidecar_log: SidecarLog,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    right, wrong = os.environ["CRM_SECRET_KEY"], Fernet.generate_key().decode()
    monkeypatch.setenv("CRM_SECRET_KEY", wrong)
    _clear_caches()
    evt = paid(stored)
    before = snapshot(stored.db)

    stripe = stored.post(evt)
    body, headers = signed(resend_event("email.delivered", "re_1", test_now()))
    resend = stored.http.post("/webhooks/resend", content=body, headers=headers)
    ready = stored.http.get("/readyz")

    # 503: Stripe and Resend retry, and the deliveries go through once the key is fixed.
    assert (stripe.status_code, resend.status_code, ready.status_code) == (503, 503, 503)
    assert CAUSE in stripe.json()["error"] and CAUSE in resend.json()["error"]
    assert CAUSE in ready.json()["status"]
    assert snapshot(stored.db) == before
    lines = sidecar_log.requests("stripe") + sidecar_log.requests("resend")
    assert len(lines) == 2 and all(CAUSE in line["detail"] and line["status"] == 503 for line in lines)
    assert wrong not in "\n".join(sidecar_log.lines) and not sidecar_log.uvicorn_errors

    monkeypatch.setenv("CRM_SECRET_KEY", right)
    _clear_caches()
    assert stored.post(evt).json()["outcome"] == "applied"  # the retry, once the key is fixed
    assert stored.http.get("/readyz").status_code == 200


def test_wrong_secret_key_doctor_says_what_to_do(stored: Sidecar, database_url: str) -> None:
    wrong = Fernet.generate_key().decode()
    result = _crm("doctor", env={"DATABASE_URL": database_url, "CRM_SECRET_KEY": wrong})
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"[FAIL] {CAUSE}" in result.stdout
    assert "stripe.test.secret_key" in result.stdout and "rotate-secret-key" in result.stdout
    assert "Settings -> Integrations" in result.stdout
    assert wrong not in result.stdout and STRIPE_KEY not in result.stdout


def test_wrong_secret_key_settings_page_lets_the_owner_re_enter_keys(
        db: psycopg.Connection[Any], app_as: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    save_setting(db, "stripe.test.secret_key", STRIPE_KEY)
    monkeypatch.setenv("CRM_SECRET_KEY", Fernet.generate_key().decode())

    invoices = app_as("owner", "pages/invoices.py")
    assert not invoices.exception
    at = app_as("owner", "pages/settings.py")
    assert not at.exception
    assert "Test secret key: **sk_test_…4242: cannot be decrypted with CRM_SECRET_KEY — re-enter**" in [
        m.value for m in at.markdown]
    assert any("cannot be decrypted" in e.value for e in at.error)

    fresh = "sk_test_51Hreenteredkey00009999"
    at.text_input(key="stripe_test_key_input").input(fresh)
    next(b for b in at.button if b.label == "Save test key").click().run()
    assert not at.exception
    assert "Stripe test key saved (shown masked)." in [s.value for s in at.success]
    assert "Test secret key: **sk_test_…9999**" in [m.value for m in at.markdown]
    assert load_settings(db).stripe_secret_key("test") == fresh


def test_rotate_secret_key_then_the_new_key_alone_decrypts_everything(
        stored: Sidecar, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = os.environ["CRM_SECRET_KEY"], Fernet.generate_key().decode()
    names = sorted(r["name"] for r in stored.db.execute("SELECT name FROM crm.secrets").fetchall())
    assert len(names) == 4

    # New key current, old key decrypt-only: everything still works before rotating.
    monkeypatch.setenv("CRM_SECRET_KEY", new)
    monkeypatch.setenv("CRM_SECRET_KEYS_OLD", old)
    _clear_caches()
    assert stored.post(paid(stored)).json()["outcome"] == "applied"

    result = _crm("rotate-secret-key", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"re-encrypted 4 stored secret(s) with CRM_SECRET_KEY: {', '.join(names)}" in result.stdout
    for secret in (STRIPE_KEY, WEBHOOK_SECRET, TEST_SECRET, old, new):
        assert secret not in result.stdout + result.stderr

    # The old key is gone: the new one alone decrypts every secret, and webhooks verify.
    monkeypatch.delenv("CRM_SECRET_KEYS_OLD")
    _clear_caches()
    settings = load_settings(stored.db)
    assert not settings.undecryptable
    assert settings.stripe_secret_key("test") == STRIPE_KEY and settings["resend.webhook_secret"] == WEBHOOK_SECRET
    assert stored.post(paid(stored)).json()["outcome"] == "applied"
    body, headers = signed(resend_event("email.delivered", "re_1", test_now()))
    assert stored.http.post("/webhooks/resend", content=body, headers=headers).status_code == 200
    assert stored.http.get("/readyz").status_code == 200
    # And the old key alone no longer does.
    monkeypatch.setenv("CRM_SECRET_KEY", old)
    assert load_settings(stored.db).undecryptable == frozenset(names)
