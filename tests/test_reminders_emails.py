"""Pure parts of reminders: escalating tones, rendering (escaped), Resend params, backoff,
and Svix signature checks with the clock passed in."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest

from crm.reminders.dispatch import backoff, reminder_key
from crm.reminders.emails import ToneError, parse_tones, render_reminder, resend_params, tone_for
from sandbox.signing import svix_headers
from tests.test_reminders_support import WEBHOOK_SECRET
from webhook.resend_route import SignatureRejected, verify_svix


def test_default_schedule_escalates_gentle_firm_final() -> None:
    offsets = [7, 14, 30]
    assert [tone_for(o, offsets) for o in offsets] == ["gentle", "firm", "final"]


def test_before_due_reminders_are_upcoming_and_two_after_due_stay_short_of_final() -> None:
    offsets = [-3, 0, 5, 20]
    assert [tone_for(o, offsets) for o in offsets] == ["upcoming", "upcoming", "gentle", "firm"]


def test_owner_configured_tones_apply_in_order_and_the_last_repeats() -> None:
    tones = parse_tones("firm, final")
    assert [tone_for(o, [1, 2, 3], tones) for o in (1, 2, 3)] == ["firm", "final", "final"]
    with pytest.raises(ToneError):
        parse_tones("gentle,angry")


def test_render_escapes_customer_names_in_html_and_counts_days_overdue() -> None:
    email = render_reminder(tone="firm", business_name="Acme", customer_name="<script>x</script>",
                            number="INV-7", amount_cents=12_345, currency="usd", due=date(2030, 1, 1),
                            send_day=date(2030, 1, 15), pay_url="https://pay.example/x")
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert "<script>x</script>" in email.text
    assert "14 days overdue" in email.text and "$123.45" in email.subject
    assert email.subject == "Overdue: invoice INV-7 from Acme ($123.45)"


def test_resend_params_schedule_in_utc_and_subject_stays_one_line() -> None:
    email = render_reminder(tone="gentle", business_name="Acme\nEvil: header", customer_name="Pat", number="1",
                            amount_cents=100, currency="usd", due=date(2030, 1, 1), send_day=date(2030, 1, 8),
                            pay_url="https://pay.example/x")
    params = resend_params(email, from_address="a@b.co", to_address="c@d.co", reply_to="",
                           scheduled_at=datetime(2030, 1, 8, 15, 0, tzinfo=UTC), tags=[])
    assert params["scheduled_at"] == "2030-01-08T15:00:00Z"
    assert "\n" not in params["subject"] and "reply_to" not in params


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert backoff(50) == timedelta(hours=1)
    assert reminder_key("abc", 12) == "crm-abc-reminder-12"


def test_svix_verification_tolerance_is_five_minutes_either_way() -> None:
    """svix reads the wall clock: payloads are signed relative to now, not with `now` passed in."""
    body = b'{"type":"email.sent"}'

    def headers_at(offset_s: int) -> dict[str, str]:
        return svix_headers(WEBHOOK_SECRET, "msg_1", int(time.time()) + offset_s, body)

    verify_svix(body, headers_at(-290), [WEBHOOK_SECRET])
    verify_svix(body, headers_at(290), ["whsec_b2xk", WEBHOOK_SECRET])  # rotation: any secret
    with pytest.raises(SignatureRejected, match="old"):
        verify_svix(body, headers_at(-310), [WEBHOOK_SECRET])
    with pytest.raises(SignatureRejected, match="in the future"):
        verify_svix(body, headers_at(310), [WEBHOOK_SECRET])
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_svix(body + b" ", headers_at(0), [WEBHOOK_SECRET])
