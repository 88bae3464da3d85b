"""HTML pages for people: the hosted invoice page (pay by test card), invoice PDF,
charge receipts, the mailbox of emails "sent" through Resend, and click tracking.

Every page carries a banner saying it is the sandbox: no real money, no real email.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox import BANNER, request_log
from sandbox import resend_mail as mail
from sandbox import stripe_bank_disputes as bank
from sandbox import stripe_billing as billing
from sandbox.context import Sandbox, StripeCtx
from sandbox.pdf import text_pdf
from sandbox.state import Obj
from sandbox.stripe_api import public_base
from sandbox.stripe_errors import StripeError

_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · SANDBOX</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1a1f36}
 .banner{background:#b3261e;color:#fff;padding:10px 16px;font-weight:600;text-align:center}
 main{max-width:760px;margin:24px auto;background:#fff;padding:24px 32px;border-radius:8px;
      box-shadow:0 1px 3px rgba(0,0,0,.12)}
 table{width:100%;border-collapse:collapse} td,th{padding:6px 4px;border-bottom:1px solid #e3e8ee;
      text-align:left} .num{text-align:right} .status{font-weight:700;text-transform:uppercase}
 .paid{color:#0a7d32} .error{color:#b3261e;font-weight:600} button{background:#635bff;color:#fff;
      border:0;border-radius:6px;padding:10px 18px;font-size:16px;cursor:pointer}
 input{padding:8px;font-size:15px;width:260px} iframe{width:100%;height:70vh;border:1px solid #e3e8ee}
</style></head><body>
<div class="banner" role="alert">{{ banner }}</div>
<main>{{ content }}</main></body></html>"""

_INVOICE = """
<h1>{{ business }}</h1>
<p>Invoice <strong>{{ inv.number }}</strong> · Status:
 <span class="status {{ 'paid' if inv.status == 'paid' else '' }}">{{ status_label }}</span></p>
<p>Billed to: {{ inv.customer_name or '' }} {{ inv.customer_email or '' }}</p>
{% if due %}<p>Due {{ due }}</p>{% endif %}
{% if inv.description %}<p>{{ inv.description }}</p>{% endif %}
<table><thead><tr><th>Description</th><th class="num">Qty</th><th class="num">Amount</th></tr></thead>
<tbody>{% for li in lines %}<tr><td>{{ li.description or '' }}</td><td class="num">{{ li.quantity }}</td>
<td class="num">{{ money(li.amount) }}</td></tr>{% endfor %}</tbody></table>
<p class="num">Total: <strong>{{ money(inv.total) }}</strong><br>
Paid: {{ money(inv.amount_paid) }}<br>
Amount due: <strong id="amount-remaining">{{ money(inv.amount_remaining) }}</strong></p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if processing %}<p class="status" id="processing">Bank payment of {{ money(processing.amount) }} processing:
 it settles in about four business days (sandbox: {{ settle_in }}).</p>
{% elif inv.status in ('open', 'uncollectible') and bank %}
<form method="post" action="{{ bank_url }}">
 <p><button type="submit" id="pay-by-bank">Pay by bank (ACH)</button>
 <small>Test bank account 000123456789 · routing 110000000</small></p>
</form>
{% endif %}
{% if inv.status in ('open', 'uncollectible') and not processing %}
<form method="post" action="{{ pay_url }}">
 <label>Card number (test) <input name="card_number" value="4242 4242 4242 4242"></label>
 <p><button type="submit">Pay {{ money(inv.amount_remaining) }}</button></p>
 <p><small>Sandbox test cards: 4242 4242 4242 4242 succeeds; 4000 0000 0000 0002 is declined.</small></p>
</form>
{% elif inv.status == 'paid' %}<p class="status paid" id="paid">Paid</p>
{% elif inv.status == 'void' %}<p class="status">This invoice has been voided.</p>{% endif %}
<p><a href="{{ pdf_url }}">Download invoice PDF</a></p>"""

_MAILBOX = """
<h1>Sandbox mailbox</h1><p>Emails accepted by the Resend emulator. Nothing was sent to anyone.</p>
<table><thead><tr><th>To</th><th>Subject</th><th>Status</th><th>Scheduled for</th><th>Created</th></tr></thead>
<tbody>{% for e in emails %}<tr><td>{{ e.to | join(', ') }}</td>
<td><a href="{{ base }}/mailbox/{{ e.id }}">{{ e.subject }}</a></td><td>{{ e.last_event }}</td>
<td>{{ e.scheduled_at or '' }}</td><td>{{ e.created_at[:19] }}</td></tr>
{% else %}<tr><td colspan="5">No emails yet.</td></tr>{% endfor %}</tbody></table>"""

_EMAIL = """
<p><a href="{{ base }}/mailbox">&larr; Mailbox</a></p>
<h1>{{ e.subject }}</h1>
<p>From: {{ e['from'] }}<br>To: {{ e.to | join(', ') }}<br>Status: {{ e.last_event }}
{% if e.scheduled_at %}<br>Scheduled for: {{ e.scheduled_at }}{% endif %}</p>
{% if visible %}
 {% if e.html %}<iframe title="Email body" srcdoc="{{ body_html }}"></iframe>
 {% else %}<pre>{{ e.text }}</pre>{% endif %}
{% else %}<p>This email has not been delivered yet ({{ e.last_event }}).</p>{% endif %}"""

_HREF_RE = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"']+)\2""", re.I)


def _page(title: str, content: str, status: int = 200) -> HTMLResponse:
    html = _env.from_string(_LAYOUT).render(title=title, banner=BANNER,
                                            content=Markup(content))
    return HTMLResponse(html, status_code=status)


def _render(template: str, **kw: Any) -> str:
    return _env.from_string(template).render(**kw)


def money(amount: int, currency: str = "usd") -> str:
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    text = f"{whole:,}.{cents:02d}"
    return f"{sign}${text}" if currency == "usd" else f"{sign}{text} {currency.upper()}"


def _sb(request: Request) -> Sandbox:
    sb: Sandbox = request.app.state.sandbox
    return sb


def _log(request: Request, status: int) -> None:
    request_log.record(_sb(request).store, service="pages", method=request.method,
                       path=request.url.path, query=request.url.query, idempotency_key=None,
                       status=status)


def _not_found(request: Request, what: str) -> HTMLResponse:
    _log(request, 404)
    return _page("Not found", f"<h1>Not found</h1><p>{escape(what)}</p>", 404)


def _invoice(request: Request) -> tuple[str, Obj] | None:
    found = _sb(request).store.find_any_mode("invoice", request.path_params["invoice_id"])
    if found is None or found[1]["status"] == "draft":
        return None
    return found


def _invoice_page(request: Request, mode: str, inv: Obj, error: str | None = None,
                  status: int = 200) -> HTMLResponse:
    sb = _sb(request)
    rendered = billing.render_invoice(sb, mode, inv)
    lines = [sb.store.coll(mode, "line_item")[lid] for lid in inv["_line_ids"]]
    base = public_base(sb, request)
    due = (dt.datetime.fromtimestamp(inv["due_date"], dt.UTC).strftime("%B %d, %Y")
           if inv.get("due_date") else None)
    label = {"open": "Open", "paid": "Paid", "void": "Void",
             "uncollectible": "Uncollectible"}.get(inv["status"], inv["status"])
    processing = bank.processing_debit(sb, mode, inv)
    if processing is not None:
        label = "Processing"
    content = _render(_INVOICE, inv=rendered, lines=lines, business=sb.settings.business_name,
                      money=lambda a: money(a, inv["currency"]), due=due, error=error,
                      status_label=label, pay_url=f"{base}/i/{inv['id']}/pay",
                      pdf_url=f"{base}/i/{inv['id']}/pdf", bank=bank.offers_bank(inv),
                      bank_url=f"{base}/i/{inv['id']}/pay_by_bank", processing=processing,
                      settle_in=f"{int(sb.settings.bank_settle_delay_s)} s")
    _log(request, status)
    return _page(f"Invoice {inv.get('number')}", content, status)


async def invoice_page(request: Request) -> Response:
    found = _invoice(request)
    if found is None:
        return _not_found(request, "No such invoice, or it is still a draft.")
    return _invoice_page(request, *found)


async def invoice_pay(request: Request) -> Response:
    found = _invoice(request)
    if found is None:
        return _not_found(request, "No such invoice, or it is still a draft.")
    mode, inv = found
    sb = _sb(request)
    form = await request.form()
    card = str(form.get("card_number") or "4242424242424242")
    digits = "".join(ch for ch in card if ch.isdigit())
    if len(digits) < 12:
        return _invoice_page(request, mode, inv, "Your card number is incomplete.", 400)
    refusal = other_amount(str(form.get("amount") or ""), inv)
    if refusal:
        return _invoice_page(request, mode, inv, refusal, 400)
    ctx = StripeCtx(mode=mode, base_url=public_base(sb, request))
    try:
        billing.pay(sb, ctx, inv, card_number=digits)
    except StripeError as exc:
        sb.store.save()
        return _invoice_page(request, mode, inv, exc.message, 402 if exc.status == 402 else 400)
    sb.store.save()
    _log(request, 303)
    return RedirectResponse(f"{public_base(sb, request)}/i/{inv['id']}", status_code=303)


def parse_amount(text: str) -> int | None:
    """'123.45' or '$1,234' -> cents; None when it is not an amount."""
    cleaned = text.strip().replace("$", "").replace(",", "")
    m = re.fullmatch(r"(\d{1,9})(?:\.(\d{1,2}))?", cleaned)
    if not m:
        return None
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))


def other_amount(raw: str, inv: Obj) -> str | None:
    """Stripe's hosted invoice page takes the amount due only (partial payments come from the
    business, not the customer): a different amount posted to it is refused."""
    if not raw.strip() or parse_amount(raw) == inv["amount_remaining"]:
        return None
    return (f"This page takes the amount due only ({money(inv['amount_remaining'], inv['currency'])}); "
            "it cannot pay a different amount.")


async def invoice_pay_by_bank(request: Request) -> Response:
    found = _invoice(request)
    if found is None:
        return _not_found(request, "No such invoice, or it is still a draft.")
    mode, inv = found
    sb = _sb(request)
    form = await request.form()
    refusal = other_amount(str(form.get("amount") or ""), inv)
    if refusal:
        return _invoice_page(request, mode, inv, refusal, 400)
    ctx = StripeCtx(mode=mode, base_url=public_base(sb, request))
    try:
        bank.pay_by_bank(sb, ctx, inv)
    except StripeError as exc:
        sb.store.save()
        return _invoice_page(request, mode, inv, exc.message, 400)
    sb.store.save()
    _log(request, 303)
    return RedirectResponse(f"{public_base(sb, request)}/i/{inv['id']}", status_code=303)


async def invoice_pdf(request: Request) -> Response:
    found = _invoice(request)
    if found is None:
        return _not_found(request, "No such invoice, or it is still a draft.")
    mode, inv = found
    sb = _sb(request)
    lines = [sb.store.coll(mode, "line_item")[lid] for lid in inv["_line_ids"]]
    text = ["SANDBOX INVOICE - no real money moves", "", sb.settings.business_name,
            f"Invoice {inv.get('number')}  Status: {inv['status']}",
            f"Billed to: {inv.get('customer_name') or ''} {inv.get('customer_email') or ''}", ""]
    text += [f"{li.get('description') or ''}  x{li['quantity']}  {money(li['amount'], inv['currency'])}"
             for li in lines]
    text += ["", f"Total: {money(inv['total'], inv['currency'])}",
             f"Amount due: {money(inv['amount_remaining'], inv['currency'])}"]
    _log(request, 200)
    return Response(text_pdf(text), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{inv.get("number")}.pdf"'})


async def receipt(request: Request) -> Response:
    found = _sb(request).store.find_any_mode("charge", request.path_params["charge_id"])
    if found is None:
        return _not_found(request, "No such receipt.")
    ch = found[1]
    _log(request, 200)
    return _page("Receipt", f"<h1>Receipt</h1><p>{escape(ch['description'] or '')}</p>"
                            f"<p>Amount: {money(ch['amount'], ch['currency'])} · "
                            f"Refunded: {money(ch['amount_refunded'], ch['currency'])} · "
                            f"Status: {ch['status']}</p>")


async def mailbox(request: Request) -> Response:
    sb = _sb(request)
    emails = sorted(sb.store.resend_emails.values(), key=lambda e: e["created_at"], reverse=True)
    _log(request, 200)
    return _page("Mailbox", _render(_MAILBOX, emails=emails, base=public_base(sb, request)))


def rewrite_links(html: str, click_base: str) -> str:
    """Route every http(s) link through the click-tracking redirect, as Resend does."""
    def repl(m: re.Match[str]) -> str:
        return f"{m.group(1)}{m.group(2)}{click_base}?url={quote(m.group(3), safe='')}{m.group(2)}"
    return _HREF_RE.sub(repl, html)


def _client(request: Request) -> tuple[str, str]:
    return request.headers.get("user-agent", ""), request.client.host if request.client else ""


async def mailbox_email(request: Request) -> Response:
    sb = _sb(request)
    email = sb.store.resend_emails.get(request.path_params["email_id"])
    if email is None:
        return _not_found(request, "No such email.")
    base = public_base(sb, request)
    visible = email["last_event"] in ("delivered", "opened", "clicked")
    body_html = ""
    if visible:
        mail.opened(sb, email, *_client(request))
        sb.store.save()
        if email.get("html"):
            body_html = '<base target="_top">' + rewrite_links(
                email["html"], f"{base}/mailbox/{email['id']}/click")
    _log(request, 200)
    return _page(email["subject"], _render(_EMAIL, e=email, base=base, visible=visible,
                                           body_html=body_html))


async def mailbox_click(request: Request) -> Response:
    sb = _sb(request)
    email = sb.store.resend_emails.get(request.path_params["email_id"])
    url = request.query_params.get("url", "")
    if email is None or urlsplit(url).scheme not in ("http", "https"):
        return _not_found(request, "No such email or link.")
    mail.clicked(sb, email, url, *_client(request))
    sb.store.save()
    _log(request, 302)
    return RedirectResponse(url, status_code=302)


async def index(request: Request) -> Response:
    sb = _sb(request)
    base = public_base(sb, request)
    rows = []
    for mode in ("test", "live"):
        for inv in sb.store.coll(mode, "invoice").values():
            if inv["status"] != "draft":
                rows.append(f'<li><a href="{base}/i/{inv["id"]}">{escape(inv["number"])}</a> '
                            f'{escape(inv.get("customer_email") or "")} · {inv["status"]} · '
                            f'{money(inv["amount_remaining"], inv["currency"])} due ({mode})</li>')
    content = (f"<h1>Sandbox</h1><p><a href=\"{base}/mailbox\">Mailbox</a> · "
               f"Stripe API at {base}/v1 · Resend API at {base}/resend</p>"
               f"<h2>Hosted invoices</h2><ul>{''.join(rows) or '<li>None yet.</li>'}</ul>")
    return _page("Sandbox", content)


routes = [
    Route("/", index),
    Route("/i/{invoice_id}", invoice_page),
    Route("/i/{invoice_id}/pay", invoice_pay, methods=["POST"]),
    Route("/i/{invoice_id}/pay_by_bank", invoice_pay_by_bank, methods=["POST"]),
    Route("/i/{invoice_id}/pdf", invoice_pdf),
    Route("/receipts/{charge_id}", receipt),
    Route("/mailbox", mailbox),
    Route("/mailbox/{email_id}", mailbox_email),
    Route("/mailbox/{email_id}/click", mailbox_click),
]
