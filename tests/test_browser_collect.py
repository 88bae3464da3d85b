"""The driveway loop end to end in headless Chromium at phone size (390x844): an open invoice ->
Collect now -> Text it -> the text on the sandbox's /phone page -> tap its link -> pay on the
hosted page -> the Collect screen says Paid (card and time) without a reload.

Real processes: Streamlit (subprocess), the webhook sidecar and the sandbox (in-process
servers over real HTTP), Postgres. Screenshots: collect-phone.png, phone-texts.png,
collect-paid-phone.png (SHOTS, as in test_browser_dashboard.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from db.customers import CustomerInput, create_customer
from sandbox.testing import RunningSandbox
from tests.fixtures.dashboard import OWNER_EMAIL, PASSWORD
from tests.test_browser_dashboard import CHROMIUM, SHOTS, assert_no_sideways_scroll, click_first_row, dashboard_url  # noqa: F401

pytestmark = pytest.mark.browser


def _sent_invoice(db: psycopg.Connection[Any], customer: int) -> int:
    from crm.send.workflow import send_invoice
    from db import drafts
    from db.jobs import JobInput, create_job

    job = create_job(db, JobInput(customer, "Furnace repair"), "test")
    invoice = drafts.create_draft(db, job, "standard", None, "usd", "test")
    db.execute("INSERT INTO crm.invoice_lines (invoice_id, position, description, quantity, unit_amount_cents) "
               "VALUES (%s, 0, 'Furnace repair', 1, 34500)", (invoice,))
    db.execute("UPDATE crm.invoices SET amount_due_cents = 34500 WHERE id = %s", (invoice,))
    assert send_invoice(invoice, "owner@example.com").ok
    return invoice


def test_collect_screen_driveway_loop_at_phone_width(db: psycopg.Connection[Any], dashboard_users: dict[str, int],
                                                    crm_sandbox: RunningSandbox, sidecar: Any,
                                                    dashboard_url: str) -> None:  # noqa: F811
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed: the browser test needs Chromium")
    from playwright.sync_api import expect, sync_playwright

    from crm.config.settings import save_setting
    from tests.reconcile_helpers import wire_sidecar
    from webhook.twilio_route import VERIFIER

    expect.set_options(timeout=30_000)
    wire_sidecar(db, sidecar.url)
    save_setting(db, "twilio.status_callback_url", f"{sidecar.url}/webhooks/twilio")
    VERIFIER.clear()
    customer = create_customer(db, CustomerInput("Dana Whitfield", "dana@example.com", "+15125550144",
                                                 "12 Maple Ave"), "test")
    invoice = _sent_invoice(db, customer)
    from db.jobs import JobInput, create_job

    create_job(db, JobInput(create_customer(db, CustomerInput("Lee Okafor", "lee@example.com"), "test"),
                            "Water heater flush"), "test")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                    has_touch=True)
        tech = phone.new_page()
        tech.set_default_timeout(30_000)
        tech.goto(dashboard_url)
        tech.get_by_role("textbox", name="Email").fill(OWNER_EMAIL)
        tech.get_by_role("textbox", name="Password").fill(PASSWORD)
        tech.get_by_role("textbox", name="Password").press("Tab")
        tech.wait_for_timeout(1000)
        tech.get_by_role("button", name="Log in").click()
        expect(tech.get_by_role("heading", name="Invoices")).to_be_visible(timeout=60_000)
        tech.wait_for_timeout(2000)
        click_first_row(tech, 0)
        tech.get_by_role("button", name="Collect now").click()
        expect(tech.get_by_role("heading", name="Dana Whitfield")).to_be_visible()
        expect(tech.get_by_text("Waiting for payment · $345.00")).to_be_visible()
        expect(tech.get_by_role("img").first).to_be_visible()
        assert_no_sideways_scroll(tech, "Collect")
        tech.screenshot(path=str(SHOTS / "collect-phone.png"), full_page=True)

        tech.get_by_role("button", name="Text it").click()
        expect(tech.get_by_text("Texted to +15125550144.")).to_be_visible()
        marker = tech.evaluate("() => { window.__noReload = 'still here'; return window.__noReload; }")

        customer_phone = phone.new_page()
        customer_phone.goto(f"{crm_sandbox.base_url}/phone?number=%2B15125550144")
        link = customer_phone.locator(".bubble a").first
        expect(link).to_be_visible(timeout=15_000)
        customer_phone.screenshot(path=str(SHOTS / "phone-texts.png"), full_page=True)
        link.click()
        customer_phone.get_by_role("button", name="Pay $345.00").click()
        expect(customer_phone.locator("#paid")).to_be_visible()

        expect(tech.get_by_text("Paid $345.00 · Visa •••• 4242 ·", exact=False)).to_be_visible(timeout=15_000)
        assert tech.evaluate("() => window.__noReload") == marker, "the Collect screen was reloaded"
        expect(tech.get_by_role("button", name="Next job: Water heater flush (Lee Okafor)")).to_be_visible()
        tech.screenshot(path=str(SHOTS / "collect-paid-phone.png"), full_page=True)
        browser.close()
    row = db.execute("SELECT status FROM crm.invoices WHERE id = %s", (invoice,)).fetchone()
    assert row == {"status": "paid"}
