"""The sandbox's shared parts, bundled so handlers reach them from ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.config import Settings
from sandbox.faults import FaultBook
from sandbox.state import Store
from sandbox.webhook_delivery import Deliverer


@dataclass
class Sandbox:
    settings: Settings
    store: Store
    deliverer: Deliverer
    faults: FaultBook
    # The configured bank debit settle delay and failure switch, restored by a reset.
    bank_defaults: tuple[float, bool] = (30.0, False)
    # Idempotency keys of Stripe requests still being processed: a second request with one
    # of them gets Stripe's 409 (another request with this key is in progress).
    inflight_keys: set[str] = field(default_factory=set)
    # The account's capabilities (stripe_account.DEFAULT_CAPABILITIES, changed through the
    # control API, restored by a reset): a payment method whose capability is not active is refused.
    capabilities: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings) -> Sandbox:
        store = Store(settings.state_file)
        return cls(settings, store, Deliverer(settings, store), FaultBook(),
                   (settings.bank_settle_delay_s, settings.bank_debits_fail))


@dataclass
class StripeCtx:
    """Per-request facts the Stripe domain needs: mode, request ids, public base URL."""

    mode: str
    base_url: str
    request_id: str | None = None
    idempotency_key: str | None = None

    @property
    def livemode(self) -> bool:
        return self.mode == "live"

    def event_request(self) -> dict[str, str | None]:
        return {"id": self.request_id, "idempotency_key": self.idempotency_key}
