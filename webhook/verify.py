"""Stripe-Signature verification over the raw body, against every configured secret.

The mode whose secret verified is the request's mode. Uses stripe-python's own
WebhookSignature so the HMAC is Stripe's, not ours. Around it: the header is checked
first (ASCII, one `t=` of at most 12 digits, hex `v1=` signatures), so no header,
whatever its bytes, makes the library raise anything but a refusal; and a timestamp
more than the tolerance in the future is refused too (stripe-python checks only age).
"""

from __future__ import annotations

import re
import time

import stripe

from webhook.signing_secrets import SigningSecrets

TOLERANCE_S = 300

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-fA-F]{1,256}")


class SignatureRejected(Exception):
    """The delivery does not verify; `reason` is short and safe to return and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _timestamp_of(header: str) -> int:
    """The header's timestamp, refusing anything stripe-python could choke on."""
    if not header.isascii() or len(header) > 4096:
        raise SignatureRejected("malformed Stripe-Signature header")
    stamps: list[str] = []
    signatures = 0
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureRejected("malformed Stripe-Signature header")
        if name == "t":
            stamps.append(value)
        elif name == "v1":
            if not _HEX.fullmatch(value):
                raise SignatureRejected("malformed Stripe-Signature header")
            signatures += 1
    if len(stamps) != 1 or not _TIMESTAMP.fullmatch(stamps[0]) or not signatures:
        raise SignatureRejected("malformed Stripe-Signature header")
    return int(stamps[0])


def verified_mode(body: bytes, header: str | None, secrets: SigningSecrets, tolerance_s: int = TOLERANCE_S) -> str:
    """'test' or 'live': the mode of the first secret whose signature matches."""
    if not header:
        raise SignatureRejected("missing Stripe-Signature header")
    stamp = _timestamp_of(header)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureRejected("body is not UTF-8") from exc
    stale = False
    for mode, secret in secrets.by_mode():
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance_s)
        except stripe.SignatureVerificationError as exc:
            message = str(exc)
            if "Unable to extract" in message or "No signatures found with expected scheme" in message:
                raise SignatureRejected("malformed Stripe-Signature header") from exc
            # Stripe checks the tolerance only after a signature matched.
            stale = stale or "tolerance" in message
            continue
        except Exception as exc:
            raise SignatureRejected("malformed Stripe-Signature header") from exc
        # The signature matched: refuse it if it claims to come from the future.
        if stamp > time.time() + tolerance_s:
            raise SignatureRejected(f"timestamp more than {tolerance_s} s in the future")
        return mode
    if stale:
        raise SignatureRejected(f"timestamp older than {tolerance_s} s")
    raise SignatureRejected("signature does not match any configured secret")
