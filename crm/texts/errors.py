"""Twilio's error codes in words for staff, and which of them are worth a retry. Pure."""

from __future__ import annotations

SENTENCES: dict[int, str] = {
    21211: "The phone number is not valid; check it on the customer's page.",
    21408: "Texting to this country is not enabled on the Twilio account.",
    21610: "The customer replied STOP: Twilio will not text them until they reply START. Email still works.",
    21612: "Twilio cannot reach this number from your sender.",
    21614: "This number cannot receive texts (a landline?); use email or another number.",
    21617: "The text is longer than Twilio allows.",
    30003: "The phone is off or out of reach; the carrier could not deliver it.",
    30005: "The number does not exist at the carrier (disconnected?).",
    30006: "The number is a landline or cannot receive texts.",
    30007: "The carrier filtered the text as spam.",
    30008: "The carrier did not say why it was not delivered.",
    30034: "Twilio blocked it: US texting needs the business's A2P 10DLC registration (Settings → Texts).",
    35114: "The scheduled time was too soon (Twilio needs 15 minutes' notice).",
    35115: "The scheduled time was too far ahead (at most 35 days).",
    20003: "Twilio refused the Account SID or auth token (Settings → Texts).",
    20429: "Twilio is rate-limiting us; it will be retried.",
}


def sentence(code: int | None, fallback: str | None = None) -> str | None:
    """What went wrong, for the timeline; None when there is no error."""
    if code is None:
        return None
    return SENTENCES.get(code, fallback or f"Twilio error {code}.")


def retryable(status: int | None, code: int | None) -> bool:
    """A refusal about the text or the number stays a refusal; an outage or a rate limit passes."""
    return status is None or status == 429 or status >= 500 or code == 20429
