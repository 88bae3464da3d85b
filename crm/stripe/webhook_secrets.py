"""Stripe webhook signing secrets as stored per mode: which are accepted, for how long.

Each registration adds a secret with its endpoint, when it was added and where it came
from (`stripe` or the offline `sandbox`). The previous secrets are kept only for a rotation
window (Stripe retries deliveries to the old endpoint for up to three days), then dropped.
A secret from the sandbox is never accepted once the mode has a real Stripe key: the
sandbox keeps its secrets in plain text in its state file, so they must not verify real
traffic. The owner sees every stored secret masked, with its age, and can remove one.

Stored as JSON inside the encrypted setting `stripe.<mode>.webhook_secrets`; an older value
(secrets separated by commas) and the environment variables read as entries of unknown
origin, accepted as they are.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

ROTATION_WINDOW = timedelta(days=3)
Origin = str  # 'stripe' | 'sandbox' | '' (unknown: a legacy value or an environment variable)


@dataclass(frozen=True)
class SecretEntry:
    secret: str
    endpoint_id: str = ""
    origin: Origin = ""
    added_at: str = ""  # ISO 8601; '' when unknown
    retire_at: str = ""  # ISO 8601; '' while it is the current secret

    def retired(self, now: datetime) -> bool:
        return bool(self.retire_at) and datetime.fromisoformat(self.retire_at) <= now

    def accepted_for(self, origin: Origin, now: datetime) -> bool:
        return not self.retired(now) and (not self.origin or self.origin == origin)


def parse(raw: str) -> list[SecretEntry]:
    raw = raw.strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            items = json.loads(raw)
        except ValueError:
            return []
        return [SecretEntry(**{k: str(v) for k, v in item.items() if k in SecretEntry.__dataclass_fields__})
                for item in items if isinstance(item, dict) and item.get("secret")]
    return [SecretEntry(s.strip()) for s in raw.split(",") if s.strip()]


def serialize(entries: list[SecretEntry]) -> str:
    return json.dumps([asdict(e) for e in entries], separators=(",", ":"))


def with_new_secret(entries: list[SecretEntry], secret: str, endpoint_id: str, origin: Origin,
                    now: datetime) -> list[SecretEntry]:
    """The new secret first; the others start their rotation window (retired ones are dropped)."""
    retire = (now + ROTATION_WINDOW).isoformat()
    kept = [e if e.retire_at else replace(e, retire_at=retire)
            for e in entries if e.secret != secret and not e.retired(now)]
    return [SecretEntry(secret, endpoint_id, origin, now.isoformat()), *kept]


def without(entries: list[SecretEntry], index: int) -> list[SecretEntry]:
    return [e for i, e in enumerate(entries) if i != index]


def accepted(entries: list[SecretEntry], origin: Origin, now: datetime) -> list[str]:
    """The secrets a delivery for this mode may be signed with right now."""
    return [e.secret for e in entries if e.accepted_for(origin, now)]


def describe_age(entry: SecretEntry, now: datetime) -> str:
    if not entry.added_at:
        return "age unknown"
    days = (now - datetime.fromisoformat(entry.added_at)).days
    return "added today" if days < 1 else f"added {days} day{'s' if days != 1 else ''} ago"


def status(entry: SecretEntry, origin: Origin, now: datetime) -> str:
    """What the owner reads next to a stored secret."""
    if entry.retired(now):
        return "retired (no longer accepted)"
    if entry.origin and entry.origin != origin:
        return ("not accepted: made by the sandbox, and this mode has a real Stripe key" if entry.origin == "sandbox"
                else "not accepted: made by Stripe, and this mode has no key (the sandbox stands in)")
    if entry.retire_at:
        hours = max(0, int((datetime.fromisoformat(entry.retire_at) - now).total_seconds() // 3600))
        return f"previous: accepted for {hours} more hours"
    return "current"
