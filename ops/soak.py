"""Soak run: a bounded stream of paid invoices through the sandbox and the sidecar, with 10%
of webhook deliveries duplicated and 10% delayed (so reordered), all on loopback.

It reports events sent, applied, duplicates absorbed, lost (must be 0) and double-applied
(must be 0). With `reminders=True` every invoice also has a queued reminder and every
fourth one stays unpaid, so the sidecars' dispatchers hand reminders to Resend while
payments cancel others; it then also reports reminders handed off and reminders handed to
Resend twice (must be 0). `RoundRobinProxy` spreads deliveries over several sidecars, the
way a load balancer in front of them does (tests/test_pooled_sidecars.py runs two through
PgBouncer). The full run makes its own throwaway Postgres, sandbox and sidecar:

    SOAK_SECONDS=60 SOAK_RATE=4 .venv/bin/python -m ops.soak

tests/test_soak.py runs `run_soak` for a few seconds against the test harness.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from stripe import StripeClient

from db import soak_rows
from sandbox.testing import ControlClient

SOAK_KEY = "sk_test_soak4242"


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
    reminders_handed: int = 0
    duplicate_reminders: int = 0  # reminders Resend holds more than one email for
    left_open: int = 0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.double_applied == 0 and self.duplicate_reminders == 0

    def lines(self) -> list[str]:
        return [f"soak: {self.seconds:.0f} s, {self.invoices_paid} invoices paid",
                f"events sent {self.events_sent}, applied {self.events_applied}, deliveries {self.deliveries}, "
                f"duplicates absorbed {self.duplicates_absorbed}",
                *([f"reminders handed to Resend {self.reminders_handed} ({self.left_open} invoices left open), "
                   f"handed twice {self.duplicate_reminders} (must be 0)"] if self.reminders_handed else []),
                f"lost {self.lost} (must be 0), double-applied {self.double_applied} (must be 0): "
                + ("OK" if self.ok else "FAILED")]


def _pay_one(conn: psycopg.Connection[dict[str, Any]], client: StripeClient, control: ControlClient,
             customer_id: int, stripe_customer: str, amount: int, reminder: bool = False,
             pay: bool = True) -> None:
    inv = client.v1.invoices.create({"customer": stripe_customer, "collection_method": "send_invoice",
                                     "days_until_due": 7, "auto_advance": False, "currency": "usd",
                                     "pending_invoice_items_behavior": "exclude"})
    soak_rows.insert_open_invoice(conn, customer_id, amount, str(inv.id), reminder=reminder)
    client.v1.invoices.add_lines(str(inv.id), {"lines": [{"description": "Soak", "amount": amount}]})
    client.v1.invoices.finalize_invoice(str(inv.id), {"auto_advance": False})
    if pay:
        control.pay_invoice(str(inv.id))


def _reminders_in_mailbox(control: ControlClient) -> Counter[str]:
    """How many emails Resend holds per CRM reminder id (from the tags the dispatcher sets)."""
    held: Counter[str] = Counter()
    for email in control.resend_emails():
        for tag in email.get("tags") or []:
            if tag.get("name") == "crm_reminder_id":
                held[str(tag.get("value"))] += 1
    return held


def _wait_for_handoffs(conn: psycopg.Connection[dict[str, Any]], timeout_s: float) -> None:
    """Until no reminder of an open invoice is still queued (the dispatchers took them all)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if soak_rows.queued_reminders_of_open_invoices(conn) == 0:
            return
        time.sleep(0.2)


def run_soak(conn: psycopg.Connection[dict[str, Any]], control: ControlClient, stripe_api_base: str,
             stripe_key: str, seconds: float, rate: float, settle_timeout_s: float = 60.0,
             reminders: bool = False) -> SoakResult:
    """Pays `rate` invoices a second for `seconds` (conn: autocommit), then counts."""
    control.set_delivery_faults(service="stripe", duplicate_rate=0.1, delay_rate=0.1, delay_s=0.5, seed=42)
    client = StripeClient(stripe_key, base_addresses={"api": stripe_api_base})
    customer_id = soak_rows.insert_customer(conn)
    stripe_customer = str(client.v1.customers.create({"email": "soak@example.com", "name": "Soak"}).id)
    started = time.monotonic()
    made = paid = 0
    while time.monotonic() - started < seconds:
        time.sleep(max(0.0, started + made / rate - time.monotonic()))
        pay = not (reminders and made % 4 == 3)
        _pay_one(conn, client, control, customer_id, stripe_customer, 1_000 + made, reminder=reminders,
                 pay=pay)
        made += 1
        paid += pay
    elapsed = time.monotonic() - started
    if reminders:
        _wait_for_handoffs(conn, settle_timeout_s)
    deadline = time.monotonic() + settle_timeout_s
    while control.http.get("/deliveries").json()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.1)
    control.set_delivery_faults(service="stripe")
    endpoint_types = _subscribed(client)
    sent = {e["id"] for e in control.events() if _matches(endpoint_types, e["type"])}
    ledger = soak_rows.ledger(conn)
    return SoakResult(
        seconds=elapsed, invoices_paid=paid, events_sent=len(sent),
        events_applied=sum(1 for r in ledger.values() if r["outcome"] == "applied"),
        deliveries=len(control.deliveries(service="stripe", outcome="delivered")),
        duplicates_absorbed=sum(int(r["duplicate_deliveries"]) for r in ledger.values()),
        lost=len(sent - set(ledger)), double_applied=soak_rows.double_applied(conn),
        **(_reminder_counts(control, made - paid) if reminders else {}))


def _reminder_counts(control: ControlClient, left_open: int) -> dict[str, int]:
    held = _reminders_in_mailbox(control)
    return {"reminders_handed": len(held), "duplicate_reminders": sum(1 for n in held.values() if n > 1),
            "left_open": left_open}


@dataclass
class RoundRobinProxy:
    """A load balancer in front of several sidecars: POSTs go to each target in turn."""

    targets: list[str]
    counts: Counter[str] = field(default_factory=Counter)

    def app(self) -> Any:
        import httpx
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        turn = itertools.count()
        client = httpx.AsyncClient(timeout=60, trust_env=False)
        passed = ("content-type", "stripe-signature", "svix-id", "svix-timestamp", "svix-signature")

        async def forward(request: Request) -> Response:
            target = self.targets[next(turn) % len(self.targets)]
            self.counts[target] += 1
            headers = {k: v for k, v in request.headers.items() if k.lower() in passed}
            resp = await client.post(target + request.url.path, content=await request.body(), headers=headers)
            return Response(resp.content, status_code=resp.status_code, media_type=resp.headers.get("content-type"))

        return Starlette(routes=[Route("/{path:path}", forward, methods=["POST"])])

    def serve(self, port: int) -> Any:
        """Start it on 127.0.0.1:`port` in a thread; returns the uvicorn server (set should_exit)."""
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning",
                                               access_log=False))
        threading.Thread(target=server.run, name="soak-round-robin", daemon=True).start()
        while not server.started:
            time.sleep(0.02)
        return server


def _subscribed(client: StripeClient) -> list[str]:
    return [str(t) for ep in client.v1.webhook_endpoints.list().data for t in ep.enabled_events]


def _matches(patterns: list[str], etype: str) -> bool:
    return any(p == "*" or p == etype or (p.endswith(".*") and etype.startswith(p[:-1])) for p in patterns)


def main() -> int:
    """The full soak with its own Postgres (temp dir), sandbox and sidecar, all on loopback."""
    import uvicorn

    from crm.stripe.event_types import HANDLED_EVENT_TYPES
    from db.embedded import EmbeddedPostgres, free_port
    from sandbox.testing import run_sandbox

    seconds, rate = float(os.environ.get("SOAK_SECONDS", "60")), float(os.environ.get("SOAK_RATE", "4"))
    root = Path(tempfile.mkdtemp(prefix="crm-soak-"))
    pg = EmbeddedPostgres(root=root / "pg", port=free_port(), db_name="crm_soak")
    url = pg.start()
    os.environ.update(DATABASE_URL=url, WEBHOOK_RUN_WORKERS="0")
    os.environ.setdefault("CRM_SECRET_KEY", __import__("cryptography.fernet").fernet.Fernet.generate_key().decode())
    try:
        from crm.config.settings import save_setting
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
