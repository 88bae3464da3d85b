"""Helpers for the Send tests: what the sandbox itself holds, read through the real stripe client."""

from __future__ import annotations

from typing import Any

from stripe import StripeClient

from sandbox.testing import RunningSandbox
from tests.fixtures.sandbox import TEST_STRIPE_KEY


def stripe_client(sbx: RunningSandbox) -> StripeClient:
    return StripeClient(TEST_STRIPE_KEY, base_addresses={"api": sbx.stripe_api_base})


def sandbox_objects(sbx: RunningSandbox) -> dict[str, list[dict[str, Any]]]:
    """Every customer, invoice and email the sandbox holds (its state, not our database)."""
    client = stripe_client(sbx)
    return {
        "customers": [c.to_dict() for c in client.v1.customers.list({"limit": 100}).data],
        "invoices": [i.to_dict() for i in client.v1.invoices.list({"limit": 100}).data],
        "emails": sbx.control.resend_emails(),
    }


def assert_exactly_one_of_each(sbx: RunningSandbox) -> dict[str, list[dict[str, Any]]]:
    objs = sandbox_objects(sbx)
    counts = {k: len(v) for k, v in objs.items()}
    assert counts == {"customers": 1, "invoices": 1, "emails": 1}, counts
    return objs
