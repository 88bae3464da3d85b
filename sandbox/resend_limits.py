"""Resend's refusals that depend on the team rather than the request: the rate limit and
the sending domain.

Rate limit: Resend allows a team a few requests a second (2 by default; the docs disagree
between 2 and 5, so it is configurable) and answers 429 `rate_limit_exceeded` above it, with
`retry-after` in whole seconds and the `ratelimit-*` headers (sandbox/rate_limit.py counts).

Sending domain: an email's `from` must be on a domain the team added and Resend verified;
otherwise 403 `validation_error` ("The example.com domain is not verified...").
"""

from __future__ import annotations

from email.utils import parseaddr

from sandbox.resend_mail import ResendError
from sandbox.state import Obj


def rate_limited(per_s: float) -> ResendError:
    return ResendError(429, "rate_limit_exceeded",
                       f"Too many requests. You can only make {max(1, int(per_s))} requests per second. "
                       "See rate limit response headers for more information. Or contact support to "
                       "increase rate limit.")


def sender_domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2].lower()


def require_verified_sender(domains: dict[str, Obj], sender: str) -> None:
    """403 unless the `from` address is on a verified domain of the team."""
    name = sender_domain(sender)
    if not any(d["name"] == name and d["status"] == "verified" for d in domains.values()):
        raise ResendError(403, "validation_error",
                          f"The {name} domain is not verified. Please, add and verify your domain on "
                          "https://resend.com/domains")
