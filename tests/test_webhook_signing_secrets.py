"""Stored Stripe signing secrets: the previous ones last only a rotation window, a sandbox
secret never verifies a mode that has a real key, and the owner sees and removes them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from crm.config.settings import load_settings, remove_webhook_secret, save_setting, store_registered_webhook_secret
from crm.stripe import webhook_secrets as ws
from tests.fixtures.sidecar import TEST_SECRET, Sidecar, seed_invoice
from tests.test_webhook_security import paid_for

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def test_a_new_secret_starts_the_old_ones_rotation_window_and_they_expire() -> None:
    entries = ws.with_new_secret([], "whsec_one", "we_1", "stripe", NOW)
    entries = ws.with_new_secret(entries, "whsec_two", "we_2", "stripe", NOW + timedelta(days=1))
    assert [e.secret for e in entries] == ["whsec_two", "whsec_one"]
    assert ws.accepted(entries, "stripe", NOW + timedelta(days=2)) == ["whsec_two", "whsec_one"]
    assert ws.accepted(entries, "stripe", NOW + timedelta(days=4, hours=1)) == ["whsec_two"]
    third = ws.with_new_secret(entries, "whsec_three", "we_3", "stripe", NOW + timedelta(days=5))
    assert [e.secret for e in third] == ["whsec_three", "whsec_two"], "a retired secret is dropped for good"
    assert ws.status(third[1], "stripe", NOW + timedelta(days=5)) == "previous: accepted for 72 more hours"


def test_a_sandbox_secret_is_not_accepted_once_the_mode_has_a_real_key() -> None:
    entries = ws.with_new_secret([], "whsec_sandbox", "we_s", "sandbox", NOW)
    assert ws.accepted(entries, "sandbox", NOW) == ["whsec_sandbox"]
    assert ws.accepted(entries, "stripe", NOW) == []
    # An older comma-separated value, or an environment variable, is taken as it is.
    assert ws.accepted(ws.parse("whsec_a, whsec_b"), "stripe", NOW) == ["whsec_a", "whsec_b"]


def test_the_sidecar_refuses_a_sandbox_secret_after_real_keys_are_entered(sidecar: Sidecar) -> None:
    from webhook.signing_secrets import SECRETS

    db = sidecar.db
    store_registered_webhook_secret(db, load_settings(db), "test", TEST_SECRET, "we_sandbox", None)
    SECRETS.clear()
    assert sidecar.post(paid_for(seed_invoice(db)), secret=TEST_SECRET).json()["outcome"] == "applied"
    save_setting(db, "stripe.test.secret_key", "sk_test_" + "a" * 30)
    SECRETS.clear()
    refused = sidecar.post(paid_for(seed_invoice(db, stripe_invoice_id="in_second")), secret=TEST_SECRET)
    assert refused.status_code == 400
    assert db.execute("SELECT count(*) AS n FROM crm.invoices WHERE status = 'paid'").fetchone() == {"n": 1}


def test_settings_lists_the_secrets_masked_with_their_age_and_removes_one(
        db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    settings = load_settings(db)
    store_registered_webhook_secret(db, settings, "test", "whsec_first_0123456789", "we_first", None,
                                    now=datetime.now(UTC) - timedelta(days=2))
    store_registered_webhook_secret(db, load_settings(db), "test", "whsec_second_0123456789", "we_second", None)
    at = app_as("owner", "pages/settings.py")
    shown = [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert any("whsec_…6789` · we_second" in v for v in shown)
    assert any(v.startswith("previous: accepted for") and v.endswith("added 2 days ago") for v in shown), shown
    assert not any("whsec_first_0123456789" in v or "whsec_second_0123456789" in v for v in shown)
    at.button(key="remove_secret_test_1").click().run()
    assert [e.endpoint_id for e in load_settings(db).stripe_webhook_secret_entries("test")] == ["we_second"]
    remove_webhook_secret(db, load_settings(db), "test", 0, None)
    assert load_settings(db).stripe_webhook_secrets("test") == []


def test_the_cache_answers_fresh_secrets_without_loading_and_never_waits_for_a_load() -> None:
    import threading

    from webhook.signing_secrets import SecretsCache, SigningSecrets

    now = [100.0]
    loads: list[int] = []

    def load() -> SigningSecrets:
        loads.append(1)
        return SigningSecrets(test=("whsec_a",))

    cache = SecretsCache(load, ttl_s=30, clock=lambda: now[0])
    assert cache.fresh() is None and loads == []  # nothing cached: the caller loads (in a thread)
    loaded = cache.get()
    assert cache.fresh() is loaded and loads == [1]
    now[0] += 31
    assert cache.fresh() is None  # stale: the caller reloads
    held = threading.Event()
    release = threading.Event()

    def slow_load() -> SigningSecrets:
        held.set()
        release.wait(5)
        return SigningSecrets(test=("whsec_b",))

    slow = SecretsCache(slow_load, ttl_s=30, clock=lambda: now[0])
    loader = threading.Thread(target=slow.get)
    loader.start()
    held.wait(5)
    assert slow.fresh() is None  # a load in progress: answered at once, not after the round trip
    release.set()
    loader.join(5)
    assert slow.fresh() == SigningSecrets(test=("whsec_b",))
