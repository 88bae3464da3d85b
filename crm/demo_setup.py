"""Wiring the local demo to the sandbox: register the sidecar as a webhook endpoint.

Filled in with the sandbox and the Stripe gateway (Send via Stripe issue); until then
the demo runs without webhook delivery.
"""

from __future__ import annotations


def connect_sandbox(webhook_port: str) -> None:
    return None
