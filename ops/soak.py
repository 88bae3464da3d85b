"""Soak run: a bounded stream of paid invoices through the sandbox and the sidecar, with 10%
of webhook deliveries duplicated and 10% delayed (so reordered), all on loopback.

It reports events sent, applied, duplicates absorbed, lost (must be 0) and double-applied
(must be 0). The full run makes its own throwaway Postgres, sandbox and sidecar:

    SOAK_SECONDS=60 SOAK_RATE=4 .venv/bin/python -m ops.soak

tests/test_soak.py runs `run_soak` for a few seconds against the test harness.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from stripe import StripeClient

from sandbox.testing import ControlClient

SOAK_KEY = "sk_test_soak4242"
_CUSTOMER = "INSERT INTO crm.customers (name, email) VALUES ('Soak Customer', 'soak@example.com') RETURNING id"
_JOB = "INSERT INTO crm.jobs (customer_id, title, status) VALUES (%s, 'Soak job', 'in_progress') RETURNING id"
_INVOICE = ("INSERT INTO crm.invoices (job_id, customer_id, status, amount_due_cents, due_date, mode, "
            "stripe_invoice_id, sent_at) VALUES (%s, %s, 'open', %s, current_date + 14, 'test', %s, now()) "
            "RETURNING id")
_DOUBLE_APPLIED = """
SELECT count(*) AS n FROM crm.invoices i
WHERE (SELECT count(*) FROM crm.audit_log a WHERE a.entity = 'invoice' AND a.entity_id = i.id
        AND a.to_status = 'paid' AND a.from_status <> 'paid') > 1
   OR (SELECT coalesce(sum(amount_cents), 0) FROM crm.payments p WHERE p.invoice_id = i.id) > i.amount_due_cents
"""


@dataclass(frozen=True)
class SoakResult:
    seconds: float
    invoices_paid: int
    events_sent: int
    events_applied: int
    deliveries: int
    duplicates_absorbed: int
    lost: int
    double_applied: int

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.double_applied == 0

    def lines(self) -> list[str]:
        return [f"soak: {self.seconds:.0f} s, {self.invoices_paid} invoices paid",
                f"events sent {self.events_sent}, applied {self.events_applied}, deliveries {self.deliveries}, "
                f"duplicates absorbed {self.duplicates_absorbed}",
                f"lost {self.lost} (must be 0), double-applied {self.double_applied} (must be 0): "
                + ("OK" if self.ok else "FAILED")]


def _pay_one(conn: psycopg.Connection[dict[str, Any]], client: StripeClient, control: ControlClient,
             customer_id: int, stripe_customer: str, amount: int) -> None:
    job = conn.execute(_JOB, (customer_id,)).fetchone()
    assert job is not None
    inv = client.v1.invoices.create({"customer": stripe_customer, "collection_method": "send_invoice",
                                     "days_until_due": 7, "auto_advance": False, "currency": "usd",
                                     "pending_invoice_items_behavior": "exclude"})
    conn.execute(_INVOICE, (job["id"], customer_id, amount, inv.id))
    client.v1.invoices.add_lines(str(inv.id), {"lines": [{"description": "Soak", "amount": amount}]})
    client.v1.invoices.finalize_invoice(str(inv.id), {"auto_advance": False})
    control.pay_invoice(str(inv.id))


def run_soak(conn: psycopg.Connection[dict[str, Any]], control: ControlClient, stripe_api_base: str,
             stripe_key: str, seconds: float, rate: float, settle_timeout_s: float = 60.0) -> SoakResult:
    """Pays `rate` invoices a second for `seconds` (conn: autocommit), then counts."""
    control.set_delivery_faults(service="stripe", duplicate_rate=0.1, delay_rate=0.1, delay_s=0.5, seed=42)
    client = StripeClient(stripe_key, base_addresses={"api": stripe_api_base})
    customer = conn.execute(_CUSTOMER).fetchone()
    assert customer is not None
    stripe_customer = str(client.v1.customers.create({"email": "soak@example.com", "name": "Soak"}).id)
    started = time.monotonic()
    paid = 0
    while time.monotonic() - started < seconds:
        time.sleep(max(0.0, started + paid / rate - time.monotonic()))
        _pay_one(conn, client, control, int(customer["id"]), stripe_customer, 1_000 + paid)
        paid += 1
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + settle_timeout_s
    while control.http.get("/deliveries").json()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.1)
    control.set_delivery_faults(service="stripe")
    endpoint_types = _subscribed(client)
    sent = {e["id"] for e in control.events() if _matches(endpoint_types, e["type"])}
    ledger = {r["id"]: r for r in conn.execute("SELECT id, outcome, duplicate_deliveries FROM crm.stripe_events")}
    double = conn.execute(_DOUBLE_APPLIED).fetchone()
    return SoakResult(
        seconds=elapsed, invoices_paid=paid, events_sent=len(sent),
        events_applied=sum(1 for r in ledger.values() if r["outcome"] == "applied"),
        deliveries=len(control.deliveries(service="stripe", outcome="delivered")),
        duplicates_absorbed=sum(int(r["duplicate_deliveries"]) for r in ledger.values()),
        lost=len(sent - set(ledger)), double_applied=int(double["n"]) if double else 0)


def _subscribed(client: StripeClient) -> list[str]:
    return [str(t) for ep in client.v1.webhook_endpoints.list().data for t in ep.enabled_events]


def _matches(patterns: list[str], etype: str) -> bool:
    return any(p == "*" or p == etype or (p.endswith(".*") and etype.startswith(p[:-1])) for p in patterns)


def main() -> int:
    """The full soak with its own Postgres (temp dir), sandbox and sidecar, all on loopback."""
    import uvicorn

    from crm.stripe_event_types import HANDLED_EVENT_TYPES
    from db.embedded import EmbeddedPostgres, free_port
    from sandbox.testing import run_sandbox

    seconds, rate = float(os.environ.get("SOAK_SECONDS", "60")), float(os.environ.get("SOAK_RATE", "4"))
    root = Path(tempfile.mkdtemp(prefix="crm-soak-"))
    pg = EmbeddedPostgres(root=root / "pg", port=free_port(), db_name="crm_soak")
    url = pg.start()
    os.environ.update(DATABASE_URL=url, WEBHOOK_RUN_WORKERS="0")
    os.environ.setdefault("CRM_SECRET_KEY", __import__("cryptography.fernet").fernet.Fernet.generate_key().decode())
    try:
        from crm.settings import save_setting
        from db.config import resolved_database_url
        from db.migrate import migrate

        resolved_database_url.cache_clear()
        migrate(url)
        with run_sandbox() as sbx, psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            os.environ["STRIPE_API_BASE"] = sbx.stripe_api_base
            from webhook.app import app

            port = free_port()
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                   access_log=False))
            threading.Thread(target=server.run, daemon=True).start()
            while not server.started:
                time.sleep(0.05)
            client = StripeClient(SOAK_KEY, base_addresses={"api": sbx.stripe_api_base})
            events: list[str] = list(HANDLED_EVENT_TYPES)
            secret = client.v1.webhook_endpoints.create({"url": f"http://127.0.0.1:{port}/webhooks/stripe",
                                                         "enabled_events": events}).secret  # type: ignore[typeddict-item]
            save_setting(conn, "stripe.test.secret_key", SOAK_KEY)
            save_setting(conn, "stripe.test.webhook_secrets", str(secret))
            result = run_soak(conn, sbx.control, sbx.stripe_api_base, SOAK_KEY, seconds, rate)
            server.should_exit = True
        print("\n".join(result.lines()))
        return 0 if result.ok else 1
    finally:
        from db.pool import close_pool

        close_pool()
        pg.destroy()


if __name__ == "__main__":
    raise SystemExit(main())
