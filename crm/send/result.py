"""What a Send (or a follow-up action on a sent invoice) reports back to the dashboard."""

from __future__ import annotations

from dataclasses import dataclass


class SendRefused(Exception):
    """The action did not start: the message says why, in words for staff."""


@dataclass(frozen=True)
class SendResult:
    ok: bool
    invoice_status: str
    pay_url: str | None
    failed_step: str | None
    message: str
