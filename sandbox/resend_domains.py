"""Resend's domains API under ``/resend/domains``, in the shapes of Resend's OpenAPI description.

``POST /domains`` adds a domain (``not_started``, with the SPF/DKIM/tracking DNS records to add),
``GET /domains`` lists them (with ``open_tracking`` and ``click_tracking``), ``GET /domains/{id}``,
``PATCH /domains/{id}`` (``open_tracking``, ``click_tracking``, ``tls``, ``tracking_subdomain``),
``POST /domains/{id}/verify`` and ``DELETE /domains/{id}``. Verifying answers at once and leaves
the domain ``pending`` while the DNS records are checked, as Resend does (minutes to hours there):
the sandbox has no DNS to look at, so the records count as found after ``resend_verify_delay_s``
of sandbox time, and the domain is ``verified``. Tracking is off by default, as at Resend.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sandbox import ids
from sandbox.context import Sandbox
from sandbox.resend_mail import ResendError, validation
from sandbox.state import Obj

_NAME_RE = re.compile(r"^(?=.{3,253}$)([a-z0-9-]+\.)+[a-z]{2,63}$")
REGIONS = ("us-east-1", "eu-west-1", "sa-east-1", "ap-northeast-1")
_LIST_FIELDS = ("id", "name", "status", "created_at", "region", "open_tracking", "click_tracking",
                "capabilities")


def _records(name: str, status: str, tracking_subdomain: str) -> list[Obj]:
    return [
        {"record": "SPF", "name": "send", "type": "MX", "ttl": "Auto", "status": status,
         "value": "feedback-smtp.us-east-1.amazonses.com", "priority": 10},
        {"record": "SPF", "name": "send", "type": "TXT", "ttl": "Auto", "status": status,
         "value": "v=spf1 include:amazonses.com ~all"},
        {"record": "DKIM", "name": "resend._domainkey", "type": "TXT", "ttl": "Auto", "status": status,
         "value": "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC-sandbox-" + name.replace(".", "-")},
        {"record": "Tracking", "name": tracking_subdomain, "type": "CNAME", "ttl": "Auto", "status": status,
         "value": "links1.resend-dns.com"},
    ]


def _get(sb: Sandbox, domain_id: str) -> Obj:
    domain = sb.store.resend_domains.get(domain_id)
    if domain is None:
        raise ResendError(404, "not_found", "Domain not found")
    return domain


def _bool(body: Obj, key: str) -> bool | None:
    if key not in body:
        return None
    if not isinstance(body[key], bool):
        raise validation(f"Invalid `{key}` field: must be a boolean.")
    return bool(body[key])


def create(sb: Sandbox, body: Any) -> Obj:
    if not isinstance(body, dict) or not body.get("name"):
        raise ResendError(422, "missing_required_field", "Missing `name` field.")
    name = str(body["name"]).strip().lower()
    if not _NAME_RE.match(name):
        raise validation("Invalid `name` field: must be a domain name.")
    if any(d["name"] == name for d in sb.store.resend_domains.values()):
        raise validation(f"The {name} domain has been registered already.")
    region = str(body.get("region") or "us-east-1")
    if region not in REGIONS:
        raise validation(f"Invalid `region` field: must be one of {', '.join(REGIONS)}.")
    domain: Obj = {
        "object": "domain", "id": ids.resend_id(), "name": name, "status": "not_started",
        "created_at": datetime.fromtimestamp(sb.store.now_f(), UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00"),
        "region": region, "open_tracking": bool(_bool(body, "open_tracking")),
        "click_tracking": bool(_bool(body, "click_tracking")),
        "tracking_subdomain": str(body.get("tracking_subdomain") or "links"),
        "tls": str(body.get("tls") or "opportunistic"),
        "capabilities": {"sending": "enabled", "receiving": "disabled"},
    }
    sb.store.resend_domains[domain["id"]] = domain
    return public(domain)


def public(domain: Obj) -> Obj:
    status = domain["status"] if domain["status"] in ("verified", "pending") else "not_started"
    shown = {k: v for k, v in domain.items() if not k.startswith("_")}
    return {**shown, "records": _records(domain["name"], status, domain["tracking_subdomain"])}


def settle(sb: Sandbox) -> None:
    """Pending domains whose DNS check is done become verified."""
    now = sb.store.now_f()
    for domain in sb.store.resend_domains.values():
        if domain["status"] == "pending" and now >= float(domain.get("_verify_at") or 0):
            domain["status"] = "verified"
            domain.pop("_verify_at", None)


def listing(sb: Sandbox) -> Obj:
    rows = sorted(sb.store.resend_domains.values(), key=lambda d: d["created_at"], reverse=True)
    return {"object": "list", "has_more": False, "data": [{k: d[k] for k in _LIST_FIELDS} for d in rows]}


def update(sb: Sandbox, domain_id: str, body: Any) -> Obj:
    domain = _get(sb, domain_id)
    if not isinstance(body, dict):
        raise validation("Invalid JSON body.")
    for key in ("open_tracking", "click_tracking"):
        value = _bool(body, key)
        if value is not None:
            domain[key] = value
    if "tls" in body:
        if body["tls"] not in ("opportunistic", "enforced"):
            raise validation("Invalid `tls` field: must be opportunistic or enforced.")
        domain["tls"] = body["tls"]
    if body.get("tracking_subdomain"):
        domain["tracking_subdomain"] = str(body["tracking_subdomain"])
    return {"object": "domain", "id": domain["id"]}


def verify(sb: Sandbox, domain_id: str) -> Obj:
    domain = _get(sb, domain_id)
    if domain["status"] != "verified":
        domain["status"] = "pending"
        domain["_verify_at"] = sb.store.now_f() + sb.settings.resend_verify_delay_s
    return {"object": "domain", "id": domain["id"]}


def route(sb: Sandbox, method: str, parts: list[str], body: Any) -> tuple[Obj, bool] | None:
    """(response, mutated) for a ``/domains`` path, or None when it is not one."""
    if not parts or parts[0] != "domains":
        return None
    settle(sb)
    if parts == ["domains"]:
        if method == "POST":
            return create(sb, body), True
        if method == "GET":
            return listing(sb), False
    if len(parts) == 2:
        if method == "GET":
            return public(_get(sb, parts[1])), False
        if method == "PATCH":
            return update(sb, parts[1], body), True
        if method == "DELETE":
            domain = _get(sb, parts[1])
            del sb.store.resend_domains[domain["id"]]
            return {"object": "domain", "id": domain["id"], "deleted": True}, True
    if len(parts) == 3 and parts[2] == "verify" and method == "POST":
        return verify(sb, parts[1]), True
    return None
