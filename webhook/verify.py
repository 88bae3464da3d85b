"""Stripe-Signature verification over the raw body, against every configured secret.

The mode whose secret verified is the request's mode. Uses stripe-python's own
WebhookSignature so the HMAC is Stripe's, not ours. Around it: the header is checked
first (ASCII, one `t=` of at most 12 digits, hex `v1=` signatures), so no header,
whatever its bytes, makes the library raise anything but a refusal; and once a signature
matched, the skeleton's one timestamp rule applies (stripe-python checks only age).
"""

from __future__ import annotations

import re

import stripe

from webhook.signing_secrets import SigningSecrets
from webhook.skeleton import SIGNATURE_TOLERANCE_S, SignatureRejected, refuse_out_of_tolerance

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-fA-F]{1,256}")


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


def verified_mode(body: bytes, header: str | None, secrets: SigningSecrets,
                  tolerance_s: int = SIGNATURE_TOLERANCE_S) -> str:
    """'test' or 'live': the mode of the first secret whose signature matches."""
    if not header:
        raise SignatureRejected("missing Stripe-Signature header")
    stamp = _timestamp_of(header)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureRejected("body is not UTF-8") from exc
    for mode, secret in secrets.by_mode():
        try:
            # No tolerance here: the timestamp is checked once a signature matched, both ways.
            stripe.WebhookSignature.verify_header(text, header, secret, None)
        except stripe.SignatureVerificationError as exc:
            message = str(exc)
            if "Unable to extract" in message or "No signatures found with expected scheme" in message:
                raise SignatureRejected("malformed Stripe-Signature header") from exc
            continue
        except Exception as exc:
            raise SignatureRejected("malformed Stripe-Signature header") from exc
        refuse_out_of_tolerance(stamp, tolerance_s)
        return mode
    raise SignatureRejected("signature does not match any configured secret")
