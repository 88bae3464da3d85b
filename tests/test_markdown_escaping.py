"""Customer text is shown as text, never as Markdown (issue 21, item 5): ui/plain.py's escaping,
checked with a CommonMark renderer, and the Customers, Jobs, Invoices and Collect pages (AppTest,
real database) with a customer named like a phishing link and a tracking pixel.

The page test fails on the code before the fix: with `plain` taken out of the open customer's
heading (pages/customers.py) it was run by hand and failed, the heading rendering a live link
and an image to evil.example; before the fix every page below showed them."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from markdown_it import MarkdownIt

from ui.plain import plain

EVIL = "[Pay here](https://evil.example) ![x](https://evil.example/pixel)"
_MD = MarkdownIt("commonmark").enable(["strikethrough", "table"])


def _rendered(body: str) -> str:
    return _MD.render(body)


def _text_of(rendered: str) -> str:
    """What a reader sees: the rendered HTML's text."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


@pytest.mark.parametrize("text", [
    EVIL,
    "*bold* _em_ **strong** ~~gone~~ `code`",
    "# Heading",
    "1. listed",
    "- bullet",
    "> quoted",
    "<b>bold</b> <img src=x onerror=alert(1)> <script>x</script>",
    "&lt;b&gt; &#x41;",
    "Price $x$ and $$y$$",
    r"back\slash \[not escaped\] \\",
    ":red[coloured] :material/home:",
    "| a | b |",
    "O'Brien & Sons, jane@example.com, 50% off!",
])
def test_markdown_plain_renders_to_the_same_text_with_no_markup(text: str) -> None:
    rendered = _rendered(plain(text))
    assert rendered.startswith("<p>") and rendered.count("<p>") == 1, rendered  # no heading, list, quote, table
    for tag in ("<a ", "<img", "<em>", "<strong>", "<s>", "<code>", "<b>", "<script"):
        assert tag not in rendered, rendered
    assert _text_of(rendered) == text


def test_markdown_plain_takes_away_maths_directives_and_autolinks() -> None:
    # Not CommonMark, so checked on the escaped text: Streamlit's maths ($…$), its directives
    # (:red[…]) and GFM's bare-URL and email autolinks each need an unescaped $, [, "www.",
    # "https:" or a dotted domain after "@".
    escaped = plain("$x$ :red[x] www.evil.example https://evil.example jane@evil.example")
    assert re.search(r"(?<!\\)[$\[]", escaped) is None
    for bare in ("www.", "https:", "evil.example"):
        assert bare not in escaped
    assert plain(None) == "" and plain("Rita Ramos") == "Rita Ramos"  # plain names read as they are


def test_markdown_plain_joins_lines_so_none_starts_a_block() -> None:
    escaped = plain("12 Oak St\n# not a heading\r\n    not code\u2028- not a list")
    assert "\n" not in escaped and "\r" not in escaped
    assert _text_of(_rendered(escaped)) == "12 Oak St # not a heading     not code - not a list"


def _markdown_bodies(at: Any) -> list[str]:
    """Every body and label on the page that Streamlit renders as Markdown."""
    bodies = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning",
                                   "error", "success") for e in getattr(at, kind)]
    bodies += [e.label for e in at.expander] + [b.label for b in at.button] + [e.label for e in at.tabs]
    return [str(b) for b in bodies]


def _assert_shown_as_text(at: Any, page: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    bodies = _markdown_bodies(at)
    shown = [b for b in bodies if "evil" in b]
    assert shown, f"{page}: the customer's name is not on the page: {bodies}"
    for body in shown:
        rendered = _rendered(body)
        assert "<a " not in rendered and "<img" not in rendered, f"{page}: live link or image in {body!r}"
        assert "](https://evil" not in body.replace("\\]\\(", ""), body
    assert any(EVIL in _text_of(_rendered(b)) for b in shown), f"{page}: the name does not read as typed"


def test_markdown_customer_text_is_shown_as_text_on_every_page(db: psycopg.Connection[Any],
                                                               make_invoice: Callable[..., int],
                                                               app_as: Callable[..., Any]) -> None:
    invoice_id = make_invoice(name=EVIL, email="pay@example.com")
    ids = db.execute("UPDATE crm.jobs SET title = %s, site_address = %s RETURNING id, customer_id",
                     (EVIL, EVIL)).fetchone()
    assert ids is not None

    at = app_as("staff", "pages/customers.py")
    at.session_state["open_customer"] = ids["customer_id"]
    at.run()
    _assert_shown_as_text(at, "customers")

    at = app_as("staff", "pages/jobs.py")
    at.session_state["open_job"] = ids["id"]
    at.run()
    _assert_shown_as_text(at, "jobs")

    at = app_as("staff", "pages/invoices.py")
    at.session_state["open_invoice"] = invoice_id
    at.session_state["inv_customer"] = ids["customer_id"]  # the folded filters' label names the customer
    at.run()
    _assert_shown_as_text(at, "invoices")
    assert any("evil" in e.label for e in at.expander), [e.label for e in at.expander]
    at.button(key=f"send_{invoice_id}").click().run()  # the confirmation names the customer
    assert any("evil" in w.value for w in at.warning), [w.value for w in at.warning]
    _assert_shown_as_text(at, "invoices, confirm send")

    at = app_as("staff", "pages/collect.py")
    at.session_state["collect_invoice"] = invoice_id
    at.run()
    _assert_shown_as_text(at, "collect")
    assert [_text_of(_rendered(t.value)) for t in at.title] == [EVIL]
