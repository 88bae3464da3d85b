"""Setting up texts: what a Twilio Account SID and Messaging Service SID look like, and the
go-live check (the account is active, the Messaging Service exists) asked of Twilio."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crm.config.settings import Settings
from crm.texts.gateway import TextError, TwilioGateway, twilio_target

A2P_NOTE = ("US numbers: carriers only pass business texts from a number registered for A2P 10DLC (brand and "
            "campaign, in Twilio's console under Messaging → Regulatory compliance). Without it Twilio filters "
            "texts to US phones with error 30034, and they show as undelivered on the invoice's timeline.")


def sid_error(value: str, prefix: str, what: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    if not re.fullmatch(prefix + r"[0-9a-fA-F]{32}", text):
        return f"A {what} is {prefix} followed by 32 hexadecimal characters."
    return None


def token_error(value: str) -> str | None:
    text = value.strip()
    if text and not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        return "A Twilio auth token is 32 hexadecimal characters."
    return None


@dataclass(frozen=True)
class Check:
    ok: bool
    message: str


def check_twilio(settings: Settings, gateway: TwilioGateway | None = None) -> list[Check]:
    """The account is active and the Messaging Service exists (two calls to Twilio)."""
    target = twilio_target(settings)
    gw = gateway or TwilioGateway(target)
    where = "the sandbox's Twilio" if target.sandboxed else "Twilio"
    out: list[Check] = []
    try:
        status = gw.account_status()
        out.append(Check(status == "active", f"Account {target.account_sid[:6]}… at {where} is {status}."))
    except TextError as exc:
        out.append(Check(False, str(exc)))
    if not target.messaging_service_sid:
        out.append(Check(False, "No Messaging Service SID: texts are sent from a Messaging Service (scheduled "
                                "reminders need one)."))
        return out
    try:
        name = gw.messaging_service_name()
        out.append(Check(True, f"Messaging Service {target.messaging_service_sid[:6]}… ({name}) exists."))
    except TextError as exc:
        out.append(Check(False, str(exc)))
    if not settings["twilio.status_callback_url"]:
        out.append(Check(False, "No status callback URL: texts go out, but their delivery is never recorded. Set "
                                "it to the sidecar's public https://…/webhooks/twilio."))
    return out
