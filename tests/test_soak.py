"""A shortened soak (SOAK_TEST_SECONDS, default 8 s) in CI: paid invoices at a steady rate with
10% duplicated and 10% delayed deliveries; nothing lost, nothing applied twice. The full
60 s run: `SOAK_SECONDS=60 .venv/bin/python -m ops.soak`."""

from __future__ import annotations

import os
from typing import Any

import psycopg

from ops.soak import run_soak
from sandbox.testing import RunningSandbox
from tests.fixtures.sandbox import TEST_STRIPE_KEY
from tests.reconcile_helpers import wire_sidecar

Conn = psycopg.Connection[dict[str, Any]]


def test_short_soak_loses_nothing_and_applies_nothing_twice(db: Conn, crm_sandbox: RunningSandbox,
                                                           sidecar: Any) -> None:
    wire_sidecar(db, sidecar.url)
    seconds = float(os.environ.get("SOAK_TEST_SECONDS", "8"))

    result = run_soak(db, crm_sandbox.control, crm_sandbox.stripe_api_base, TEST_STRIPE_KEY, seconds, rate=3)

    print("\n".join(result.lines()))
    assert result.invoices_paid >= seconds * 2
    assert result.events_sent >= result.invoices_paid * 3
    assert (result.lost, result.double_applied) == (0, 0)
    assert result.duplicates_absorbed > 0 and result.deliveries > result.events_sent
    paid = db.execute("SELECT count(*) AS n FROM crm.invoices WHERE status = 'paid'").fetchone()
    assert paid == {"n": result.invoices_paid}
