"""Run the sandbox in a background thread for tests, and a small client for its control API.

    with run_sandbox() as sbx:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": sbx.stripe_api_base})
        resend.api_url = sbx.resend_api_url
        sbx.control.add_fault(service="stripe", status=500, times=1)
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import uvicorn

from sandbox.app import create_app
from sandbox.config import Settings

Row = dict[str, Any]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ControlClient:
    """Thin wrapper over ``/_sandbox``; every method returns the decoded JSON."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url + "/_sandbox", timeout=30, trust_env=False)

    def _ok(self, resp: httpx.Response) -> Any:
        resp.raise_for_status()
        return resp.json()

    def reset(self) -> None:
        self._ok(self.http.post("/reset"))

    def add_fault(self, **spec: Any) -> Row:
        rows: list[Row] = self._ok(self.http.post("/faults", json=spec))["data"]
        return rows[0]

    def clear_faults(self) -> None:
        self._ok(self.http.delete("/faults"))

    def requests(self, **filters: Any) -> list[Row]:
        rows: list[Row] = self._ok(self.http.get("/requests", params=filters))["data"]
        return rows

    def deliveries(self, **filters: Any) -> list[Row]:
        rows: list[Row] = self._ok(self.http.get("/deliveries", params=filters))["data"]
        return rows

    def set_delivery_faults(self, **spec: Any) -> Row:
        out: Row = self._ok(self.http.post("/delivery_faults", json=spec))
        return out

    def pay_invoice(self, invoice_id: str, **spec: Any) -> Row:
        resp = self.http.post(f"/stripe/invoices/{invoice_id}/pay", json=spec)
        if resp.status_code not in (200, 402):
            resp.raise_for_status()
        out: Row = resp.json()
        return out

    def _action(self, path: str, spec: Row) -> Row:
        resp = self.http.post(path, json=spec)
        if resp.status_code not in (200, 402):
            resp.raise_for_status()
        out: Row = resp.json()
        return out

    def pay_by_bank(self, invoice_id: str, amount: int | None = None) -> Row:
        """Start a bank debit (ACH) on the invoice; the PaymentIntent (processing), or {"error": ...}."""
        return self._action(f"/stripe/invoices/{invoice_id}/pay_by_bank", {"amount": amount})

    def settle_bank_debit(self, payment_intent_id: str, fail: bool = False) -> Row:
        return self._action(f"/stripe/payment_intents/{payment_intent_id}/settle", {"fail": fail})

    def set_bank_debits(self, *, settle_delay_s: float | None = None, fail: bool | None = None) -> Row:
        spec = {k: v for k, v in (("settle_delay_s", settle_delay_s), ("fail", fail)) if v is not None}
        out: Row = self._ok(self.http.post("/stripe/bank_debits", json=spec))
        return out

    def set_capabilities(self, **statuses: str) -> Row:
        """The account's capabilities, e.g. us_bank_account_ach_payments="inactive"."""
        out: Row = self._ok(self.http.post("/stripe/capabilities", json=statuses))
        return out

    def open_dispute(self, invoice_id: str, amount: int | None = None, reason: str = "fraudulent") -> Row:
        """A dispute on the invoice's latest succeeded charge (Stripe's dispute object)."""
        return self._action(f"/stripe/invoices/{invoice_id}/dispute", {"amount": amount, "reason": reason})

    def submit_dispute_evidence(self, dispute_id: str) -> Row:
        return self._action(f"/stripe/disputes/{dispute_id}/evidence", {})

    def close_dispute(self, dispute_id: str, outcome: str) -> Row:
        return self._action(f"/stripe/disputes/{dispute_id}/close", {"outcome": outcome})

    def send_calls(self) -> list[Row]:
        rows: list[Row] = self._ok(self.http.get("/stripe/send_calls"))["data"]
        return rows

    def disable_webhook_endpoint(self, endpoint_id: str) -> Row:
        """What Stripe does to an endpoint that has failed for days: status 'disabled'."""
        out: Row = self._ok(self.http.post(f"/stripe/webhook_endpoints/{endpoint_id}/disable"))
        return out

    def events(self, mode: str = "test") -> list[Row]:
        rows: list[Row] = self._ok(self.http.get("/stripe/events", params={"mode": mode}))["data"]
        return rows

    def advance_clock(self, seconds: float) -> Row:
        out: Row = self._ok(self.http.post("/clock", json={"advance_s": seconds}))
        return out

    def flush_emails(self) -> int:
        sent: int = self._ok(self.http.post("/resend/flush"))["emails_sent"]
        return sent

    def resend_emails(self) -> list[Row]:
        rows: list[Row] = self._ok(self.http.get("/resend/emails"))["data"]
        return rows

    def set_resend_webhook(self, url: str, secret: str | None = None) -> Row:
        out: Row = self._ok(self.http.post("/resend/webhook", json={"url": url, "secret": secret}))
        return out

    def wait_for(self, fetch: Callable[[], list[Row]], predicate: Callable[[list[Row]], bool],
                 timeout: float = 10.0, interval: float = 0.05) -> list[Row]:
        """Poll ``fetch`` until ``predicate`` holds; returns the last rows or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        rows = fetch()
        while not predicate(rows):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s; last rows: {rows[-5:]}")
            time.sleep(interval)
            rows = fetch()
        return rows

    def close(self) -> None:
        self.http.close()


@dataclass
class RunningSandbox:
    base_url: str
    control: ControlClient
    settings: Settings

    @property
    def stripe_api_base(self) -> str:
        return self.base_url

    @property
    def resend_api_url(self) -> str:
        return self.base_url + "/resend"


@contextlib.contextmanager
def run_sandbox(settings: Settings | None = None, **overrides: Any) -> Iterator[RunningSandbox]:
    """Start the sandbox on a free loopback port in a thread; stop it cleanly on exit.

    Defaults suit tests: fast webhook retries (0.05 s base), 4 attempts, no state file.
    """
    base = settings or Settings(webhook_retry_base_s=0.05, webhook_retry_cap_s=1.0,
                                webhook_max_attempts=4, webhook_timeout_s=5.0, resend_tick_s=0.2)
    cfg = replace(base, host="127.0.0.1", port=free_port(), **overrides)
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host=cfg.host, port=cfg.port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="sandbox-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("sandbox server did not start")
        time.sleep(0.02)
    url = f"http://{cfg.host}:{cfg.port}"
    control = ControlClient(url)
    try:
        yield RunningSandbox(url, control, cfg)
    finally:
        control.close()
        server.should_exit = True
        thread.join(timeout=10)
