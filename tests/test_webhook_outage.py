"""With Postgres stopped the sidecar answers 503 (Stripe retries); once Postgres is back
the same delivery is applied exactly once."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests import stripe_payloads as sp
from tests.fixtures.sidecar import TEST_SECRET, Sidecar, seed_invoice


def wait_ready(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
        while time.monotonic() < deadline:
            if client.get("/readyz").status_code == 200:
                return
            time.sleep(0.1)
    raise AssertionError("the sidecar did not become ready after Postgres came back")


def test_database_down_answers_503_then_the_retry_applies_once(sidecar: Sidecar, pg_server: Any) -> None:
    if not pg_server.can_restart:
        pytest.skip("TEST_DATABASE_URL points at a server this test cannot stop")
    inv = seed_invoice(sidecar.db)
    body = sp.body_of(sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid",
                                                          amount_paid=10_000)))
    header = sp.signature_header(body, TEST_SECRET)
    # Warm the pool and the secrets cache, so the outage hits the apply call itself.
    assert sidecar.http.get("/readyz").status_code == 200
    assert sidecar.post(sp.event("customer.created", {"id": "cus_1", "object": "customer"})).status_code == 200

    pg_server.stop()
    try:
        resp = sidecar.post_raw(body, {"Stripe-Signature": header})
        assert resp.status_code == 503, resp.text
        assert sidecar.http.get("/readyz").status_code == 503
        assert sidecar.http.get("/healthz").status_code == 200
    finally:
        pg_server.start()

    wait_ready(sidecar.url)
    first = sidecar.post_raw(body, {"Stripe-Signature": header})
    again = sidecar.post_raw(body, {"Stripe-Signature": header})

    assert (first.status_code, first.json()["outcome"]) == (200, "applied")
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    with psycopg.connect(pg_server.url, row_factory=dict_row) as conn:
        assert conn.execute("SELECT status FROM crm.invoices").fetchone() == {"status": "paid"}
        assert conn.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'invoice'").fetchone() == {
            "n": 1}


def test_first_request_after_a_restart_is_applied(sidecar: Sidecar, pg_server: Any) -> None:
    """No readiness probe in between: the pooled connections are dead and the route must cope."""
    if not pg_server.can_restart:
        pytest.skip("TEST_DATABASE_URL points at a server this test cannot stop")
    inv = seed_invoice(sidecar.db)
    assert sidecar.post(sp.event("customer.created", {"id": "cus_1", "object": "customer"})).status_code == 200

    pg_server.stop()
    pg_server.start()

    resp = sidecar.post(sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid",
                                                            amount_paid=10_000)))
    assert (resp.status_code, resp.json()["outcome"]) == (200, "applied")
