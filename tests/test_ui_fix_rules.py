"""Issue 22's pure rules, without a browser: the timeline's sentences (item 6), the invoice list's
row and title (items 2, 13 and the "draft · draft" title), the line editor's running figures (13),
and the login cookie's steps against the real database (item 1)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from crm.send.lines import parse_lines
from ui.invoice_view import filter_label, invoice_title, list_row, remaining_cents
from ui.timeline_text import timeline

AT = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)


def fact(kind: str, **kw: Any) -> dict[str, Any]:
    base = {"at": AT, "kind": kind, "from_status": None, "to_status": None, "detail": {}, "actor_type": "system",
            "actor": None, "amount_cents": None, "ref": None}
    return base | kw


def test_ui_fix_6_timeline_sentences_hide_ids_and_raw_codes() -> None:
    facts = [
        fact("status", from_status="draft", to_status="sending", actor_type="user", actor="owner@example.com"),
        fact("status", from_status="sending", to_status="open", actor_type="user", actor="owner@example.com"),
        fact("status", from_status="open", to_status="open", actor_type="stripe_event", actor="evt_1"),
        fact("payment", amount_cents=34500, detail={"fee_cents": 1031, "net_cents": 33469}, actor_type="stripe_event",
             ref="pi_123"),
        fact("stripe", to_status="ignored", detail={"type": "invoice.paid", "duplicates": 0}, actor_type="stripe_event",
             ref="evt_2"),
        fact("email", to_status="sent", detail={"kind": "invoice", "to": "aria@example.com"}, ref="msg_1"),
        fact("status", from_status="open", to_status="disputed",
             detail={"dispute": "dp_1", "dispute_status": "needs_response", "amount_cents": 34500,
                     "reason": "product_not_received"}, actor_type="stripe_event", actor="evt_3"),
    ]
    shown = timeline(facts, "usd")
    whats = [e.what for e in shown]
    assert whats == ["Send started", "Sent to the customer, with a pay link",
                     "Payment of $345.00 received (Stripe fee $10.31, net $334.69)",
                     "Invoice email sent to aria@example.com",
                     "The customer disputed $345.00 with their bank (reason: product not received; needs response)"]
    joined = " ".join(f"{e.what} {e.who}" for e in shown)
    for raw in ("evt_", "pi_", "msg_", "→", "ignored", "product_not_received", "open → open"):
        assert raw not in joined
    owner = timeline(facts, "usd", details=True)
    assert "Stripe event invoice.paid: ignored" in [e.what for e in owner]
    assert "evt_2" in [e.ref for e in owner]


def test_ui_fix_13_list_row_and_title_for_a_new_draft() -> None:
    row = {"status": "draft", "amount_due_cents": 0, "currency": "usd", "amount_paid_cents": 0,
           "amount_remaining_cents": 0, "amount_refunded_cents": 0, "days_overdue": None, "refund_state": None,
           "email_signal": None, "attention": None}
    today = date(2026, 12, 2)
    assert list_row(row, today)["amount"] == "no lines"
    assert list_row(row | {"amount_due_cents": 34500}, today)["amount"] == "$345.00"
    assert list_row(row | {"due_date": date(2026, 12, 16)}, today)["due"] == "Dec 16"
    assert list_row(row | {"due_date": date(2027, 1, 5)}, today)["due"] == "Jan 5 2027"
    assert invoice_title({"id": 76, "stripe_invoice_number": None}, "draft") == "Invoice #76 · draft"
    assert invoice_title({"id": 3, "stripe_invoice_number": "ACME-0003"}, "open") == "Invoice #3 · ACME-0003 · open"
    label = filter_label({"inv_status": "overdue", "inv_customer": 4}, {4: "Aria Hall"})
    assert label == "Filters: overdue · Aria Hall"
    assert filter_label({}, {}) == "Filters"


def test_ui_fix_2_a_drafts_remaining_is_its_whole_amount() -> None:
    assert remaining_cents({"status": "draft", "amount_remaining_cents": 34500}) == 34500
    assert remaining_cents({"status": "paid", "amount_remaining_cents": 0}) == 0


def test_ui_fix_13_running_total_while_a_line_is_incomplete() -> None:
    parsed = parse_lines([{"description": "Diagnostic", "quantity": 2, "unit_price": "89.55"},
                          {"description": "Parts", "quantity": 1, "unit_price": ""}], "usd")
    assert not parsed.ok
    assert parsed.row_amounts == (17910, None)
    assert parsed.running_total_cents == 17910


def test_ui_fix_1_cookie_session_resumes_and_ends(db: psycopg.Connection[Any],
                                                  dashboard_users: dict[str, int]) -> None:
    """The steps behind a reload that keeps the login: a one-time code traded once for a token, the
    token resuming the session, and logout, a disabled account or a changed password ending it."""
    from crm import web_sessions
    from crm.users.auth import open_session
    from db import dashboard_sessions
    from db.users import session_facts

    now = datetime.now(UTC)
    user = session_facts(db, dashboard_users["owner"])
    assert user is not None
    session_id, code = web_sessions.open_code(db, open_session(user, now), now)
    assert web_sessions.trade(db, code, now + timedelta(seconds=61)) is None  # a code lasts a minute
    token = web_sessions.trade(db, code, now)
    assert token and web_sessions.trade(db, code, now) is None  # and works once
    resumed = web_sessions.resume(db, token, now)
    assert resumed is not None and resumed.server_id == session_id and resumed.email == user["email"]
    stored = db.execute("SELECT token_hash, code_hash FROM crm.dashboard_sessions WHERE id = %s",
                        (session_id,)).fetchone()
    assert stored is not None and stored["code_hash"] is None and bytes(stored["token_hash"]) != token.encode()
    assert "HttpOnly" in web_sessions.cookie_header(token, secure=False)
    assert "Secure" in web_sessions.cookie_header(token, secure=True)

    dashboard_sessions.end(db, session_id)  # logout
    assert web_sessions.resume(db, token, now) is None

    session_id, code = web_sessions.open_code(db, open_session(user, now), now)
    token = web_sessions.trade(db, code, now)
    db.execute("UPDATE crm.app_users SET active = false WHERE id = %s", (user["id"],))
    assert web_sessions.resume(db, token, now) is None  # disabled: ended, and stays ended
    db.execute("UPDATE crm.app_users SET active = true WHERE id = %s", (user["id"],))
    assert web_sessions.resume(db, token, now) is None
    assert web_sessions.resume(db, "not-a-token", now) is None
