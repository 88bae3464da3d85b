"""Send via Stripe: round trips to Stripe and Resend per invoice, and wall time with 100 ms per call.

The sandbox (sandbox/testing.py) runs in this process on a free port with a latency
fault of `latency_ms` on every Stripe and Resend call; the CRM is pointed at it the way
the tests do (keys in settings, base URLs in the environment). Round trips come from the
sandbox's request log. A first invoice for a new customer also creates the Stripe
customer; a second invoice for the same customer does not.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

STRIPE_KEY = "sk_test_bench4242"
RESEND_KEY = "re_bench_4242"


@dataclass(frozen=True)
class SendResultRow:
    label: str
    ok: bool
    stripe_calls: int
    resend_calls: int
    seconds: float
    calls_by_path: dict[str, int]

    @property
    def round_trips(self) -> int:
        return self.stripe_calls + self.resend_calls


def _draft(conn: psycopg.Connection[dict[str, Any]], customer_id: int | None, n: int) -> tuple[int, int]:
    if customer_id is None:
        row = conn.execute(
            "INSERT INTO crm.customers (name, email) VALUES (%s, %s) RETURNING id",
            (f"Bench Send Customer {n}", f"send.bench{n}@example.com")).fetchone()
        assert row is not None
        customer_id = int(row["id"])
    job = conn.execute("INSERT INTO crm.jobs (customer_id, title) VALUES (%s, 'Bench send job') RETURNING id",
                       (customer_id,)).fetchone()
    assert job is not None
    inv = conn.execute(
        "INSERT INTO crm.invoices (job_id, customer_id, due_date) VALUES (%s, %s, %s) RETURNING id",
        (job["id"], customer_id, (datetime.now(UTC) + timedelta(days=14)).date())).fetchone()
    assert inv is not None
    for pos, (desc, qty, unit) in enumerate((("Service call", 1, 8900), ("Labour (hour)", 2, 12000),
                                              ("Parts", 3, 2450))):
        conn.execute("INSERT INTO crm.invoice_lines (invoice_id, position, description, quantity, unit_amount_cents) "
                     "VALUES (%s, %s, %s, %s, %s)", (inv["id"], pos, desc, qty, unit))
    return int(inv["id"]), customer_id


def run(database_url: str, latency_ms: int, invoices: int = 3) -> list[SendResultRow]:
    from sandbox.testing import run_sandbox

    with run_sandbox(business_name="Bench HVAC") as sbx:
        os.environ.update({
            "DATABASE_URL": database_url, "STRIPE_API_BASE": sbx.stripe_api_base,
            "RESEND_API_URL": sbx.resend_api_url, "STRIPE_MAX_NETWORK_RETRIES": "0", "STRIPE_TIMEOUT_S": "10",
        })
        os.environ.setdefault("CRM_SECRET_KEY", _fernet_key())
        from crm.config.settings import save_setting
        from crm.send.workflow import send_invoice
        from db.config import resolved_database_url
        from db.pool import close_pool

        resolved_database_url.cache_clear()
        close_pool()
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
            save_setting(conn, "stripe.test.secret_key", STRIPE_KEY)
            save_setting(conn, "resend.api_key", RESEND_KEY)
            save_setting(conn, "email.from", "billing@bench-hvac.test")
            save_setting(conn, "business.name", "Bench HVAC")
            plan: list[tuple[str, int]] = []
            customer: int | None = None
            for n in range(invoices):
                new = n % 2 == 0
                inv, cust = _draft(conn, None if new else customer, n)
                customer = cust
                plan.append(("new customer" if new else "same customer again", inv))
        # Warm-up (imports, pool, TLS-free HTTP clients) without latency; not reported.
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
            warm, _ = _draft(conn, None, 999)
        send_invoice(warm, "bench@example.com")
        for service in ("stripe", "resend"):
            sbx.control.add_fault(service=service, latency_ms=latency_ms)
        rows: list[SendResultRow] = []
        for label, invoice_id in plan:
            since = time.time()
            started = time.perf_counter()
            result = send_invoice(invoice_id, "bench@example.com")
            took = time.perf_counter() - started
            log = [r for r in sbx.control.requests(since=since) if r["time"] >= since]
            by_service = Counter(r["service"] for r in log)
            by_path = Counter(f"{r['service']} {r['method']} {_shape(r['path'])}" for r in log)
            rows.append(SendResultRow(label, result.ok, by_service["stripe"], by_service["resend"], took,
                                      dict(by_path)))
        close_pool()
    return rows


def _shape(path: str) -> str:
    """'/v1/invoices/in_123/finalize' -> '/v1/invoices/{id}/finalize'."""
    parts = path.split("/")
    return "/".join("{id}" if "_" in p and any(ch.isdigit() for ch in p) else p for p in parts)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
