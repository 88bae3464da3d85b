"""End to end in headless Chromium: log in, create a draft, add its lines, Send via Stripe,
pay on the sandbox's hosted page, and watch the dashboard turn Paid without a reload.

Real processes: Streamlit (subprocess), the webhook sidecar and the sandbox (in-process
servers over real HTTP), Postgres. Screenshots of every page: see SHOTS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from db.customers import CustomerInput, create_customer
from db.embedded import free_port
from db.jobs import JobInput, create_job
from ops import seed
from sandbox.testing import RunningSandbox
from tests.fixtures.dashboard import OWNER_EMAIL, PASSWORD, ROOT

CHROMIUM = "/usr/bin/chromium"
# Every run saves its screenshots under tests/artifacts (ignored by git); UPDATE_SCREENSHOTS=1
# writes them to docs/screenshots instead, where the README's images live.
SHOTS = ROOT / ("docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else "tests/artifacts/screenshots")
pytestmark = pytest.mark.browser


PAGES = [("Jobs", "Jobs"), ("Customers", "Customers"), ("Activity", "Activity"), ("Collections", "Collections"),
         ("Settings", "Settings"), ("Users", "Users"), ("Invoices", "Invoices")]


def click_first_row(page: Any, table: int) -> None:
    """Click the first row of a selectable table (its row marker, left of the cells)."""
    grid = page.get_by_test_id("stDataFrame").nth(table)
    grid.scroll_into_view_if_needed()
    grid.click(position={"x": 18, "y": 52})
    page.wait_for_timeout(1500)


def assert_no_sideways_scroll(page: Any, what: str) -> None:
    """Nothing on the page is wider than the screen (tables scroll inside themselves)."""
    widths = page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMain"]') || document.body;
        return [document.documentElement.scrollWidth, window.innerWidth, main.scrollWidth, main.clientWidth];
    }""")
    assert widths[0] <= widths[1] and widths[2] <= widths[3], f"{what} scrolls sideways at phone width: {widths}"


def statement_customer(db: psycopg.Connection[Any], customer: int, send: bool = True) -> int:
    """Another invoice for the customer (sent, unless send=False: then a draft with its lines)."""
    from crm.send.workflow import send_invoice
    from db import drafts

    job = create_job(db, JobInput(customer, "Thermostat install"), "test")
    invoice = drafts.create_draft(db, job, "standard", None, "usd", "test")
    db.execute("INSERT INTO crm.invoice_lines (invoice_id, position, description, quantity, unit_amount_cents) "
               "VALUES (%s, 0, 'Smart thermostat', 1, 24900), (%s, 1, 'Installation', 1, 9500)", (invoice, invoice))
    db.execute("UPDATE crm.invoices SET amount_due_cents = 34400 WHERE id = %s", (invoice,))
    if send:
        assert send_invoice(invoice, "owner@example.com").ok
    return invoice


@pytest.fixture
def dashboard_url(db: psycopg.Connection[Any], crm_sandbox: RunningSandbox, tmp_path: Path) -> Iterator[str]:
    """`streamlit run serve.py` (the dashboard with its /auth routes) against the test database and the sandbox."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "SANDBOX_URL": crm_sandbox.base_url}
    log = (tmp_path / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "serve.py"), "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none", "--global.developmentMode", "false",
         "--client.toolbarMode", "minimal"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()
        assert time.monotonic() < deadline, "streamlit did not start"
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_send_and_pay_turns_the_invoice_paid_live(db: psycopg.Connection[Any], dashboard_users: dict[str, int],
                                                  crm_sandbox: RunningSandbox, sidecar: Any,
                                                  dashboard_url: str) -> None:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed: the browser test needs Chromium")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # each rerun of a page takes seconds on two busy cores

    from tests.reconcile_helpers import wire_sidecar

    wire_sidecar(db, sidecar.url)
    customer = create_customer(db, CustomerInput("Dana Whitfield", "dana@example.com", "+15125550144",
                                                 "12 Maple Ave"), "test")
    create_job(db, JobInput(customer, "Furnace repair"), "test")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(dashboard_url)
        page.get_by_role("textbox", name="Email").fill(OWNER_EMAIL)
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.screenshot(path=str(SHOTS / "login.png"))
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Invoices")).to_be_visible()

        page.get_by_text("New draft from a job").click()
        page.get_by_role("button", name="Create draft").click()
        expect(page.get_by_text("Draft #1 created")).to_be_visible()
        expect(page.get_by_role("heading", name="Invoice #1 · draft")).to_be_visible()

        # The line editor is a canvas grid: add a row and type into it with the keyboard.
        grid = page.get_by_test_id("stDataFrame").nth(1)  # list, line editor, timeline
        grid.scroll_into_view_if_needed()
        box = grid.bounding_box()
        assert box is not None
        row_y = 52  # the first row under the header; in an empty editor, the "add row" row
        grid.click(position={"x": box["width"] * 0.2, "y": row_y})
        page.wait_for_timeout(1000)
        for fraction, text in ((0.2, "Diagnostic visit"), (0.65, "2"), (0.88, "89.55")):
            grid.dblclick(position={"x": box["width"] * fraction, "y": row_y})
            overlay = page.locator("#portal textarea, #portal input").first
            expect(overlay).to_be_visible()
            overlay.fill(text)
            overlay.press("Enter")
            page.wait_for_timeout(1000)  # the edit reruns the page
        expect(page.get_by_text("Total: $179.10")).to_be_visible()
        page.get_by_role("button", name="Save lines").click()
        expect(page.get_by_text("Saved 1 lines, total $179.10.")).to_be_visible()
        page.screenshot(path=str(SHOTS / "invoice-draft.png"), full_page=True)

        page.get_by_role("button", name="Send via Stripe").click()
        page.get_by_role("button", name="Confirm send").click()
        expect(page.get_by_text("Sent.", exact=False).first).to_be_visible(timeout=60_000)
        expect(page.get_by_role("heading", name="· open")).to_be_visible()
        page.get_by_role("button", name="Resend email").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "invoice-sent.png"))
        row = db.execute("SELECT hosted_invoice_url, amount_due_cents FROM crm.invoices WHERE id = 1").fetchone()
        assert row is not None and row["amount_due_cents"] == 17910

        payer = browser.new_page()
        payer.goto(row["hosted_invoice_url"])
        payer.get_by_role("button", name="Pay $179.10").click()
        expect(payer.locator("#paid")).to_be_visible()
        payer.screenshot(path=str(SHOTS / "sandbox-hosted-page.png"))

        # No reload: the live fragment picks the payment up.
        expect(page.get_by_role("heading", name="· paid")).to_be_visible(timeout=15_000)
        page.screenshot(path=str(SHOTS / "invoice-paid.png"), full_page=True)
        assert db.execute("SELECT status FROM crm.invoices WHERE id = 1").fetchone() == {"status": "paid"}

        # The demo business, so the other pages have something to show; sidebar links keep the session.
        seed.seed_demo(db)
        for title, heading in PAGES:
            page.get_by_role("link", name=title).click()
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            page.wait_for_timeout(2000)  # charts and tables finish drawing
            assert not page.get_by_test_id("stException").count(), f"{title} raised"
            page.screenshot(path=str(SHOTS / f"{title.lower()}.png"))

        # A click on a customer's row opens the customer: their statement, jobs, invoices, timeline.
        page.get_by_role("link", name="Customers").click()
        expect(page.get_by_role("heading", name="Customers", exact=True)).to_be_visible()
        page.get_by_role("combobox", name="Sort").click()
        page.get_by_role("option", name="Balance, highest first").click()
        page.wait_for_timeout(1500)
        click_first_row(page, 0)
        expect(page.get_by_text("Statement", exact=False).first).to_be_visible()
        expect(page.get_by_role("button", name="Email statement")).to_be_visible()
        page.get_by_role("button", name="Email statement").scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SHOTS / "customer-statement.png"))

        # A statement for Dana (the invoice sent above was paid; send two more).
        statement_customer(db, customer)
        statement_customer(db, customer)
        page.get_by_role("link", name="Invoices").click()
        page.get_by_role("link", name="Customers").click()
        page.get_by_role("textbox", name="Search by name or email").fill("Dana")
        page.keyboard.press("Enter")
        page.wait_for_timeout(1500)
        click_first_row(page, 0)
        page.get_by_role("button", name="Email statement").click()
        expect(page.get_by_text("emailed to dana@example.com")).to_be_visible()
        page.wait_for_timeout(2000)  # the tables below finish drawing
        page.screenshot(path=str(SHOTS / "customer-statement-sent.png"))
        mail = browser.new_page(viewport={"width": 1000, "height": 900})
        mail.goto(f"{crm_sandbox.base_url}/mailbox")
        mail.get_by_role("link", name="Statement from", exact=False).first.click()
        mail.wait_for_timeout(1000)
        mail.screenshot(path=str(SHOTS / "statement-email.png"), full_page=True)
        from crm.config.settings import load_settings
        from crm.email.invoice_email import render_statement_page
        from crm.email.statements import build_statement, business_today

        current = load_settings(db)
        mail.set_content(render_statement_page(build_statement(db, customer, current, business_today(current))))
        mail.screenshot(path=str(SHOTS / "statement-print.png"), full_page=True)

        # Phone width: every page usable without scrolling sideways, and an invoice sent from the phone.
        phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                    has_touch=True)
        mobile = phone.new_page()
        mobile.set_default_timeout(30_000)
        mobile.goto(dashboard_url)
        mobile.get_by_role("textbox", name="Email").fill(OWNER_EMAIL)
        mobile.get_by_role("textbox", name="Password").fill(PASSWORD)
        mobile.get_by_role("textbox", name="Password").press("Tab")
        mobile.wait_for_timeout(1000)
        mobile.get_by_role("button", name="Log in").click()
        expect(mobile.get_by_role("heading", name="Invoices")).to_be_visible(timeout=60_000)
        mobile.wait_for_timeout(2000)
        assert_no_sideways_scroll(mobile, "Invoices")
        mobile.screenshot(path=str(SHOTS / "invoices-phone.png"))
        phone_draft = statement_customer(db, customer, send=False)
        mobile.wait_for_timeout(4500)  # the live list picks the new draft up (it refreshes every 3 s)
        click_first_row(mobile, 0)  # the newest invoice: the draft just made
        expect(mobile.get_by_role("heading", name=f"Invoice #{phone_draft} · draft")).to_be_visible()
        mobile.get_by_role("button", name="Send via Stripe").scroll_into_view_if_needed()
        assert_no_sideways_scroll(mobile, "a draft")
        mobile.screenshot(path=str(SHOTS / "invoice-draft-phone.png"))
        mobile.get_by_role("button", name="Send via Stripe").click()
        mobile.get_by_role("button", name="Confirm send").click()
        expect(mobile.get_by_text("Sent.", exact=False).first).to_be_visible(timeout=60_000)
        expect(mobile.get_by_role("heading", name="· open")).to_be_visible()
        assert_no_sideways_scroll(mobile, "a sent invoice")
        mobile.get_by_role("heading", name="· open").scroll_into_view_if_needed()
        mobile.screenshot(path=str(SHOTS / "invoice-sent-phone.png"))
        for title, heading in PAGES:
            mobile.get_by_test_id("stExpandSidebarButton").click()
            mobile.get_by_role("link", name=title).click()
            expect(mobile.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            mobile.wait_for_timeout(1000)
            # The sidebar folds away by itself after a navigation on a phone (issue 22).
            mobile.wait_for_timeout(1500)
            assert not mobile.get_by_test_id("stException").count(), f"{title} raised at phone width"
            assert_no_sideways_scroll(mobile, title)
            mobile.screenshot(path=str(SHOTS / f"{title.lower()}-phone.png"))
        phone.close()
        browser.close()


def test_golive_checklist_walked_in_the_browser(db: psycopg.Connection[Any], dashboard_users: dict[str, int],
                                                crm_sandbox: RunningSandbox, sidecar: Any,
                                                dashboard_url: str) -> None:
    """Settings → Go live against the sandbox: live refused, the endpoints registered and Resend set up
    from the page, the test invoice sent, paid on the sandbox's hosted page and turning green by its
    webhook without a reload, then live allowed. Screenshots settings-golive*.png (desktop, phone)."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed: the browser test needs Chromium")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # each rerun of a page takes seconds on two busy cores

    from crm.config.settings import load_settings

    crm_sandbox.control.clear_resend_domains()  # go-live adds the From domain itself, as for a new owner
    hook_url = f"{sidecar.url}/webhooks/stripe"
    SHOTS.mkdir(parents=True, exist_ok=True)
    wait = 60_000  # generous: two busy cores, a Streamlit rerun per click
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(wait)
        page.goto(dashboard_url)
        page.get_by_role("textbox", name="Email").fill(OWNER_EMAIL)
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Invoices")).to_be_visible()
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("tab", name="Go live").click()
        expect(page.get_by_role("heading", name="Go live, step by step")).to_be_visible()

        def switch_mode_to_live() -> None:
            page.get_by_role("tab", name="Go live").click()
            form = page.get_by_test_id("stForm").filter(has_text="Current mode")
            form.get_by_text("live", exact=True).click()
            if not form.get_by_role("checkbox", name="I understand what changes").is_checked():
                form.get_by_text("I understand what changes").click()
            form.get_by_role("button", name="Switch mode").click()

        switch_mode_to_live()
        expect(page.get_by_text("Live mode is refused until steps 1-5 are green.", exact=False)).to_be_visible()
        assert load_settings(db).stripe_mode == "test"

        # Steps 2 and 5: register the sidecar for each mode through the page's form.
        page.get_by_role("tab", name="Payments").click()
        for hook_mode in ("test", "live"):
            form = page.get_by_test_id("stForm").filter(has_text="Endpoint for")
            form.get_by_text(hook_mode, exact=True).click()
            form.get_by_role("textbox", name="Sidecar URL").fill(hook_url)
            form.get_by_role("button", name="Register webhook endpoint").click()
            expect(page.get_by_text("Registered we_", exact=False).first).to_be_visible()
            page.wait_for_timeout(1000)
        # Step 3: the Resend webhook secret, then the domain with tracking.
        page.get_by_role("tab", name="Email").click()
        resend_form = page.get_by_test_id("stForm").filter(has_text="Save email settings")
        resend_form.get_by_role("textbox", name="New Resend webhook signing secret").fill(
            "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0")
        resend_form.get_by_role("button", name="Save email settings").click()
        expect(page.get_by_text("Email settings saved.")).to_be_visible()
        page.get_by_role("tab", name="Go live").click()
        page.get_by_role("button", name="Set up domain in Resend").click()
        expect(page.get_by_text("added acme-hvac.test with open and click tracking on", exact=False)).to_be_visible()
        page.get_by_role("button", name="Check all steps").click()
        expect(page.get_by_text("The test key works: account", exact=False)).to_be_visible()
        expect(page.get_by_text("Resend key works; acme-hvac.test is verified", exact=False)).to_be_visible()

        # Step 4: the test invoice, paid on the hosted page with a test card.
        page.get_by_role("button", name="Send test invoice").click()
        expect(page.get_by_text("Test invoice #1 sent to", exact=False).first).to_be_visible()
        row = db.execute("SELECT hosted_invoice_url FROM crm.invoices WHERE id = 1").fetchone()
        assert row is not None and row["hosted_invoice_url"]
        expect(page.get_by_text(f"Pay link: {row['hosted_invoice_url']}")).to_be_visible()
        payer = browser.new_page()
        payer.goto(row["hosted_invoice_url"])
        payer.get_by_role("button", name="Pay $1.00").click()
        expect(payer.locator("#paid")).to_be_visible()
        payer.close()
        # No reload: the checklist refreshes itself while the test invoice waits for its webhook.
        expect(page.get_by_text("was paid and its webhook arrived", exact=False).first).to_be_visible(timeout=wait)
        expect(page.get_by_text("Steps 1–5 are green: live mode may be switched on.")).to_be_visible()
        page.wait_for_timeout(1500)
        # Streamlit scrolls inside its own container: a tall viewport shows the whole checklist.
        page.set_viewport_size({"width": 1280, "height": 2300})
        page.get_by_role("heading", name="Go live, step by step").scroll_into_view_if_needed()
        page.wait_for_timeout(2000)
        page.screenshot(path=str(SHOTS / "settings-golive.png"))
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(2500)
        page.get_by_role("heading", name="Go live, step by step").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "settings-golive-phone.png"))
        page.set_viewport_size({"width": 1280, "height": 900})
        page.wait_for_timeout(1500)

        switch_mode_to_live()
        expect(page.get_by_text("Stripe mode is now live", exact=False).first).to_be_visible()
        assert load_settings(db).stripe_mode == "live"
        assert not page.get_by_test_id("stException").count()
        browser.close()
