"""Deliveries that do not verify get 400 (413 when too big) and change nothing;
secrets come from Settings or the environment, several per mode during a rotation."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests import stripe_payloads as sp
from tests.fixtures.sidecar import LIVE_SECRET, TEST_SECRET, Sidecar, seed_invoice, snapshot


def paid_for(inv: dict[str, object], livemode: bool = False) -> dict[str, object]:
    obj = sp.invoice(str(inv["stripe_invoice_id"]), status="paid", amount_paid=10_000, livemode=livemode)
    return sp.event("invoice.paid", obj, livemode=livemode)


def assert_refused(sidecar: Sidecar, body: bytes, headers: dict[str, str], status: int, reason: str) -> None:
    before = snapshot(sidecar.db)
    resp = sidecar.post_raw(body, headers)
    assert resp.status_code == status, resp.text
    assert reason in resp.json()["error"]
    assert snapshot(sidecar.db) == before


def test_forged_signature(sidecar: Sidecar) -> None:
    body = sp.body_of(paid_for(seed_invoice(sidecar.db)))
    header = sp.signature_header(body, "whsec_not_ours")
    assert_refused(sidecar, body, {"Stripe-Signature": header}, 400, "does not match")


def test_body_changed_after_signing(sidecar: Sidecar) -> None:
    body = sp.body_of(paid_for(seed_invoice(sidecar.db)))
    header = sp.signature_header(body, TEST_SECRET)
    tampered = body.replace(b'"amount_paid":10000', b'"amount_paid":99999')
    assert tampered != body
    assert_refused(sidecar, tampered, {"Stripe-Signature": header}, 400, "does not match")


def test_stale_timestamp(sidecar: Sidecar) -> None:
    body = sp.body_of(paid_for(seed_invoice(sidecar.db)))
    header = sp.signature_header(body, TEST_SECRET, timestamp=int(time.time()) - 301)
    assert_refused(sidecar, body, {"Stripe-Signature": header}, 400, "older than 300 s")


def test_missing_header(sidecar: Sidecar) -> None:
    body = sp.body_of(paid_for(seed_invoice(sidecar.db)))
    assert_refused(sidecar, body, {}, 400, "missing Stripe-Signature")


def test_malformed_header(sidecar: Sidecar) -> None:
    body = sp.body_of(paid_for(seed_invoice(sidecar.db)))
    assert_refused(sidecar, body, {"Stripe-Signature": "garbage"}, 400, "malformed Stripe-Signature")


def test_signed_malformed_json(sidecar: Sidecar) -> None:
    body = b'{"id": "evt_1", "type": "invoice.paid", '
    assert_refused(sidecar, body, {"Stripe-Signature": sp.signature_header(body, TEST_SECRET)}, 400,
                   "malformed JSON")


def test_signed_json_that_is_not_an_event(sidecar: Sidecar) -> None:
    body = b'{"id": "evt_1", "type": "invoice.paid", "livemode": false, "data": {}}'
    assert_refused(sidecar, body, {"Stripe-Signature": sp.signature_header(body, TEST_SECRET)}, 400,
                   "data.object missing")


def test_amount_that_is_not_whole_cents(sidecar: Sidecar) -> None:
    evt = paid_for(seed_invoice(sidecar.db))
    evt["data"]["object"]["amount_paid"] = 100.5  # type: ignore[index]
    body = sp.body_of(evt)
    assert_refused(sidecar, body, {"Stripe-Signature": sp.signature_header(body, TEST_SECRET)}, 400,
                   "whole number of cents")


def test_one_mebibyte_body_with_content_length(sidecar: Sidecar) -> None:
    body = b"{" + b" " * (1024 * 1024) + b"}"
    assert_refused(sidecar, body, {"Stripe-Signature": sp.signature_header(body, TEST_SECRET)}, 413, "256 KiB")


def test_one_mebibyte_body_streamed_without_content_length(sidecar: Sidecar) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * (16 * 1024)

    before = snapshot(sidecar.db)
    resp = sidecar.http.post("/webhooks/stripe", content=chunks(), headers={"Stripe-Signature": "t=1,v1=00"})
    assert resp.status_code == 413
    assert snapshot(sidecar.db) == before


def test_livemode_that_disagrees_with_the_verifying_secret(sidecar: Sidecar) -> None:
    evt = paid_for(seed_invoice(sidecar.db), livemode=True)
    body = sp.body_of(evt)
    assert_refused(sidecar, body, {"Stripe-Signature": sp.signature_header(body, TEST_SECRET)}, 400,
                   "livemode does not match")


def test_live_secret_verifies_live_events(sidecar: Sidecar) -> None:
    inv = seed_invoice(sidecar.db, mode="live")
    resp = sidecar.post(paid_for(inv, livemode=True), secret=LIVE_SECRET)
    assert resp.json()["outcome"] == "applied"


def test_rotation_from_the_environment_accepts_old_and_new(sidecar: Sidecar, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from webhook.signing_secrets import SECRETS

    monkeypatch.setenv("STRIPE_MODE", "test")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_old_one, whsec_new_one")
    SECRETS.clear()
    first, second = seed_invoice(sidecar.db), seed_invoice(sidecar.db)

    assert sidecar.post(paid_for(first), secret="whsec_old_one").json()["outcome"] == "applied"
    assert sidecar.post(paid_for(second), secret="whsec_new_one").json()["outcome"] == "applied"
    # The environment wins over the secret stored in Settings.
    assert sidecar.post(paid_for(first), secret=TEST_SECRET).status_code == 400


def test_a_secret_saved_in_settings_works_without_waiting_for_the_cache(sidecar: Sidecar) -> None:
    from crm.config.settings import save_setting
    from webhook.signing_secrets import SECRETS

    SECRETS.get()
    inv = seed_invoice(sidecar.db)
    save_setting(sidecar.db, "stripe.test.webhook_secrets", f"{TEST_SECRET},whsec_rotated_in")
    # Pretend the cache is older than the reload threshold (no sleeping).
    SECRETS._loaded_at -= 10

    assert sidecar.post(paid_for(inv), secret="whsec_rotated_in").json()["outcome"] == "applied"


def test_no_secret_configured_answers_503(sidecar: Sidecar) -> None:
    from webhook.signing_secrets import SECRETS

    sidecar.db.execute("DELETE FROM crm.secrets")
    SECRETS.clear()
    body = sp.body_of(paid_for(seed_invoice(sidecar.db)))
    assert_refused(sidecar, body, {"Stripe-Signature": sp.signature_header(body, TEST_SECRET)}, 503,
                   "no signing secret")
