"""Identifier and secret generation in the vendors' formats."""

from __future__ import annotations

import base64
import secrets
import string
import uuid

_ALPHABET = string.ascii_letters + string.digits


def stripe_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id such as ``cus_...`` or ``in_...``."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def request_id() -> str:
    return stripe_id("req", 14)


def stripe_webhook_secret() -> str:
    return "whsec_" + "".join(secrets.choice(_ALPHABET) for _ in range(32))


def svix_secret() -> str:
    """Resend/Svix signing secrets are ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def resend_id() -> str:
    return str(uuid.uuid4())


def svix_msg_id() -> str:
    return "msg_" + "".join(secrets.choice(_ALPHABET) for _ in range(27))


def invoice_prefix() -> str:
    return secrets.token_hex(4).upper()
