"""What a Stripe handler receives (`Call`) and the helpers every handler shares: fetch an
object of this mode, expand, render, list with Stripe's pagination, check metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandbox import stripe_billing as billing
from sandbox import stripe_objects as so
from sandbox.context import Sandbox, StripeCtx
from sandbox.state import Obj
from sandbox.stripe_errors import missing, param_invalid
from sandbox.stripe_params import (
    LIST_PARAMS,
    as_list,
    check_allowed,
    created_filter,
    expand,
    kind_of,
    newest_first,
    paginate,
)


@dataclass
class Call:
    sb: Sandbox
    ctx: StripeCtx
    p: Obj
    args: list[str]



# ---------------------------------------------------------------- helpers

def get_obj(call: Call, kind: str, obj_id: str) -> Obj:
    obj = call.sb.store.coll(call.ctx.mode, kind).get(obj_id)
    if obj is None:
        raise missing(kind, obj_id)
    return obj


def expand_paths(call: Call) -> list[str]:
    return [str(x) for x in as_list(call.p.get("expand"), "expand")]


def resolver(call: Call) -> Callable[[str], Obj | None]:
    def resolve(obj_id: str) -> Obj | None:
        kind = kind_of(obj_id)
        if kind is None:
            return None
        obj = call.sb.store.coll(call.ctx.mode, kind).get(obj_id)
        if obj is None:
            return None
        if kind == "invoice":
            return billing.render_invoice(call.sb, call.ctx.mode, obj)
        return so.public(obj)
    return resolve


def render(call: Call, obj: Obj, paths: list[str] | None = None) -> Obj:
    paths = expand_paths(call) if paths is None else paths
    if obj.get("object") == "invoice":
        wants_payments = any(p == "payments" or p.startswith("payments.") for p in paths)
        out = billing.render_invoice(call.sb, call.ctx.mode, obj, wants_payments)
    else:
        out = so.public(obj)
    return expand(out, [p for p in paths if p != "payments"], resolver(call))


def list_response(call: Call, kind: str, url: str, allowed: tuple[str, ...],
          keep: Callable[[Obj], bool] = lambda _o: True) -> Obj:
    check_allowed(call.p, LIST_PARAMS + allowed)
    in_range = created_filter(call.p.get("created"))
    objs = newest_first(o for o in call.sb.store.coll(call.ctx.mode, kind).values()
                        if in_range(o["created"]) and keep(o))
    item_paths = [p[len("data."):] for p in expand_paths(call) if p.startswith("data.")]
    return paginate(objs, call.p, url, lambda o: render(call, o, item_paths))


def metadata_ok(p: Obj) -> None:
    md = p.get("metadata")
    if md not in (None, "") and not isinstance(md, dict):
        raise param_invalid("metadata", "Invalid hash")
