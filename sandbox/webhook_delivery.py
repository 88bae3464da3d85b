"""Asynchronous, signed webhook delivery with retries, a delivery log and fault switches.

Each (event, endpoint) pair is delivered by its own asyncio task: non-2xx answers
and connection errors are retried with capped exponential backoff for a bounded
number of attempts. Delivery faults (drop, duplicate, delay/reorder) are decided
once per pair, by a seeded random generator so fault tests are reproducible.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from sandbox import signing
from sandbox.config import Settings
from sandbox.netguard import is_local_url
from sandbox.state import Obj, Store

log = logging.getLogger("sandbox.webhooks")


@dataclass
class Target:
    service: str  # "stripe", "resend" or "twilio"
    endpoint_id: str
    url: str
    secret: str


@dataclass
class DeliveryFaults:
    """Share of deliveries to drop, duplicate, or delay (which reorders them)."""

    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    delay_rate: float = 0.0
    delay_s: float = 2.0
    event_types: list[str] = field(default_factory=list)
    seed: int | None = None

    def applies_to(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types

    def to_dict(self) -> Obj:
        return {
            "drop_rate": self.drop_rate, "duplicate_rate": self.duplicate_rate,
            "delay_rate": self.delay_rate, "delay_s": self.delay_s,
            "event_types": self.event_types, "seed": self.seed,
        }


class Deliverer:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.faults: dict[str, DeliveryFaults] = {"stripe": DeliveryFaults(), "resend": DeliveryFaults(),
                                                   "twilio": DeliveryFaults()}
        self._rng = random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def set_faults(self, service: str, faults: DeliveryFaults) -> None:
        self.faults[service] = faults
        if faults.seed is not None:
            self._rng = random.Random(faults.seed)

    def submit(self, target: Target, event_id: str, event_type: str, payload: Obj,
               on_success: Callable[[], None] | None = None) -> None:
        """Queue one delivery. Must be called from the event loop thread."""
        if target.service == "twilio":  # a status callback: form-encoded, as Twilio posts it
            body = urlencode(payload).encode()
        else:
            body = json.dumps(payload, separators=(",", ":")).encode()
        faults = self.faults.get(target.service, DeliveryFaults())
        drop = dup = delay = False
        if faults.applies_to(event_type):
            drop = self._rng.random() < faults.drop_rate
            dup = self._rng.random() < faults.duplicate_rate
            delay = self._rng.random() < faults.delay_rate
        if drop:
            self._log(target, event_id, event_type, 0, None, None, "dropped", False)
            return
        self._spawn(self._deliver(target, event_id, event_type, body,
                                  faults.delay_s if delay else 0.0, False, on_success))
        if dup:
            self._spawn(self._deliver(target, event_id, event_type, body, 0.0, True, None))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def _deliver(self, target: Target, event_id: str, event_type: str, body: bytes,
                       initial_delay: float, duplicate: bool,
                       on_success: Callable[[], None] | None) -> None:
        if initial_delay:
            await asyncio.sleep(initial_delay)
        if not self.settings.allow_public_webhooks and not await is_local_url(target.url):
            self._log(target, event_id, event_type, 1, None,
                      "refused: the sandbox only delivers to loopback/private addresses",
                      "refused", duplicate)
            return
        msg_id = event_id  # Svix keeps one message id across retries, so receivers can dedupe.
        # Twilio does not retry a status callback that failed: one attempt, as there.
        max_attempts = 1 if target.service == "twilio" else max(1, self.settings.webhook_max_attempts)
        for attempt in range(1, max_attempts + 1):
            status, error = await self._post(target, msg_id, body)
            ok = status is not None and 200 <= status < 300
            if ok:
                self._log(target, event_id, event_type, attempt, status, None, "delivered", duplicate)
                if on_success:
                    on_success()
                return
            last = attempt == max_attempts
            delay = min(self.settings.webhook_retry_cap_s,
                        self.settings.webhook_retry_base_s * (2 ** (attempt - 1)))
            self._log(target, event_id, event_type, attempt, status, error,
                      "gave_up" if last else "retry_scheduled", duplicate,
                      None if last else delay)
            if not last:
                await asyncio.sleep(delay)

    async def _post(self, target: Target, msg_id: str, body: bytes) -> tuple[int | None, str | None]:
        now = int(time.time())  # Signatures use real time: receivers check a tolerance window.
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "Sandbox-Webhooks/1.0"}
        if target.service == "stripe":
            headers["Stripe-Signature"] = signing.stripe_signature_header(target.secret, body, now)
        elif target.service == "twilio":
            headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                       "User-Agent": "TwilioProxy/1.1",
                       "X-Twilio-Signature": signing.twilio_signature(target.secret, target.url, body)}
        else:
            headers.update(signing.svix_headers(target.secret, msg_id, now, body))
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.webhook_timeout_s, trust_env=False)
        try:
            resp = await self._client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return resp.status_code, None

    def _log(self, target: Target, event_id: str, event_type: str, attempt: int,
             status: int | None, error: str | None, outcome: str, duplicate: bool,
             next_retry_in_s: float | None = None) -> None:
        entry = {
            "service": target.service, "event_id": event_id, "event_type": event_type,
            "endpoint_id": target.endpoint_id, "url": target.url, "attempt": attempt,
            "status": status, "error": error, "outcome": outcome, "duplicate": duplicate,
            "next_retry_in_s": next_retry_in_s, "time": time.time(),
        }
        self.store.delivery_log.append(entry)
        log.info("SANDBOX webhook %s %s -> %s attempt %d: %s %s", target.service, event_type,
                 target.url, attempt, outcome, status if status is not None else error or "")

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def aclose(self) -> None:
        await self.cancel_all()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
