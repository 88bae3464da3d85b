"""The words of a text-to-pay: business name, amount, invoice number and the pay link, within
two SMS segments (each segment is billed). Pure: no I/O.

GSM-7 texts fit 160 characters in one segment, 153 per segment when split; a text with any
other character (an emoji, some accents) is UCS-2: 70, or 67 per segment.
"""

from __future__ import annotations

import unicodedata

MAX_SEGMENTS = 2
_GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM_BASIC or ch in _GSM_EXT for ch in text)


def segments(text: str) -> int:
    """How many segments Twilio bills `text` as."""
    if is_gsm7(text):
        units = sum(2 if ch in _GSM_EXT else 1 for ch in text)
        return 1 if units <= 160 else -(-units // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def _gsm_safe(text: str) -> str:
    """Characters that would turn the whole text into UCS-2 (halving what fits) made plain:
    typographic quotes and dashes, and accented letters GSM-7 lacks (ë -> e)."""
    table = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "\u00a0": " "})
    out = []
    for ch in text.translate(table):
        if not is_gsm7(ch):
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            ch = base if base and is_gsm7(base) else ch
        out.append(ch)
    return "".join(out)


def pay_link_text(*, business: str, amount: str, number: str, url: str, reminder: bool = False) -> str:
    """'Acme HVAC: invoice 7F3A-0001 for $345.00 is ready. Pay here: <url>' within two segments.

    The link and the amount are never cut; a long business name is shortened first, and if
    the text is still too long the wording is.
    """
    name = _gsm_safe(" ".join(business.split()))
    first = ("{name}: a reminder that invoice {number} for {amount} is unpaid. Pay here: {url}" if reminder
             else "{name}: invoice {number} for {amount} is ready. Pay securely here: {url}")
    for wording in (first,
                    "{name}: invoice {number}, {amount}. Pay: {url}",
                    "{name} {number} {amount} {url}"):
        for cut in (None, 40, 24, 12, 0):
            short = name if cut is None or len(name) <= cut else name[:cut].rstrip() + ("." if cut else "")
            text = wording.format(name=short, number=number, amount=amount, url=url).lstrip(": ")
            if segments(text) <= MAX_SEGMENTS:
                return text
    raise ValueError("the pay link alone does not fit in two text segments")


def settings_test_text(business: str) -> str:
    return _gsm_safe(f"{business}: this is a test text from your CRM. Texts to customers will come from this "
                     "number.")
