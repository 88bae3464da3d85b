"""Parameter checking, list pagination and ``expand[]`` for the Stripe emulator.

Stripe sends every value as a string; these helpers coerce and reject values the
way Stripe does (``parameter_unknown``, ``parameter_invalid_integer``...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from sandbox.state import Obj
from sandbox.stripe_errors import StripeError, param_invalid, param_missing

MAX_LIMIT = 100


# Stripe refuses an email whose parts are malformed (`x@.maie.com` -> email_invalid): a
# dot-atom local part (no leading, trailing or double dot) and a domain of at least two
# labels (letters, digits, inner hyphens) ending in a letters-only top-level label.
_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})")


def email_ok(value: Any, param: str = "email") -> None:
    """An empty value clears the field; anything else must be an address Stripe accepts."""
    if value in (None, ""):
        return
    text = str(value)
    local = text.rsplit("@", 1)[0]
    if len(text) > 512 or len(local) > 64 or not _EMAIL.fullmatch(text):
        raise param_invalid(param, f"Invalid email address: {text}", "email_invalid")


def check_allowed(p: Obj, allowed: Iterable[str]) -> None:
    allowed_set = set(allowed) | {"expand"}
    for key in p:
        if key not in allowed_set:
            raise StripeError(f"Received unknown parameter: {key}", code="parameter_unknown",
                              param=key)


def require(p: Obj, *keys: str) -> None:
    for key in keys:
        if p.get(key) in (None, ""):
            raise param_missing(key)


def as_int(value: Any, param: str, minimum: int | None = None) -> int:
    try:
        out = int(str(value))
    except ValueError:
        raise param_invalid(param, f"Invalid integer: {value}",
                            "parameter_invalid_integer") from None
    if minimum is not None and out < minimum:
        kind = "non-negative" if minimum == 0 else "positive"
        raise param_invalid(param, f"Invalid {kind} integer", "parameter_invalid_integer")
    return out


def as_bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1"):
        return True
    if str(value).lower() in ("false", "0"):
        return False
    raise param_invalid(param, f"Invalid boolean: {value}")


def as_list(value: Any, param: str) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    raise param_invalid(param, f"Invalid array: {param}")


def created_filter(value: Any, param: str = "created") -> Callable[[int], bool]:
    """``created=123`` or ``created[gte]=...`` (gt, gte, lt, lte), as Stripe lists accept."""
    if value is None:
        return lambda _ts: True
    if not isinstance(value, dict):
        exact = as_int(value, param)
        return lambda ts: ts == exact
    bounds = {}
    for op, raw in value.items():
        if op not in ("gt", "gte", "lt", "lte"):
            raise StripeError(f"Received unknown parameter: {param}[{op}]",
                              code="parameter_unknown", param=f"{param}[{op}]")
        bounds[op] = as_int(raw, f"{param}[{op}]")

    def check(ts: int) -> bool:
        return (("gt" not in bounds or ts > bounds["gt"])
                and ("gte" not in bounds or ts >= bounds["gte"])
                and ("lt" not in bounds or ts < bounds["lt"])
                and ("lte" not in bounds or ts <= bounds["lte"]))
    return check


def newest_first(objs: Iterable[Obj]) -> list[Obj]:
    return sorted(objs, key=lambda o: (o.get("created", 0), o.get("_seq", 0)), reverse=True)


def paginate(objs: list[Obj], p: Obj, url: str, render: Callable[[Obj], Obj]) -> Obj:
    """Stripe cursor pagination over a newest-first list."""
    limit = as_int(p.get("limit", 10), "limit")
    if not 1 <= limit <= MAX_LIMIT:
        raise param_invalid("limit", "This value must be greater than or equal to 1 and "
                                     f"less than or equal to {MAX_LIMIT}.")
    ids = [o["id"] for o in objs]
    if p.get("starting_after"):
        cursor = p["starting_after"]
        if cursor not in ids:
            raise StripeError(f"No such object: '{cursor}'", code="resource_missing",
                              param="starting_after")
        window = objs[ids.index(cursor) + 1:]
        page, has_more = window[:limit], len(window) > limit
    elif p.get("ending_before"):
        cursor = p["ending_before"]
        if cursor not in ids:
            raise StripeError(f"No such object: '{cursor}'", code="resource_missing",
                              param="ending_before")
        window = objs[:ids.index(cursor)]
        page, has_more = window[-limit:], len(window) > limit
    else:
        page, has_more = objs[:limit], len(objs) > limit
    return {"object": "list", "data": [render(o) for o in page], "has_more": has_more,
            "url": url}


LIST_PARAMS = ("limit", "starting_after", "ending_before", "created")

ID_PREFIXES = {
    "cus_": "customer", "in_": "invoice", "pi_": "payment_intent", "ch_": "charge",
    "txn_": "balance_transaction", "re_": "refund", "inpay_": "invoice_payment",
    "il_": "line_item", "evt_": "event", "we_": "webhook_endpoint",
}


def kind_of(obj_id: str) -> str | None:
    for prefix, kind in ID_PREFIXES.items():
        if obj_id.startswith(prefix):
            return kind
    return None


def expand(obj: Any, paths: list[str], resolve: Callable[[str], Obj | None]) -> Any:
    """Replace id strings at dotted ``paths`` with the objects ``resolve`` returns."""
    for path in paths:
        _expand_one(obj, path.split("."), resolve)
    return obj


def _expand_one(node: Any, parts: list[str], resolve: Callable[[str], Obj | None]) -> None:
    if not parts or not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    if head == "data" and isinstance(node.get("data"), list):
        for item in node["data"]:
            _expand_one(item, rest, resolve)
        return
    value = node.get(head)
    if isinstance(value, str):
        found = resolve(value)
        if found is None:
            return
        node[head] = value = found
    if rest:
        _expand_one(value, rest, resolve)
