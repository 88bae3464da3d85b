"""Shared pieces for the texts tests: an open invoice with a pay link and a customer phone,
and the CRM pointed at the sandbox's Twilio as a deployment points at Twilio."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sandbox.testing import RunningSandbox
from tests.fixtures.sidecar import seed_invoice

PHONE = "+15125550123"
Conn = psycopg.Connection[dict[str, Any]]


def point_texts_at(db: Conn, sbx: RunningSandbox, monkeypatch: pytest.MonkeyPatch,
                   callback_url: str | None = None) -> None:
    """No Twilio token: the sandbox's account; TWILIO_API_URL is where that sandbox listens."""
    from crm.config.settings import save_setting

    monkeypatch.setenv("TWILIO_API_URL", sbx.twilio_api_url)
    save_setting(db, "business.name", "Acme HVAC & Plumbing")
    if callback_url:
        save_setting(db, "twilio.status_callback_url", callback_url)


def open_invoice(db: Conn, sbx: RunningSandbox | None = None, *, phone: str | None = PHONE,
                 amount: int = 34_500) -> dict[str, Any]:
    ids = seed_invoice(db, amount_due=amount)
    base = sbx.base_url if sbx else "http://127.0.0.1:12111"
    db.execute("UPDATE crm.invoices SET stripe_invoice_number = %s, hosted_invoice_url = %s WHERE id = %s",
               ("7F3A-0001", f"{base}/i/{ids['stripe_invoice_id']}", ids["invoice_id"]))
    db.execute("UPDATE crm.customers SET phone = %s WHERE id = %s", (phone, ids["customer_id"]))
    return ids
