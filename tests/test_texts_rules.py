"""Pure rules of texting: phone numbers in E.164 (phonenumbers, the business's country as the
default), the text-to-pay body within two segments, error codes in words."""

from __future__ import annotations

import pytest

from crm.texts.body import MAX_SEGMENTS, pay_link_text, segments
from crm.texts.errors import sentence
from crm.texts.phone import PhoneError, display, phone_error, to_e164

URL = "https://invoice.stripe.com/i/acct_1NbC2xLkdIwHu7ix/test_YWNjdF8xTmJDMnhMa2RJd0h1N2l4LF9QdTVOd3ZtcmJ0TkVZMzFl0200"


@pytest.mark.parametrize(("typed", "country", "e164"), [
    ("(512) 555-0123", "US", "+15125550123"), ("512.555.0123", "US", "+15125550123"),
    ("+1 512 555 0123", "GB", "+15125550123"), ("020 7946 0000", "GB", "+442079460000"),
])
def test_sms_phone_to_e164_in_the_business_country(typed: str, country: str, e164: str) -> None:
    assert to_e164(typed, country) == e164


@pytest.mark.parametrize("typed", ["", "call me", "555-0123", "+1 512 555", "+44 7700 900123", "12345678901234567"])
def test_sms_phone_refuses_what_is_not_a_number(typed: str) -> None:
    with pytest.raises(PhoneError):
        to_e164(typed, "US")


def test_sms_phone_error_and_display() -> None:
    assert phone_error("") is None and phone_error("(512) 555-0123") is None
    assert "not a valid phone number in US" in str(phone_error("555 0123"))
    assert display("+15125550123") == "(512) 555-0123" and display("+442079460000") == "+44 20 7946 0000"


@pytest.mark.parametrize("business", ["Acme", "Acme HVAC & Plumbing", "The Very Long Name Heating, Ventilation, "
                                      "Air Conditioning and Plumbing Services of Greater Travis County LLC",
                                      "Zoë’s Plumbing — “best” in town", "Chloë’s Plumbing"])
def test_sms_pay_link_body_has_the_facts_within_two_segments(business: str) -> None:
    text = pay_link_text(business=business, amount="$12,345.00", number="7F3A-0001", url=URL)
    assert segments(text) <= MAX_SEGMENTS
    assert "$12,345.00" in text and "7F3A-0001" in text and text.endswith(URL)
    assert text.startswith(business.split()[0][:2])


def test_sms_segments_count_like_twilio() -> None:
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2 and segments("a" * 306) == 2
    assert segments("a" * 307) == 3 and segments("€" * 80) == 1 and segments("€" * 81) == 2
    assert segments("😀" * 35) == 1 and segments("😀" * 36) == 2


def test_sms_error_codes_in_words() -> None:
    assert "STOP" in str(sentence(21610)) and "A2P 10DLC" in str(sentence(30034))
    assert sentence(None) is None and sentence(99999) == "Twilio error 99999."
