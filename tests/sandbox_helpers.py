"""Shared pieces for the sandbox tests: a running sandbox, Stripe/Resend clients, and a tiny
local webhook receiver that records what it gets and answers with scripted statuses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import resend
import stripe

from sandbox.testing import RunningSandbox, run_sandbox

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "stripe-fixtures3.json"
TEST_KEY = "sk_test_sandbox123"
LIVE_KEY = "sk_live_sandbox123"


class Receiver:
    """An HTTP server on loopback recording each POST (raw body + headers)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.received.append({"body": body, "headers": dict(self.headers),
                                              "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.received]

    def wait(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.received):
            if time.monotonic() > deadline:
                raise TimeoutError(f"receiver got {[json.loads(r['body']).get('type') for r in self.received]}")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sbx() -> Iterator[RunningSandbox]:
    with run_sandbox() as running:
        yield running


@pytest.fixture
def sandbox(sbx: RunningSandbox) -> RunningSandbox:
    """The module's sandbox, reset to empty for each test."""
    sbx.control.reset()
    return sbx


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


def stripe_client(sandbox: RunningSandbox, key: str = TEST_KEY, **kw: Any) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": sandbox.stripe_api_base}, **kw)


@pytest.fixture
def use_resend(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    old = resend.api_url, resend.api_key
    resend.api_url, resend.api_key = sandbox.resend_api_url, "re_test_sandbox"
    for domain in ("acme.example", "biz.example"):  # the senders these tests use, verified as at Resend
        sandbox.control.add_verified_resend_domain(domain)
    yield sandbox
    resend.api_url, resend.api_key = old


def fixture_keys(resource: str) -> set[str]:
    if not FIXTURES.exists():
        pytest.skip(f"Stripe fixture file not found at {FIXTURES}")
    keys: set[str] = set(json.loads(FIXTURES.read_text())["resources"][resource])
    return keys


def make_open_invoice(client: stripe.StripeClient, email: str = "pat@example.com",
                      unit_amount: int = 12500, quantity: int = 1) -> Any:
    cus = client.v1.customers.create({"email": email, "name": "Pat Doe"})
    inv = client.v1.invoices.create({
        "customer": cus.id, "collection_method": "send_invoice", "days_until_due": 7,
        "auto_advance": False, "pending_invoice_items_behavior": "exclude", "currency": "usd"})
    client.v1.invoices.add_lines(inv.id, {"lines": [{
        "description": "Furnace repair", "quantity": quantity,
        "price_data": {"currency": "usd", "unit_amount": unit_amount,
                       "product_data": {"name": "Furnace repair"}}}]})
    return client.v1.invoices.finalize_invoice(inv.id, {"auto_advance": False})
