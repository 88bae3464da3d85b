"""Stripe-Signature verification over the raw body, against every configured secret.

The mode whose secret verified is the request's mode. Uses stripe-python's own
WebhookSignature so the HMAC and the 300 s tolerance are Stripe's, not ours.
"""

from __future__ import annotations

import stripe

from webhook.signing_secrets import SigningSecrets

TOLERANCE_S = 300


class SignatureRejected(Exception):
    """The delivery does not verify; `reason` is short and safe to return and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verified_mode(body: bytes, header: str | None, secrets: SigningSecrets, tolerance_s: int = TOLERANCE_S) -> str:
    """'test' or 'live': the mode of the first secret whose signature matches."""
    if not header:
        raise SignatureRejected("missing Stripe-Signature header")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureRejected("body is not UTF-8") from exc
    stale = False
    for mode, secret in secrets.by_mode():
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance_s)
            return mode
        except stripe.SignatureVerificationError as exc:
            message = str(exc)
            if "Unable to extract" in message or "No signatures found with expected scheme" in message:
                raise SignatureRejected("malformed Stripe-Signature header") from exc
            # Stripe checks the tolerance only after a signature matched.
            stale = stale or "tolerance" in message
    if stale:
        raise SignatureRejected(f"timestamp older than {tolerance_s} s")
    raise SignatureRejected("signature does not match any configured secret")
