"""The driveway: tap "Text it" until the text shows on the sandbox's phone page, and the customer
pays until the Collect screen's data says Paid. At least 20 runs each; p50 and p95.

One sandbox (Stripe, Resend, Twilio) and one webhook sidecar run in this process on free ports
(uvicorn threads), against a fresh database with main's migrations; the sidecar is registered
at the sandbox's Stripe and set as the texts' StatusCallback, as `python -m crm up` does.

1. Text it: `crm.texts.send.text_pay_link` (what the button calls) from the call until GET
   /phone?number=... shows the text (its SID on the page: delivered).
2. Paid: the sandbox's hosted page is paid (the control API's pay, the same settlement), then
   `db.queries_collect.collect_view` + `crm.collect.state.collect_state` (what the Collect screen's live
   status reads) is polled every 20 ms until it says paid. The screen itself reruns that read
   every `COLLECT_REFRESH` (1 s), so what a person sees is this time plus up to one refresh.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from bench.stats import Latency, latency

STRIPE_KEY = "sk_test_bench4242"
RESEND_KEY = "re_bench_4242"
COLLECT_REFRESH_S = 1.0  # pages/collect.py's COLLECT_REFRESH


@dataclass(frozen=True)
class DrivewayResult:
    runs: int
    text_shown: Latency
    paid_shown: Latency
    failures: int
    refresh_s: float = COLLECT_REFRESH_S


def _invoice(conn: psycopg.Connection[dict[str, Any]], n: int) -> int:
    phone = f"+1512555{100 + n % 100:04d}"
    cust = conn.execute("INSERT INTO crm.customers (name, email, phone) VALUES (%s, %s, %s) RETURNING id",
                        (f"Driveway {n}", f"driveway{n}@example.com", phone)).fetchone()
    assert cust is not None
    job = conn.execute("INSERT INTO crm.jobs (customer_id, title) VALUES (%s, 'Driveway job') RETURNING id",
                       (cust["id"],)).fetchone()
    assert job is not None
    inv = conn.execute("INSERT INTO crm.invoices (job_id, customer_id, due_date) VALUES (%s, %s, %s) RETURNING id",
                       (job["id"], cust["id"], (datetime.now(UTC) + timedelta(days=14)).date())).fetchone()
    assert inv is not None
    conn.execute("INSERT INTO crm.invoice_lines (invoice_id, position, description, quantity, unit_amount_cents) "
                 "VALUES (%s, 0, 'Furnace repair', 1, 34500)", (inv["id"],))
    return int(inv["id"])


def _sidecar() -> tuple[Any, threading.Thread, str]:
    import uvicorn

    from db.embedded import free_port

    os.environ["WEBHOOK_RUN_WORKERS"] = "0"
    from webhook.app import app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="bench-sidecar", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the sidecar did not start"
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def _wait(check: Any, timeout: float = 20.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def run(database_url: str, runs: int = 20) -> DrivewayResult:
    from sandbox.testing import run_sandbox

    with run_sandbox(business_name="Bench HVAC") as sbx:
        os.environ.update({
            "DATABASE_URL": database_url, "STRIPE_API_BASE": sbx.stripe_api_base, "RESEND_API_URL": sbx.resend_api_url,
            "TWILIO_API_URL": sbx.twilio_api_url, "STRIPE_MAX_NETWORK_RETRIES": "0", "STRIPE_TIMEOUT_S": "10",
        })
        from crm.collect.state import collect_state
        from crm.config.settings import load_settings, save_setting
        from crm.send.workflow import send_invoice
        from crm.stripe.event_types import HANDLED_EVENT_TYPES
        from crm.stripe.gateway import StripeGateway, stripe_target
        from crm.texts.send import text_pay_link
        from db.config import resolved_database_url
        from db.pool import close_pool, connection
        from db.queries_collect import collect_view

        resolved_database_url.cache_clear()
        close_pool()
        server, thread, sidecar = _sidecar()
        try:
            with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
                for key, value in (("stripe.test.secret_key", STRIPE_KEY), ("resend.api_key", RESEND_KEY),
                                   ("email.from", "billing@bench-hvac.test"), ("business.name", "Bench HVAC"),
                                   ("twilio.status_callback_url", f"{sidecar}/webhooks/twilio")):
                    save_setting(conn, key, value)
                _ep, secret = StripeGateway(stripe_target(load_settings(conn))).register_webhook_endpoint(
                    f"{sidecar}/webhooks/stripe", list(HANDLED_EVENT_TYPES))
                save_setting(conn, "stripe.test.webhook_secrets", secret)
                invoices = [_invoice(conn, n) for n in range(runs + 1)]
            sbx.control.add_verified_resend_domain("bench-hvac.test")  # Resend refuses unverified senders
            for invoice_id in invoices:
                result = send_invoice(invoice_id, "bench@example.com")
                assert result.ok, result.message
            http = httpx.Client(base_url=sbx.base_url, timeout=10, trust_env=False)
            texted: list[float] = []
            paid: list[float] = []
            failures = 0
            for n, invoice_id in enumerate(invoices):
                with connection() as conn:
                    view = collect_view(conn, invoice_id)
                assert view is not None
                phone = str(view["customer_phone"])
                started = time.perf_counter()
                result = text_pay_link(invoice_id, phone, "bench@example.com")
                shown = result.ok and _wait(lambda r=result, p=phone: str(r.sid) in http.get(
                    "/phone", params={"number": p}).text)
                took_text = time.perf_counter() - started
                stripe_id = sbx_invoice(view)
                started = time.perf_counter()
                sbx.control.pay_invoice(stripe_id)

                def says_paid(i: int = invoice_id) -> bool:
                    with connection() as conn:
                        row = collect_view(conn, i)
                    return row is not None and collect_state(row, "UTC").kind == "paid"

                ok = _wait(says_paid)
                took_paid = time.perf_counter() - started
                if n == 0:
                    continue  # warm-up: imports, pools, first connections
                if shown and ok:
                    texted.append(took_text)
                    paid.append(took_paid)
                else:
                    failures += 1
            http.close()
        finally:
            server.should_exit = True
            thread.join(10)
            close_pool()
    return DrivewayResult(len(texted), latency(texted), latency(paid), failures)


def sbx_invoice(view: dict[str, Any]) -> str:
    """The Stripe invoice id, from the hosted URL the sandbox gave (…/i/in_…)."""
    return str(view["hosted_invoice_url"]).rstrip("/").rsplit("/", 1)[-1]
