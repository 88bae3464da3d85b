"""Webhook signatures exactly as Stripe, Svix (Resend) and Twilio compute them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl


def stripe_signature_header(secret: str, payload: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}">``, keyed with the whole whsec_ string."""
    signed = f"{timestamp}.".encode() + payload
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def svix_signature(secret: str, msg_id: str, timestamp: int, payload: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` keyed with the base64-decoded part after ``whsec_``."""
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    signed = f"{msg_id}.{timestamp}.".encode() + payload
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def svix_headers(secret: str, msg_id: str, timestamp: int, payload: bytes) -> dict[str, str]:
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(timestamp),
        "svix-signature": svix_signature(secret, msg_id, timestamp, payload),
    }


def twilio_signature(auth_token: str, url: str, form_body: bytes) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the auth token, of the full URL
    Twilio called followed by each POST parameter's name and value, sorted by name."""
    params = sorted(parse_qsl(form_body.decode(), keep_blank_values=True))
    signed = url + "".join(f"{name}{value}" for name, value in params)
    mac = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()
