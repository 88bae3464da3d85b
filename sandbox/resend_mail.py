"""Resend emails: validation, scheduling, state changes and the Svix-signed events they emit.

Emails are "sent" the moment they are accepted (or when their ``scheduled_at``
comes), then "delivered" right after; opens and clicks come from the mailbox page.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from sandbox import ids
from sandbox.context import Sandbox
from sandbox.state import Obj
from sandbox.webhook_delivery import Target

log = logging.getLogger("sandbox.resend")

MAX_RECIPIENTS = 50
MAX_SCHEDULE_AHEAD_S = 30 * 86400
_TAG_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_ADDR_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_NAMED_RE = re.compile(r"^[^<>]*<([^<>]+)>$")
_RELATIVE_RE = re.compile(r"^in\s+(\d+)\s*(min|mins|minute|minutes|hour|hours|day|days)$", re.I)
ENV_WEBHOOK_ID = "env"
CONTROL_WEBHOOK_ID = "control"


class ResendError(Exception):
    """Rendered as Resend's ``{"statusCode", "name", "message"}`` error body."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message

    def body(self) -> Obj:
        return {"statusCode": self.status, "name": self.name, "message": self.message}


def validation(message: str) -> ResendError:
    return ResendError(422, "validation_error", message)


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def resend_created_at(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds")


def _valid_address(value: str) -> bool:
    m = _NAMED_RE.match(value.strip())
    return bool(_ADDR_RE.match(m.group(1).strip() if m else value.strip()))


def _addresses(value: Any, field: str, required: bool) -> list[str] | None:
    if value in (None, "", []):
        if required:
            raise ResendError(422, "missing_required_field", f"Missing `{field}` field.")
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise validation(f"Invalid `{field}` field.")
    for item in items:
        if not _valid_address(item):
            raise validation(f"Invalid `{field}` field. The email address needs to follow the "
                             "`email@example.com` or `Name <email@example.com>` format.")
    if len(items) > MAX_RECIPIENTS:
        raise validation(f"Too many recipients in `{field}`: the maximum is {MAX_RECIPIENTS}.")
    return list(items)


def parse_scheduled_at(value: Any, now: float) -> float:
    if not isinstance(value, str) or not value.strip():
        raise validation("Invalid `scheduled_at` field. Use ISO 8601, e.g. "
                         "2024-08-05T11:52:01.858Z, or natural language like `in 1 min`.")
    rel = _RELATIVE_RE.match(value.strip())
    if rel:
        unit = rel.group(2).lower()
        mult = 60 if unit.startswith("min") else 3600 if unit.startswith("hour") else 86400
        return now + int(rel.group(1)) * mult
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise validation("Invalid `scheduled_at` field. Use ISO 8601, e.g. "
                         "2024-08-05T11:52:01.858Z.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    ts = when.timestamp()
    if ts - now > MAX_SCHEDULE_AHEAD_S:
        raise validation("Invalid `scheduled_at` field: emails can be scheduled at most 30 "
                         "days in advance.")
    return ts


def validate(p: Any, now: float, allow_schedule: bool = True) -> Obj:
    """Check one email payload as Resend does and return it normalised."""
    if not isinstance(p, dict):
        raise validation("Invalid email payload: expected a JSON object.")
    sender = p.get("from")
    if not sender:
        raise ResendError(422, "missing_required_field", "Missing `from` field.")
    if not isinstance(sender, str) or not _valid_address(sender):
        raise validation("Invalid `from` field. The email address needs to follow the "
                         "`email@example.com` or `Name <email@example.com>` format.")
    to = _addresses(p.get("to"), "to", True)
    if not p.get("subject"):
        raise ResendError(422, "missing_required_field", "Missing `subject` field.")
    if not (p.get("html") or p.get("text") or p.get("react") or p.get("template")):
        raise ResendError(422, "missing_required_field", "Missing `html` or `text` field.")
    tags = p.get("tags") or []
    if not isinstance(tags, list):
        raise validation("Invalid `tags` field: expected an array of {name, value}.")
    for tag in tags:
        if not isinstance(tag, dict) or not isinstance(tag.get("name"), str):
            raise validation("Invalid `tags` field: each tag needs a `name` and a `value`.")
        for part in ("name", "value"):
            text = str(tag.get(part, ""))
            if not _TAG_RE.match(text) or len(text) > 256:
                raise validation(f"Invalid tag {part} `{text}`: tags should only contain ASCII "
                                 "letters (a-z, A-Z), numbers (0-9), underscores (_), or dashes "
                                 "(-), and be at most 256 characters.")
    headers = p.get("headers") or {}
    if not isinstance(headers, dict):
        raise validation("Invalid `headers` field: expected an object.")
    scheduled = None
    if p.get("scheduled_at") is not None:
        if not allow_schedule:
            raise validation("The `scheduled_at` field is not supported in batch emails.")
        scheduled = parse_scheduled_at(p["scheduled_at"], now)
    return {
        "from": sender, "to": to, "subject": p["subject"], "html": p.get("html"),
        "text": p.get("text"), "cc": _addresses(p.get("cc"), "cc", False),
        "bcc": _addresses(p.get("bcc"), "bcc", False),
        "reply_to": _addresses(p.get("reply_to"), "reply_to", False),
        "headers": headers, "tags": tags, "_scheduled_ts": scheduled,
    }


def public(email: Obj) -> Obj:
    return {k: v for k, v in email.items() if not k.startswith("_")}


# ---------------------------------------------------------------- state changes

def create(sb: Sandbox, clean: Obj) -> Obj:
    now = sb.store.now_f()
    scheduled = clean.pop("_scheduled_ts")
    email: Obj = {
        "object": "email", "id": ids.resend_id(), "created_at": resend_created_at(now),
        **clean,
        "last_event": "scheduled" if scheduled is not None else "queued",
        "scheduled_at": iso(scheduled) if scheduled is not None else None,
        "message_id": f"<{ids.resend_id()}@sandbox.resend.local>",
        "_scheduled_ts": scheduled, "_events": [],
    }
    sb.store.resend_emails[email["id"]] = email
    if scheduled is not None:
        _event(sb, email, "email.scheduled")
    else:
        _send_now(sb, email)
    return email


def _send_now(sb: Sandbox, email: Obj) -> None:
    email["last_event"] = "sent"
    _event(sb, email, "email.sent")
    email["last_event"] = "delivered"
    _event(sb, email, "email.delivered")


def tick(sb: Sandbox, flush_all: bool = False) -> int:
    """Send scheduled emails whose time has come (all of them if ``flush_all``)."""
    now = sb.store.now_f()
    due = [e for e in sb.store.resend_emails.values()
           if e["last_event"] == "scheduled" and (flush_all or (e["_scheduled_ts"] or 0) <= now)]
    for email in sorted(due, key=lambda e: e["_scheduled_ts"] or 0):
        _send_now(sb, email)
    if due:
        sb.store.save()
    return len(due)


def cancel(sb: Sandbox, email: Obj) -> None:
    if email["last_event"] != "scheduled":
        state = "canceled" if email["last_event"] == "canceled" else "sent"
        raise validation(f"Email {email['id']} cannot be canceled: it has already been {state} "
                         f"(last event: {email['last_event']}). Only scheduled emails can be "
                         "canceled.")
    email["last_event"] = "canceled"


def reschedule(sb: Sandbox, email: Obj, scheduled_at: Any) -> None:
    if email["last_event"] != "scheduled":
        raise validation(f"Email {email['id']} cannot be updated: it is no longer scheduled "
                         f"(last event: {email['last_event']}).")
    ts = parse_scheduled_at(scheduled_at, sb.store.now_f())
    email["_scheduled_ts"] = ts
    email["scheduled_at"] = iso(ts)


def opened(sb: Sandbox, email: Obj, user_agent: str, ip: str) -> None:
    if email["last_event"] not in ("delivered", "opened", "clicked"):
        return
    if email["last_event"] == "delivered":
        email["last_event"] = "opened"
    _event(sb, email, "email.opened",
           {"open": {"ipAddress": ip, "timestamp": iso(sb.store.now_f()), "userAgent": user_agent}})


def clicked(sb: Sandbox, email: Obj, link: str, user_agent: str, ip: str) -> None:
    if email["last_event"] not in ("delivered", "opened", "clicked"):
        return
    email["last_event"] = "clicked"
    _event(sb, email, "email.clicked", {"click": {
        "ipAddress": ip, "link": link, "timestamp": iso(sb.store.now_f()), "userAgent": user_agent}})


# ---------------------------------------------------------------- webhooks

def configure_env_webhook(sb: Sandbox) -> None:
    url, secret = sb.settings.resend_webhook_url, sb.settings.resend_webhook_secret
    if not url:
        return
    if not secret:
        secret = ids.svix_secret()
        log.warning("SANDBOX: SANDBOX_RESEND_WEBHOOK_SECRET unset; generated %s", secret)
    set_webhook(sb, ENV_WEBHOOK_ID, url, secret, ["*"])


def set_webhook(sb: Sandbox, wh_id: str, url: str, secret: str, events: list[str]) -> Obj:
    wh = {"object": "webhook", "id": wh_id, "created_at": resend_created_at(sb.store.now_f()),
          "status": "enabled", "endpoint": url, "events": events, "signing_secret": secret}
    sb.store.resend_webhooks[wh_id] = wh
    return wh


def _event(sb: Sandbox, email: Obj, etype: str, extra: Obj | None = None) -> None:
    now = sb.store.now_f()
    data: Obj = {
        "created_at": email["created_at"], "email_id": email["id"], "from": email["from"],
        "to": email["to"], "subject": email["subject"], "message_id": email["message_id"],
    }
    if email.get("tags"):
        data["tags"] = {t["name"]: t.get("value", "") for t in email["tags"]}
    if extra:
        data.update(extra)
    payload = {"type": etype, "created_at": iso(now), "data": data}
    msg_id = ids.svix_msg_id()
    email["_events"].append({"id": msg_id, "type": etype, "created_at": iso(now)})
    for wh in sb.store.resend_webhooks.values():
        if wh["status"] != "enabled":
            continue
        if "*" not in wh["events"] and etype not in wh["events"]:
            continue
        sb.deliverer.submit(Target("resend", wh["id"], wh["endpoint"], wh["signing_secret"]),
                            msg_id, etype, payload)
