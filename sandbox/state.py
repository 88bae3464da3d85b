"""In-memory state of the emulators, with optional persistence to a JSON file.

Stripe objects are kept per mode ("test" / "live") because Stripe's test and live
keys see disjoint sets of objects. Keys starting with ``_`` inside stored objects
are the sandbox's private bookkeeping and are never rendered to clients.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import deque
from typing import Any

log = logging.getLogger("sandbox")

Obj = dict[str, Any]
MODES = ("test", "live")
STRIPE_KINDS = (
    "customer",
    "invoice",
    "line_item",
    "invoice_payment",
    "payment_record",
    "credit_note",
    "payment_intent",
    "charge",
    "balance_transaction",
    "refund",
    "dispute",
    "event",
    "webhook_endpoint",
)
REQUEST_LOG_MAX = 20000
DELIVERY_LOG_MAX = 20000


def _empty_stripe() -> dict[str, dict[str, dict[str, Obj]]]:
    return {mode: {kind: {} for kind in STRIPE_KINDS} for mode in MODES}


class Store:
    """All mutable sandbox state. Mutated only from the event loop thread."""

    def __init__(self, state_file: str | None = None) -> None:
        self.state_file = state_file
        self.reset()
        if state_file and os.path.exists(state_file):
            self.load()

    def reset(self) -> None:
        self.stripe = _empty_stripe()
        self.resend_emails: dict[str, Obj] = {}
        self.resend_webhooks: dict[str, Obj] = {}
        self.resend_domains: dict[str, Obj] = {}
        # Twilio: messages by SID, and per-number behaviour set from the phone page or the
        # control API ({"opted_out": true} after STOP, {"fail": 30003} to make texts fail).
        self.twilio_messages: dict[str, Obj] = {}
        self.twilio_numbers: dict[str, Obj] = {}
        # (service, scope, key) -> stored first response
        self.idempotency: dict[str, Obj] = {}
        self.request_log: deque[Obj] = deque(maxlen=REQUEST_LOG_MAX)
        self.delivery_log: deque[Obj] = deque(maxlen=DELIVERY_LOG_MAX)
        self.invoice_send_calls: list[Obj] = []
        self.clock_offset_s: float = 0.0
        self._seq = 0

    # Clock: shifting it lets tests age invoices and due scheduled emails without sleeping.
    def now(self) -> int:
        return int(time.time() + self.clock_offset_s)

    def now_f(self) -> float:
        return time.time() + self.clock_offset_s

    def next_seq(self) -> int:
        """A global counter that orders objects created within the same second."""
        self._seq += 1
        return self._seq

    def coll(self, mode: str, kind: str) -> dict[str, Obj]:
        return self.stripe[mode][kind]

    def find_any_mode(self, kind: str, obj_id: str) -> tuple[str, Obj] | None:
        for mode in MODES:
            obj = self.stripe[mode][kind].get(obj_id)
            if obj is not None:
                return mode, obj
        return None

    # Persistence keeps the local demo alive across restarts; logs are not kept.
    def snapshot(self) -> Obj:
        return {
            "version": 1,
            "stripe": self.stripe,
            "resend_emails": self.resend_emails,
            "resend_webhooks": self.resend_webhooks,
            "resend_domains": self.resend_domains,
            "twilio_messages": self.twilio_messages,
            "twilio_numbers": self.twilio_numbers,
            "idempotency": self.idempotency,
            "invoice_send_calls": self.invoice_send_calls,
            "clock_offset_s": self.clock_offset_s,
            "seq": self._seq,
        }

    def save(self) -> None:
        if not self.state_file:
            return
        directory = os.path.dirname(os.path.abspath(self.state_file))
        os.makedirs(directory, exist_ok=True)
        # Write then rename so a crash never leaves a half-written state file.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sandbox-state-")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.snapshot(), fh)
        os.replace(tmp, self.state_file)

    def load(self) -> None:
        assert self.state_file
        try:
            with open(self.state_file) as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            log.warning("SANDBOX: could not read state file %s (%s); starting empty", self.state_file, exc)
            return
        stripe = _empty_stripe()
        for mode in MODES:
            for kind in STRIPE_KINDS:
                stripe[mode][kind].update(data.get("stripe", {}).get(mode, {}).get(kind, {}))
        self.stripe = stripe
        self.resend_emails = data.get("resend_emails", {})
        self.resend_webhooks = data.get("resend_webhooks", {})
        self.resend_domains = data.get("resend_domains", {})
        self.twilio_messages = data.get("twilio_messages", {})
        self.twilio_numbers = data.get("twilio_numbers", {})
        self.idempotency = data.get("idempotency", {})
        self.invoice_send_calls = data.get("invoice_send_calls", [])
        self.clock_offset_s = float(data.get("clock_offset_s", 0.0))
        self._seq = int(data.get("seq", 0))
        log.info("SANDBOX: loaded state from %s", self.state_file)
