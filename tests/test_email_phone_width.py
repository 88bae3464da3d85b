"""Every email a customer gets (invoice, each reminder tone, statement) and the payment
receipt page fit a 390 px phone in Chromium: nothing wider than the screen, the Pay
button and every amount fully on screen.

The page is opened as a phone opens it (is_mobile: a page without a viewport tag is laid
out 980 px wide and shrunk). Checked by hand: on the templates before issue 22 (a fixed
`max-width:560px` table without a viewport tag, 32 px side padding, an unbreakable pay
link) the first email checked was laid out 1321 px wide.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm.email.invoice_email import render_invoice_email, render_statement_email
from crm.email.statements import Statement, StatementLine
from crm.reminders.emails import TONES, render_reminder
from crm.send.lines import Line
from sandbox.testing import run_sandbox
from tests.sandbox_helpers import make_open_invoice, stripe_client

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
TEMPLATES = Path(__file__).resolve().parent.parent / "crm" / "templates"
# Long, realistic values: the widest a real email gets is what has to fit.
BUSINESS = "Northside Heating & Air Conditioning Services"
CUSTOMER = "Alexandra Montgomery-Featherstonehaugh"
NUMBER = "A1B2C3D4-0012"
PAY_URL = ("https://invoice.stripe.com/i/acct_1Nv0FGQ9RKHgCVdK/test_YWNjdF8xTnYwRkdROVJLSGdDVmRLLF9QZDNmR2h5"
           "WkZxR3R1d0VhT3lKbk9PZ0RhZ2p0eVdPLDEwMjQ5NjQ2Mg0200yWRNTQXj?s=em")
PDF_URL = PAY_URL.replace("/i/", "/pdf/")
DUE = date(2026, 12, 16)
LINES = [Line("Emergency furnace repair, after-hours call-out (heat exchanger inspection)", 1, 1_234_500),
         Line("Labour (hour)", 3, 12_000), Line("Replacement igniter", 2, 4_599)]


def _statement() -> Statement:
    lines = [StatementLine(1, NUMBER, "Furnace repair and annual maintenance visit", date(2026, 11, 2), DUE, 14,
                           1_234_599, "usd", PAY_URL),
             StatementLine(2, "A1B2C3D4-0013", "Thermostat", date(2026, 11, 20), date(2026, 12, 20), None, 34_400,
                           "usd", PAY_URL),
             StatementLine(3, "DEMO-0360", "Duct cleaning", None, None, None, 9_900, "usd", None)]
    return Statement(1, CUSTOMER, "alexandra@example.com", None, BUSINESS, date(2026, 12, 30), "test", lines)


def emails() -> dict[str, str]:
    """Each email's HTML, by the template it comes from."""
    out = {"invoice_email.html": render_invoice_email(
        business_name=BUSINESS, customer_name=CUSTOMER, number=NUMBER, amount_cents=1_279_698, currency="usd",
        due=DUE, pay_url=PAY_URL, pdf_url=PDF_URL, lines=LINES, memo="Thank you for your business.").html}
    for tone in TONES:
        out[f"reminder_{tone}.html"] = render_reminder(
            tone=tone, business_name=BUSINESS, customer_name=CUSTOMER, number=NUMBER, amount_cents=1_279_698,
            currency="usd", due=DUE, send_day=date(2026, 12, 30), pay_url=PAY_URL).html
    out["statement_email.html"] = render_statement_email(_statement()).html
    return out


# Not emails: the base every reminder extends, and the statement's printable page (paper, not a phone).
NOT_EMAILS = {"reminder_base.html", "statement_print.html"}


@pytest.fixture(scope="module")
def phone() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        yield context.new_page()
        browser.close()


# Elements whose right edge past the screen (or whose text clipped inside them) a reader would notice.
_OVERFLOWS = """() => {
    const w = window.innerWidth, out = [];
    if (document.documentElement.scrollWidth > w) out.push(`page is ${document.documentElement.scrollWidth}px wide`);
    for (const el of document.querySelectorAll('a, td, th, strong, p, span, h1')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0) continue;
        const label = `${el.tagName} "${el.textContent.trim().slice(0, 40)}"`;
        if (r.left < -0.5 || r.right > w + 0.5) out.push(`${label} spans ${r.left.toFixed(0)}..${r.right.toFixed(0)}`);
        if (el.tagName === 'A' && el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== 'inline')
            out.push(`${label} text clipped inside the button`);
    }
    return [w, out];
}"""


def _overflows(page: Any, html: str) -> tuple[int, list[str]]:
    page.set_content(html)
    width, problems = page.evaluate(_OVERFLOWS)
    return int(width), list(problems)


def test_ui_fix_15_every_customer_email_fits_a_390px_phone(phone: Any) -> None:
    rendered = emails()
    templates = {p.name for p in TEMPLATES.glob("*.html")} - NOT_EMAILS
    assert templates <= set(rendered), f"email templates not checked at 390 px: {sorted(templates - set(rendered))}"
    for name, html in rendered.items():
        width, problems = _overflows(phone, html)
        assert width == PHONE["width"], f"{name} is laid out {width}px wide on a 390px phone (no viewport tag?)"
        assert problems == [], f"{name} at 390px: {problems}"
        pay = phone.get_by_role("link", name="Pay").first
        assert pay.is_visible(), f"{name}: no Pay button"
        box = pay.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"{name}: {box}"
        for amount in ("$12,796.98", "$12,345.99"):
            if amount in html:
                cell = phone.get_by_text(amount, exact=True).first
                cbox = cell.bounding_box()
                assert cbox is not None and cbox["x"] + cbox["width"] <= PHONE["width"], f"{name}: {amount} {cbox}"


def test_ui_fix_15_the_payment_receipt_fits_a_390px_phone(phone: Any) -> None:
    """The receipt the customer opens after paying (the sandbox's stand-in for Stripe's)."""
    with run_sandbox(business_name=BUSINESS) as sbx:
        client = stripe_client(sbx)
        inv = make_open_invoice(client, unit_amount=1_279_698)
        sbx.control.pay_invoice(inv.id)
        charges = client.v1.charges.list({"customer": str(inv.customer)})
        receipt_url = charges.data[0].receipt_url
        assert receipt_url
        html = httpx.get(receipt_url).text
    width, problems = _overflows(phone, html)
    assert width == PHONE["width"]
    assert problems == []
    assert "$12,796.98" in html
