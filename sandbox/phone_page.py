"""``/phone``: the customers' phones. Each number's texts as they arrived (delivered ones),
newest first, with tappable links; Reply STOP / START per number (Twilio's opt-out keywords:
after STOP a send to that number is refused with error 21610).

``/phone?number=+1...`` shows one number. The page reloads itself every few seconds, so a text
appears without a tap; so does a click on a link, which is an ordinary link.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox import BANNER
from sandbox.context import Sandbox

_URL = re.compile(r"https?://[^\s<>\"]+")
_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_PAGE = _env.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Phone · SANDBOX</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="2">
<style>
 body{font-family:system-ui,sans-serif;margin:0;background:#eef0f3;color:#1a1f36}
 .banner{background:#b3261e;color:#fff;padding:8px 12px;font-weight:600;text-align:center;font-size:14px}
 main{max-width:480px;margin:0 auto;padding:12px}
 section{background:#fff;border-radius:12px;padding:12px;margin-bottom:14px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
 h2{font-size:17px;margin:0 0 8px} .meta{color:#687385;font-size:12px;margin-top:4px}
 .bubble{background:#e5e5ea;border-radius:16px;padding:10px 14px;margin:8px 0;font-size:16px;line-height:1.35;
         overflow-wrap:anywhere} .bubble a{color:#0b57d0;font-weight:600}
 .off{color:#b3261e;font-weight:600} form{display:inline} button{border:0;border-radius:8px;padding:8px 12px;
         font-size:14px;background:#1a1f36;color:#fff;margin-right:6px}
 .empty{color:#687385}
</style></head><body>
<div class="banner" role="alert">{{ banner }}</div>
<main><h1 style="font-size:20px">Phones</h1>
{% if not phones %}<p class="empty">No texts yet. A text sent through the sandbox's Twilio shows up here.</p>{% endif %}
{% for p in phones %}<section data-number="{{ p.number }}">
<h2>{{ p.number }}{% if p.opted_out %} <span class="off">· replied STOP</span>{% endif %}</h2>
{% for m in p.texts %}<div class="bubble" data-sid="{{ m.sid }}">{{ link(m.body) }}
<div class="meta">{{ m.date_sent or m.date_created }} · {{ m.status }}</div></div>{% endfor %}
{% if not p.texts %}<p class="empty">Nothing delivered yet.</p>{% endif %}
<form method="post" action="/phone/reply"><input type="hidden" name="number" value="{{ p.number }}">
{% set kw = 'START' if p.opted_out else 'STOP' %}<button name="keyword" value="{{ kw }}">Reply {{ kw }}</button>
</form></section>{% endfor %}
</main></body></html>""")
SHOWN = ("sent", "delivered", "undelivered", "read")


def _link(body: str) -> Markup:
    out, last = [], 0
    for m in _URL.finditer(body):
        out.append(escape(body[last:m.start()]))
        out.append(Markup('<a href="{0}">{0}</a>').format(m.group(0)))
        last = m.end()
    out.append(escape(body[last:]))
    return Markup("").join(out)


def phones(sb: Sandbox, number: str | None = None) -> list[dict[str, Any]]:
    """Every number texted (or told to opt out), its delivered texts newest first."""
    by_number: dict[str, list[dict[str, Any]]] = {}
    for msg in sb.store.twilio_messages.values():
        by_number.setdefault(msg["to"], [])
        if msg["status"] in SHOWN:
            by_number[msg["to"]].append(msg)
    for num, spec in sb.store.twilio_numbers.items():
        if spec.get("opted_out"):
            by_number.setdefault(num, [])
    rows = []
    for num in sorted(by_number):
        if number and num != number:
            continue
        texts = sorted(by_number[num], key=lambda m: m["_history"][0]["at"], reverse=True)
        rows.append({"number": num, "texts": texts,
                     "opted_out": bool(sb.store.twilio_numbers.get(num, {}).get("opted_out"))})
    return rows


async def phone(request: Request) -> Response:
    sb: Sandbox = request.app.state.sandbox
    html = _PAGE.render(banner=BANNER, phones=phones(sb, request.query_params.get("number")), link=_link)
    return HTMLResponse(html)


def reply(sb: Sandbox, number: str, keyword: str) -> None:
    """The customer texts a keyword back: STOP opts the number out, START opts it in again."""
    spec = sb.store.twilio_numbers.setdefault(number, {})
    if keyword.upper() in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"):
        spec["opted_out"] = True
    elif keyword.upper() in ("START", "YES", "UNSTOP"):
        spec["opted_out"] = False
    sb.store.save()


async def phone_reply(request: Request) -> Response:
    sb: Sandbox = request.app.state.sandbox
    form = await request.form()
    number, keyword = str(form.get("number", "")), str(form.get("keyword", ""))
    if number:
        reply(sb, number, keyword)
    return RedirectResponse(f"/phone?number={quote(number)}" if number else "/phone", status_code=303)


routes = [Route("/phone", phone, methods=["GET"]), Route("/phone/reply", phone_reply, methods=["POST"])]
