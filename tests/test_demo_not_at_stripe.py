"""The demo business never existed at Stripe: reconcile does not ask Stripe about it, so
`make run` (seed, then reconcile at the sidecar's start) logs no 404 per demo invoice."""

from __future__ import annotations

from typing import Any

import psycopg

from crm.stripe.reconcile import run_reconcile
from ops import seed
from sandbox.testing import RunningSandbox


def test_reconcile_skips_the_demo_invoices(db: psycopg.Connection[Any], crm_sandbox: RunningSandbox) -> None:
    seed.seed_demo(db)
    demo = db.execute("SELECT count(*) AS n FROM crm.invoices WHERE demo AND status IN ('open', 'uncollectible')"
                      ).fetchone()
    assert demo is not None and demo["n"] > 10
    assert db.execute("SELECT count(*) AS n FROM crm.invoices WHERE NOT demo").fetchone() == {"n": 0}

    report = run_reconcile("cli")

    assert report.ok, report.errors
    assert report.invoices_checked == 0 and report.missing_at_stripe == []
    gets = [r["path"] for r in crm_sandbox.control.requests(service="stripe", method="GET")]
    assert not [p for p in gets if "in_demo_" in p]
