"""The Twilio HTTP surface under ``/twilio``: Messages (create, list, fetch, update to cancel
or redact), the Account, and a Messaging Service fetch (``/twilio/messaging/v1/Services``).

Paths are Twilio's own below the prefix, so twilio-python runs unchanged with an HTTP client
that swaps ``https://api.twilio.com`` for ``{sandbox}/twilio`` (and
``https://messaging.twilio.com`` for ``{sandbox}/twilio/messaging``). Basic auth with the
Account SID and auth token; form-encoded bodies; Twilio's JSON error bodies.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import request_log
from sandbox import twilio_messages as tm
from sandbox.context import Sandbox
from sandbox.state import Obj
from sandbox.twilio_messages import API_VERSION, TwilioError

PREFIX = "/twilio"
_UPDATE_FIELDS = {"Body", "Status"}


def _check_auth(sb: Sandbox, request: Request, account_sid: str) -> None:
    cfg = sb.settings
    header = request.headers.get("authorization", "")
    user = password = ""
    if header.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            pass
    if not (hmac.compare_digest(user, cfg.twilio_account_sid)
            and hmac.compare_digest(password, cfg.twilio_auth_token)):
        raise TwilioError(401, 20003, "Authentication Error - invalid username")
    if account_sid != cfg.twilio_account_sid:
        raise TwilioError(404, 20404, f"The requested resource /{API_VERSION}/Accounts/{account_sid[:40]} "
                                      "was not found")


def _account(sb: Sandbox) -> Obj:
    sid = sb.settings.twilio_account_sid
    base = f"/{API_VERSION}/Accounts/{sid}"
    return {
        "auth_token": sb.settings.twilio_auth_token, "date_created": tm.rfc2822(1_700_000_000),
        "date_updated": tm.rfc2822(1_700_000_000), "friendly_name": "Sandbox account",
        "owner_account_sid": sid, "sid": sid, "status": "active",
        "subresource_uris": {"messages": f"{base}/Messages.json"}, "type": "Full", "uri": f"{base}.json",
    }


def _service(sb: Sandbox, sid: str) -> Obj:
    if sid != sb.settings.twilio_messaging_service_sid:
        raise TwilioError(404, 20404, f"The requested resource /Services/{sid[:40]} was not found")
    return {
        "account_sid": sb.settings.twilio_account_sid, "sid": sid, "friendly_name": "Sandbox Messaging Service",
        "date_created": "2023-11-14T22:13:20Z", "date_updated": "2023-11-14T22:13:20Z",
        "url": f"https://messaging.twilio.com/v1/Services/{sid}",
    }


def _message(sb: Sandbox, sid: str, account_sid: str) -> Obj:
    msg = sb.store.twilio_messages.get(sid)
    if msg is None:
        raise TwilioError(404, 20404, f"The requested resource /{API_VERSION}/Accounts/{account_sid}/Messages/"
                                      f"{sid[:40]}.json was not found")
    return msg


def _list(sb: Sandbox, query: dict[str, str], account_sid: str) -> Obj:
    rows = sorted(sb.store.twilio_messages.values(), key=lambda m: m["_history"][0]["at"], reverse=True)
    if query.get("To"):
        rows = [m for m in rows if m["to"] == query["To"]]
    if query.get("From"):
        rows = [m for m in rows if m["from"] == query["From"]]
    size = max(1, min(1000, int(query.get("PageSize") or 50)))
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json?PageSize={size}&Page=0"
    return {"messages": [tm.public(m) for m in rows[:size]], "end": max(0, min(size, len(rows)) - 1),
            "first_page_uri": uri, "next_page_uri": None, "page": 0, "page_size": size,
            "previous_page_uri": None, "start": 0, "uri": uri}


def _route(sb: Sandbox, method: str, parts: list[str], form: dict[str, str],
           query: dict[str, str], request: Request) -> tuple[int, Obj, bool]:
    """(status, body, whether state changed)."""
    if parts[:3] == ["messaging", "v1", "Services"] and len(parts) == 4 and method == "GET":
        _check_auth(sb, request, sb.settings.twilio_account_sid)
        return 200, _service(sb, parts[3]), False
    if len(parts) < 3 or parts[0] != API_VERSION or parts[1] != "Accounts":
        raise TwilioError(404, 20404, f"The requested resource /{'/'.join(parts)[:80]} was not found")
    account = parts[2].removesuffix(".json")
    _check_auth(sb, request, account)
    if len(parts) == 3 and parts[2].endswith(".json") and method == "GET":
        return 200, _account(sb), False
    if parts[3:] == ["Messages.json"]:
        if method == "POST":
            return 201, tm.public(tm.create(sb, form)), True
        if method == "GET":
            return 200, _list(sb, query, account), False
    if len(parts) == 5 and parts[3] == "Messages" and parts[4].endswith(".json"):
        msg = _message(sb, parts[4].removesuffix(".json"), account)
        if method == "GET":
            return 200, tm.public(msg), False
        if method == "POST":
            unknown = set(form) - _UPDATE_FIELDS
            if unknown:
                raise TwilioError(400, 20001, f"Unknown parameters: {', '.join(sorted(unknown))}")
            if "Status" in form:
                if form["Status"] != "canceled":
                    raise TwilioError(400, 20001, "Status can only be 'canceled'.")
                tm.cancel(sb, msg)
            if "Body" in form:
                tm.redact(sb, msg, form["Body"])
            return 200, tm.public(msg), True
    raise TwilioError(404, 20404, f"The requested resource /{'/'.join(parts)[:80]} was not found")


async def dispatch(request: Request) -> Response:
    sb: Sandbox = request.app.state.sandbox
    method, sub = request.method, request.url.path[len(PREFIX):]
    raw = (await request.body()).decode("utf-8", "replace") if method == "POST" else ""
    pairs = parse_qsl(raw, keep_blank_values=True)
    form = dict(pairs)
    plan = sb.faults.plan("twilio", method, sub)
    await plan.delay()
    status: int
    body: Obj
    try:
        if plan.status and plan.phase == "before":
            raise TwilioError(plan.status, 20500 if plan.status >= 500 else 20429 if plan.status == 429 else 20001,
                              plan.message or f"Sandbox fault {plan.status}")
        status, body, changed = _route(sb, method, [p for p in sub.split("/") if p], form,
                                       dict(request.query_params), request)
        if changed:
            sb.store.save()
        if plan.status and plan.phase == "after":
            raise TwilioError(plan.status, 20500, plan.message or f"Sandbox fault {plan.status}")
    except TwilioError as exc:
        status, body = exc.status, exc.body()
    request_log.record(sb.store, service="twilio", method=method, path=sub, query=request.url.query,
                       idempotency_key=None, status=status, fault=plan.rule_id, form=pairs)
    return Response(json.dumps(body), status_code=status, media_type="application/json",
                    headers={"Twilio-Request-Id": "RQ" + tm.message_sid()[2:]})




routes = [Route(PREFIX + "/{path:path}", dispatch, methods=["GET", "POST", "DELETE"])]
