"""Resend as strict as Resend: its team rate limit (429 with `retry-after`), its refusal to send
from an unverified domain (403), and domain verification that stays pending while the DNS is
checked. The CRM's gateway (crm/email/resend_gateway.py) waits out a 429 as told and sends each email
once; a 403 tells the owner to verify the domain. Real resend-python over HTTP to the sandbox.

Checked by hand: with crm/email/resend_gateway.py from before this change (four attempts with exponential
backoff, retry-after ignored), test_resend_rate_limit_twenty_emails_at_once_all_go_out_once fails:
several of the twenty sends end in EmailError 429.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import resend
import resend.exceptions

from crm.config.settings import load_settings
from crm.email.resend_gateway import EmailError, ResendGateway, resend_target
from sandbox.testing import RunningSandbox
from tests.fixtures.sandbox import BUSINESS_FROM

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def strict_resend(crm_sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    """Resend's default limit (2 requests a second) and a DNS check that takes a while."""
    limits = crm_sandbox.control.set_resend_limits(per_s=2, verify_delay_s=600)
    assert limits == {"per_s": 2.0, "verify_delay_s": 600.0}
    yield crm_sandbox
    crm_sandbox.control.reset()


def _email(n: int, sender: str = BUSINESS_FROM) -> dict[str, Any]:
    return {"from": sender, "to": [f"customer{n}@example.com"], "subject": f"Invoice {n}", "html": f"<p>{n}</p>"}


def test_resend_rate_limit_twenty_emails_at_once_all_go_out_once(db: Conn, strict_resend: RunningSandbox) -> None:
    gateway = ResendGateway(resend_target(load_settings(db)))
    ids: dict[int, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def send(n: int) -> None:
        start.wait()
        try:
            ids[n] = gateway.send(_email(n), idempotency_key=f"rate-limit-test-{n}")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors and len(ids) == 20, errors
    sent = strict_resend.control.resend_emails()
    assert sorted(e["subject"] for e in sent) == sorted(f"Invoice {n}" for n in range(20)), "none lost, none twice"
    assert sorted(e["id"] for e in sent) == sorted(ids.values())
    refused = strict_resend.control.requests(service="resend", status=429)
    assert refused, "the limit was hit: the test would prove nothing otherwise"
    accepted = sorted(r["time"] for r in strict_resend.control.requests(service="resend", status=200))
    assert len(accepted) == 20
    # Never more than two accepted in any one second.
    assert all(accepted[i + 2] - accepted[i] >= 0.9 for i in range(len(accepted) - 2))


def test_resend_rate_limit_429_has_resends_shape_and_retry_after(db: Conn, strict_resend: RunningSandbox) -> None:
    saved = resend.api_url, resend.api_key
    resend.api_url, resend.api_key = strict_resend.resend_api_url, "re_test_sandbox"
    seen: list[resend.exceptions.ResendError] = []
    try:
        for _ in range(5):
            try:
                resend.Domains.list()
            except resend.exceptions.RateLimitError as exc:
                seen.append(exc)
    finally:
        resend.api_url, resend.api_key = saved
    assert seen, "five calls at once exceed two a second"
    exc = seen[0]
    assert (str(exc.code), exc.error_type) == ("429", "rate_limit_exceeded")
    headers = {k.lower(): v for k, v in exc.headers.items()}
    assert int(headers["retry-after"]) >= 1 and headers["ratelimit-remaining"] == "0"
    assert headers["ratelimit-limit"] == "2"


def test_resend_rate_limit_unverified_domain_is_refused_with_403_telling_the_owner_to_verify(
        db: Conn, strict_resend: RunningSandbox) -> None:
    gateway = ResendGateway(resend_target(load_settings(db)))
    with pytest.raises(EmailError) as refused:
        gateway.send(_email(1, "Acme <billing@not-verified.example>"), idempotency_key="unverified-1")
    assert str(refused.value.code) == "403" and not refused.value.retryable
    assert "not-verified.example domain is not verified" in str(refused.value)
    assert "Set up domain in Resend" in str(refused.value)
    assert strict_resend.control.resend_emails() == []


def test_resend_rate_limit_domain_verification_is_pending_until_the_dns_is_checked(
        db: Conn, strict_resend: RunningSandbox) -> None:
    gateway = ResendGateway(resend_target(load_settings(db)))
    created = gateway.create_domain("new-shop.example")
    assert created["status"] == "not_started"
    gateway.verify_domain(str(created["id"]))

    found = gateway.find_domain("new-shop.example")
    assert found is not None and found["status"] == "pending"
    assert gateway.domain_verified("new-shop.example") is False
    with pytest.raises(EmailError, match="not verified"):
        gateway.send(_email(1, "billing@new-shop.example"), idempotency_key="pending-1")

    strict_resend.control.advance_clock(600)  # Resend found the DNS records
    assert gateway.domain_verified("new-shop.example") is True
    assert gateway.send(_email(2, "billing@new-shop.example"), idempotency_key="verified-2")
