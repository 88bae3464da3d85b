"""Issue 22 in headless Chromium, one item per test (`pytest -k ui_fix`), at 1400x1000 and 390x844.

One Streamlit (serve.py, with its /auth routes), one Chromium and one demo business serve the whole
module, so the machine pays for a browser start once; the tests run in file order and build on each
other (the demo draft sent in item 2 is the one items 7 and 8 look at). Real processes: Streamlit
(subprocess), the sandbox and the webhook sidecar (in-process servers over HTTP), Postgres.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from db.embedded import free_port
from tests.fixtures.dashboard import OWNER_EMAIL, PASSWORD, ROOT

CHROMIUM = "/usr/bin/chromium"
# Generous: the module fixture (demo seed, Streamlit, Chromium, two logins) counts toward the first test.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]
WAIT = 30_000  # ms: each Streamlit rerun takes seconds on two busy cores
DESKTOP: Any = {"width": 1400, "height": 1000}
PHONE: Any = {"width": 390, "height": 844}


@dataclass
class Walk:
    url: str
    db: psycopg.Connection[dict[str, Any]]
    browser: Any
    desktop: Any  # a logged-in page at 1400x1000
    phone: Any  # a logged-in page at 390x844 (its own context: its own cookie)
    sandbox: Any


def log_in(page: Any, url: str) -> None:
    from playwright.sync_api import expect

    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Email").fill(OWNER_EMAIL)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("textbox", name="Password").press("Tab")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible(timeout=60_000)


def main_text(page: Any) -> str:
    """The page's words. Tables are drawn on a canvas, so their cells are not here: what they hold
    is checked without a browser (tests/test_ui_fix_rules.py, the AppTest tests)."""
    return str(page.get_by_test_id("stMain").inner_text())


def open_invoice_by_url(page: Any, url: str, invoice_id: int) -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/?invoice={invoice_id}", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name=re.compile(rf"^Invoice #{invoice_id} ·"))).to_be_visible()


@pytest.fixture(scope="module")
def walk(database_url: str, sandbox_server: Any, sidecar_server: Any, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Walk]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed: the browser tests need Chromium")
    from playwright.sync_api import expect, sync_playwright

    from crm.users.auth import create_user
    from ops import seed
    from tests.conftest import truncate_all
    from tests.fixtures.sandbox import point_crm_at
    from tests.reconcile_helpers import wire_sidecar

    expect.set_options(timeout=WAIT)
    truncate_all(database_url)
    sandbox_server.control.reset()
    logs = tmp_path_factory.mktemp("ui_fix")
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as db, \
            pytest.MonkeyPatch.context() as mp:
        create_user(db, OWNER_EMAIL, "Olive Owner", "owner", PASSWORD)
        point_crm_at(db, sandbox_server, mp)
        wire_sidecar(db, sidecar_server.url)
        seed.seed_demo(db)
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
               "SANDBOX_URL": sandbox_server.base_url}
        log = (logs / "streamlit.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "serve.py"), "--server.port", str(port),
             "--server.headless", "true", "--server.fileWatcherType", "none", "--global.developmentMode", "false",
             "--client.toolbarMode", "minimal"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/_stcore/health", timeout=2, trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, (logs / "streamlit.log").read_text()
                assert time.monotonic() < deadline, "streamlit did not start"
                time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync"])
                desktop = browser.new_context(viewport=DESKTOP).new_page()
                desktop.set_default_timeout(WAIT)
                phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                            has_touch=True).new_page()
                phone.set_default_timeout(WAIT)
                log_in(desktop, url)
                log_in(phone, url)
                yield Walk(url, db, browser, desktop, phone, sandbox_server)
                browser.close()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def test_ui_fix_1_a_reload_keeps_the_session_and_logout_ends_it_everywhere(walk: Walk) -> None:
    """Fails on the old code: the session lived only in the websocket's session_state, so a reload
    showed the login form (and "Page not found" on /settings)."""
    from playwright.sync_api import expect

    page = walk.desktop
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    page.reload()
    # A new Streamlit session: the Settings page asks Stripe and Resend again, which takes a while.
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible(timeout=90_000)
    assert not page.get_by_text("Page not found").count()
    assert not page.get_by_role("button", name="Log in").count()
    cookie = next(c for c in page.context.cookies() if c["name"] == "crm_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie").find("crm_session") == -1  # no script can read it

    # A second browser holding a copy of the cookie is logged in too, until the owner logs out.
    other = walk.browser.new_context(viewport=DESKTOP)
    other.add_cookies([cookie])
    copy = other.new_page()
    copy.goto(walk.url, wait_until="domcontentloaded")
    expect(copy.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    copy.reload()
    expect(copy.get_by_role("button", name="Log in")).to_be_visible()
    other.close()
    assert not any(c["name"] == "crm_session" and c["value"] for c in page.context.cookies())

    # A disabled account's session ends at its next click, cookie or not.
    log_in(page, walk.url)
    walk.db.execute("UPDATE crm.app_users SET active = false WHERE email = %s", (OWNER_EMAIL,))
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    walk.db.execute("UPDATE crm.app_users SET active = true WHERE email = %s", (OWNER_EMAIL,))
    log_in(page, walk.url)


def demo_draft(db: psycopg.Connection[dict[str, Any]]) -> dict[str, Any]:
    row = db.execute(
        "SELECT i.id, i.amount_due_cents, c.name, c.email, (SELECT sum(l.amount_cents) FROM crm.invoice_lines l "
        "WHERE l.invoice_id = i.id) AS lines_cents FROM crm.invoices i JOIN crm.customers c ON c.id = i.customer_id "
        "WHERE i.status = 'draft' AND i.demo AND c.email IS NOT NULL AND EXISTS "
        "(SELECT 1 FROM crm.invoice_lines l WHERE l.invoice_id = i.id) ORDER BY i.id LIMIT 1").fetchone()
    assert row is not None
    return row


def test_ui_fix_2_a_draft_shows_its_lines_total_and_the_confirm_says_what_is_emailed(walk: Walk) -> None:
    """Fails on the old code: the tiles read the draft's stored amount_due ($0.00 for demo drafts) and
    the confirm asked "Send $0.00 to …?"."""
    from playwright.sync_api import expect

    from crm.money.amounts import format_cents

    draft = demo_draft(walk.db)
    walk.db.execute("UPDATE crm.invoices SET amount_due_cents = 0 WHERE id = %s", (draft["id"],))
    amount = format_cents(int(draft["lines_cents"]), "usd")
    page = walk.desktop
    open_invoice_by_url(page, walk.url, draft["id"])
    expect(page.get_by_text(f"Total: {amount}")).to_be_visible()
    page.get_by_role("button", name="Send via Stripe").click(force=True)
    confirm = page.get_by_text(f"Email {draft['name']} ({draft['email']}) an invoice for", exact=False)
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(amount)
    page.screenshot(path=str(shots() / "ui-fix-confirm.png"))
    page.get_by_role("button", name="Confirm send").click(force=True)
    expect(page.get_by_text("Sent.", exact=False).first).to_be_visible(timeout=90_000)
    sent = walk.db.execute("SELECT amount_due_cents, status FROM crm.invoices WHERE id = %s",
                           (draft["id"],)).fetchone()
    assert sent == {"amount_due_cents": draft["lines_cents"], "status": "open"}


def test_ui_fix_7_a_sent_demo_draft_loses_its_demo_label_and_its_statement_has_a_pay_link(walk: Walk) -> None:
    """Fails on the old code: `demo` stayed true after the send, so the header kept "demo data (not at
    Stripe)" and the statement showed no pay link."""
    from playwright.sync_api import expect

    from crm.config.settings import load_settings
    from crm.email.statements import build_statement, business_today

    invoice = walk.db.execute("SELECT id, customer_id, demo, hosted_invoice_url FROM crm.invoices "
                              "WHERE status = 'open' AND sent_at > now() - interval '10 minutes' "
                              "AND hosted_invoice_url LIKE 'http%' ORDER BY sent_at DESC LIMIT 1").fetchone()
    assert invoice is not None and invoice["demo"] is False
    page = walk.desktop
    open_invoice_by_url(page, walk.url, invoice["id"])
    expect(page.get_by_role("heading", name=re.compile(r"· open$"))).to_be_visible()
    assert not page.get_by_text("demo data (not at Stripe)", exact=False).count()
    current = load_settings(walk.db)
    statement = build_statement(walk.db, invoice["customer_id"], current, business_today(current))
    assert invoice["hosted_invoice_url"] in [line.pay_url for line in statement.lines]


def test_ui_fix_8_the_pay_page_shows_the_emails_due_date_and_the_business_name(walk: Walk) -> None:
    """The sandbox's hosted page shows the same due day as the dashboard and the email, under the
    account's (the business's) name. Fails on the old code for a business west of UTC: Stripe's
    due_date was the end of the local day, the next day in UTC (the hosted page said Dec 17)."""
    from playwright.sync_api import expect

    from crm.config.settings import load_settings

    invoice = walk.db.execute("SELECT id, due_date, hosted_invoice_url FROM crm.invoices WHERE status = 'open' "
                              "AND hosted_invoice_url LIKE 'http%' ORDER BY sent_at DESC LIMIT 1").fetchone()
    assert invoice is not None
    payer = walk.browser.new_page(viewport=PHONE)
    payer.goto(invoice["hosted_invoice_url"])
    due = invoice["due_date"]
    expect(payer.get_by_text(f"Due {due:%B %d, %Y}", exact=False)).to_be_visible()
    expect(payer.get_by_text(str(load_settings(walk.db)["business.name"]), exact=False).first).to_be_visible()
    payer.screenshot(path=str(shots() / "ui-fix-hosted-page-phone.png"), full_page=True)
    payer.close()
    email = walk.db.execute("SELECT subject FROM crm.email_messages WHERE invoice_id = %s AND kind = 'invoice'",
                            (invoice["id"],)).fetchone()
    assert email is not None and f"{due:%b} {due.day}" in email["subject"]


def test_ui_fix_5_close_invoice_then_the_same_row_opens_it_again(walk: Walk) -> None:
    """Fails on the old code: the list kept its selection after Close, so a click on the same row
    cleared it instead of opening the invoice."""
    from playwright.sync_api import expect

    page = walk.desktop
    page.goto(walk.url, wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    for _ in range(2):
        open_first_row(page)
        page.get_by_role("button", name="Close invoice").click(force=True)
        expect(page.get_by_role("button", name="Close invoice")).to_have_count(0)
    open_first_row(page)
    expect(page.get_by_role("heading", name=re.compile(r"^Invoice #\d+ ·"))).to_be_visible()


def open_first_row(page: Any, tries: int = 3) -> None:
    """Click the first row until its invoice opens. The live list redraws every 3 s, and a click
    that lands during a redraw is lost: up to three clicks, each waiting on the invoice to open."""
    from playwright.sync_api import expect

    close = page.get_by_role("button", name="Close invoice")
    for attempt in range(tries):
        click_first_row(page)
        try:
            expect(close).to_be_visible(timeout=10_000)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise


def click_first_row(page: Any) -> None:
    # The live list redraws every 3 s, so it is never "stable" for Playwright: click where it is.
    page.get_by_test_id("stDataFrame").first.click(position={"x": 18, "y": 52}, force=True)
    page.wait_for_timeout(1500)


def test_ui_fix_11_the_opened_invoice_is_in_view_at_1400x1000(walk: Walk) -> None:
    """Fails on the old code: the invoice rendered about 1,000 px below the row clicked, out of view."""
    from playwright.sync_api import expect

    page = walk.desktop
    page.goto(walk.url, wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    click_first_row(page)
    heading = page.get_by_role("heading", name=re.compile(r"^Invoice #\d+ ·"))
    expect(heading).to_be_visible()
    page.wait_for_timeout(1500)
    box = heading.bounding_box()
    assert box is not None and 0 <= box["y"] < DESKTOP["height"] - 100, box
    page.screenshot(path=str(shots() / "ui-fix-invoice-in-view.png"))


def test_ui_fix_6_timelines_read_as_sentences_without_ids(walk: Walk) -> None:
    """Fails on the old code: the timeline showed `invoice.paid → ignored`, evt_/pi_/msg_ ids and
    `open → open`, and listed each payment twice."""
    from playwright.sync_api import expect

    paid = walk.db.execute("SELECT i.id FROM crm.invoices i WHERE i.status = 'paid' AND EXISTS (SELECT 1 FROM "
                           "crm.payments p WHERE p.invoice_id = i.id) ORDER BY i.id DESC LIMIT 1").fetchone()
    assert paid is not None
    page = walk.desktop
    open_invoice_by_url(page, walk.url, paid["id"])
    expect(page.get_by_text("Timeline", exact=True)).to_be_visible()
    expect(page.get_by_text("Details: Stripe events and ids")).to_be_visible()
    text = main_text(page)
    for raw in ("evt_", "pi_", "msg_", "→ ignored", "open → open"):
        assert raw not in text, (raw, text)
    page.screenshot(path=str(shots() / "ui-fix-timeline.png"), full_page=True)


def test_ui_fix_12_count_chips_carry_no_arrows(walk: Walk) -> None:
    """Fails on the old code: each count under a tile had an up arrow ("↑ 30 invoices")."""
    from playwright.sync_api import expect

    page = walk.desktop
    page.goto(walk.url, wait_until="domcontentloaded")
    expect(page.get_by_test_id("stMetric").filter(has_text="Overdue")).to_be_visible()
    for title in ("Invoices", "Collections"):
        page.get_by_role("link", name=title).click()
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        page.wait_for_timeout(1500)
        chips = page.get_by_test_id("stMetricDelta").filter(has_text=re.compile(r"\d+ (invoices?|payments?|open)"))
        assert chips.count() > 0
        for i in range(chips.count()):  # a count is not a change: no arrow (a real change keeps its arrow)
            assert chips.nth(i).locator("svg").count() == 0, (title, chips.nth(i).inner_text())


@pytest.mark.xfail(strict=False, reason="typing into the canvas data editor is lost when a click lands during a rerun "
                   "(failed 2 of 5 runs); item 13 is held by the AppTest tests in tests/test_ui_fix_rules.py; "
                   "issue 22 open")
def test_ui_fix_13_line_editor_total_amounts_sign_and_no_zero_draft(walk: Walk) -> None:
    """Fails on the old code: "None" in a new row, no total until every cell was valid, no line
    amounts, no currency sign, and a new draft listed at $0.00."""
    from playwright.sync_api import expect

    page = walk.desktop
    page.goto(walk.url, wait_until="domcontentloaded")
    create = page.get_by_role("button", name="Create draft")
    for attempt in range(3):  # a click on the expander during the live list's rerun is lost
        page.get_by_text("New draft from a job").click(force=True)
        try:
            expect(create).to_be_visible(timeout=10_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    create.click(force=True)
    expect(page.get_by_text("created: add its lines below", exact=False)).to_be_visible()
    editor = page.get_by_test_id("stDataFrame").nth(1)
    editor.scroll_into_view_if_needed()
    box = editor.bounding_box()
    assert box is not None
    total = page.get_by_text("Total: $89.55")
    # The editor is a canvas: a double-click that lands while the page reruns opens no cell. Typing
    # the same three cells again is harmless, so the row is typed until the total shows (3 tries).
    for attempt in range(3):
        editor.click(position={"x": box["width"] * 0.2, "y": 52}, force=True)
        page.wait_for_timeout(1000)
        for fraction, text in ((0.2, "Diagnostic visit"), (0.65, "1"), (0.88, "89.55")):
            editor.dblclick(position={"x": box["width"] * fraction, "y": 52}, force=True)
            overlay = page.locator("#portal textarea, #portal input").first
            try:
                expect(overlay).to_be_visible(timeout=10_000)
            except AssertionError:
                continue
            overlay.fill(text)
            overlay.press("Enter")
            page.wait_for_timeout(1200)
        try:
            expect(total).to_be_visible(timeout=15_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    expect(page.get_by_text("Line amounts: 1. $89.55")).to_be_visible()
    expect(total).to_be_visible()
    page.screenshot(path=str(shots() / "ui-fix-line-editor.png"))


def test_ui_fix_9_webhook_health_in_one_time_zone(walk: Walk) -> None:
    """Fails on the old code: "Last received" was a UTC clock time on a page labelled CST."""
    from playwright.sync_api import expect

    page = walk.desktop
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("tab", name="Payments").click()
    expect(page.get_by_text("Webhook health")).to_be_visible()
    panel = page.get_by_role("tabpanel").filter(has_text="Webhook health")
    text = panel.inner_text()
    assert "UTC" not in text, text
    assert "Times in America/Chicago" in text
    last = walk.db.execute("SELECT max(received_at) AS at FROM crm.stripe_events WHERE mode = 'test'").fetchone()
    if last and last["at"]:
        from zoneinfo import ZoneInfo

        local = last["at"].astimezone(ZoneInfo("America/Chicago"))
        assert f"{local:%H:%M}" in text, text


def test_ui_fix_10_settings_in_sections_with_lists_for_zone_and_currency(walk: Walk) -> None:
    """Fails on the old code: one 5,900 px page titled "Settings → Integrations", event names and
    ids in the middle, time zone and currency as free text."""
    from playwright.sync_api import expect

    page = walk.desktop
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    names = [t.strip() for t in page.get_by_role("tab").all_inner_texts()]
    assert names == ["Business", "Payments", "Email", "Texts", "Reminders", "Go live", "Advanced"], names
    page.get_by_role("tab", name="Business").click()
    expect(page.get_by_role("combobox", name=re.compile("Time zone"))).to_be_visible()
    expect(page.get_by_role("combobox", name=re.compile("Currency"))).to_be_visible()
    page.screenshot(path=str(shots() / "ui-fix-settings-business.png"))
    page.get_by_role("tab", name="Payments").click()
    payments = page.get_by_role("tabpanel").filter(has_text="Stripe keys").inner_text()
    assert "invoice.payment_succeeded" not in payments and "we_" not in payments
    page.get_by_role("tab", name="Advanced").click()
    expect(page.get_by_text("invoice.payment_succeeded", exact=False).first).to_be_visible()
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    assert height < 3000, height


def test_ui_fix_14_golive_test_data_is_kept_apart_and_out_of_the_export(walk: Walk, tmp_path: Path) -> None:
    """Fails on the old code: the go-live test customer and their $1 invoice topped the lists and went
    into the QuickBooks export."""
    from playwright.sync_api import expect

    from crm.money.accounting_export import export_to

    db = walk.db
    customer = db.execute("INSERT INTO crm.customers (name, email, golive_test) VALUES "
                          "('Go-live test (Olive)', 'owner@example.com', true) RETURNING id").fetchone()
    assert customer is not None
    job = db.execute("INSERT INTO crm.jobs (customer_id, title) VALUES (%s, 'Go-live test invoice') RETURNING id",
                     (customer["id"],)).fetchone()
    assert job is not None
    db.execute("INSERT INTO crm.invoices (job_id, customer_id, kind, status, amount_due_cents, amount_paid_cents, "
               "currency, mode, stripe_invoice_id, stripe_invoice_number, sent_at, paid_at, due_date) VALUES "
               "(%s, %s, 'standard', 'paid', 100, 100, 'usd', 'test', 'in_golivetest', 'GOLIVE-1', now(), now(), "
               "current_date)", (job["id"], customer["id"]))
    page = walk.desktop
    page.get_by_role("link", name="Customers").click()
    search = page.get_by_role("textbox", name="Search by name or email")
    search.fill("Go-live")
    search.press("Enter")
    expect(page.get_by_text("No customer matches.")).to_be_visible()
    page.get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    page.get_by_text("Filters", exact=True).click(force=True)
    page.get_by_role("combobox", name="Customer").click(force=True)
    assert not page.get_by_role("option", name=re.compile("Go-live")).count()
    page.keyboard.press("Escape")
    today = datetime.now(UTC).date()
    _result, paths = export_to(db, today, today, "America/Chicago", tmp_path / "export")
    assert paths
    for path in paths:
        assert "GOLIVE-1" not in path.read_text() and "Go-live test" not in path.read_text(), path


def test_ui_fix_3_the_phone_list_shows_invoices_first_with_five_columns(walk: Walk) -> None:
    """Fails on the old code: five stacked filters filled the first screen and the grid cut "Amount",
    with Status and Due off to the right."""
    from playwright.sync_api import expect

    page = walk.phone
    page.goto(walk.url, wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    page.wait_for_timeout(2500)
    assert not page.get_by_role("combobox", name="Status").is_visible()  # folded into "Filters"
    expect(page.get_by_text("Filters", exact=False).first).to_be_visible()
    grid = page.get_by_test_id("stDataFrame").first
    box = grid.bounding_box()
    assert box is not None and box["y"] + 120 < PHONE["height"], box  # rows on the first screen
    fits = grid.evaluate("el => { const s = el.querySelector('.dvn-scroller'); "
                         "return s ? [s.scrollWidth, s.clientWidth] : [0, 0]; }")
    assert fits[0] <= fits[1] + 2, f"the list scrolls sideways on a phone: {fits}"
    page.screenshot(path=str(shots() / "ui-fix-invoices-phone.png"))


def test_ui_fix_4_phone_sidebar_closes_and_collections_charts_get_the_width(walk: Walk) -> None:
    """Fails on the old code: the sidebar stayed open over the page after choosing one, and the
    charts' legends squeezed them to a third of the width."""
    from playwright.sync_api import expect

    page = walk.phone
    page.get_by_test_id("stExpandSidebarButton").click()
    page.get_by_role("link", name="Collections").click()
    expect(page.get_by_role("heading", name="Collections", exact=True)).to_be_visible()
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    expect(charts.first).to_be_visible()  # the charts are drawn after the heading: wait for them, not a clock
    sidebar = page.get_by_test_id("stSidebar")
    box = sidebar.bounding_box()
    assert box is None or box["x"] + box["width"] <= 1 or sidebar.get_attribute("aria-expanded") == "false", box
    main = page.get_by_test_id("stMain").bounding_box()
    assert main is not None
    for i in range(charts.count()):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        plot = chart.locator("canvas, svg").first.bounding_box()
        assert plot is not None and plot["width"] >= 0.7 * (main["width"] - 32), (i, plot, main)
    page.screenshot(path=str(shots() / "ui-fix-collections-phone.png"))


def shots() -> Path:
    """Screenshots of this walk: tests/artifacts (ignored by git), or docs/screenshots with
    UPDATE_SCREENSHOTS=1."""
    path = ROOT / ("docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else "tests/artifacts/screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
