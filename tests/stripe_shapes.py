"""Validates JSON objects against the pinned stripe-python's typed resource classes.

stripe-python (v15+) declares every field of every API object as a class annotation:
`Optional[...]` for nullable fields, `Literal[...]` (often `Union[Literal[...], str]`, the
library's forward-compatible spelling) for enums, nested `StripeObject` subclasses for
nested objects, `ListObject[X]` for lists, `ExpandableField[X]` for "an id or the object".
`shape_problems(obj)` walks a JSON value recursively with `typing.get_type_hints` and
lists what real Stripe would not send: a field the class does not declare, a value of the
wrong type, null where the field is not nullable, an enum value outside its Literal, a
field missing that the class declares as always present, and an includable list present
although nobody asked for it (`refunds` on a charge, `payments` on an invoice).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import types
import typing
from decimal import Decimal
from functools import cache
from typing import Any, ForwardRef, Literal, Union

import stripe
from stripe import ListObject, StripeObject
from stripe._object_classes import OBJECT_CLASSES
from stripe._stripe_object import UntypedStripeObject

# Fields Stripe sends only when the request expands/includes them (never in webhooks).
INCLUDABLE_ONLY: dict[str, set[str]] = {"charge": {"refunds"}, "invoice": {"payments"}}
# Fields the typed classes declare but Stripe leaves out of some objects (documented as
# "only present when ..."); absent is not a problem for these.
MAY_BE_ABSENT: dict[str, set[str]] = {
    "webhook_endpoint": {"secret"},  # returned only by create
    "invoice": {"payments"},  # includable
    "charge": {"refunds"},  # includable since 2022-11-15
    "event": {"context"},
}


@cache
def _namespace(module_name: str) -> dict[str, Any]:
    """The module's globals plus what it imports only under TYPE_CHECKING."""
    module = importlib.import_module(module_name)
    ns = {"StripeObject": StripeObject, **vars(module)}
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    src = importlib.import_module(stmt.module)
                    for alias in stmt.names:
                        ns[alias.asname or alias.name] = getattr(src, alias.name)
    return ns


@cache
def field_types(cls: type) -> dict[str, Any]:
    """Field name -> annotation of a stripe-python class, resolved."""
    local: dict[str, Any] = {}
    # Nested classes name their siblings and their enclosing classes' members unqualified.
    outer: Any = sys.modules[cls.__module__]
    for part in cls.__qualname__.split("."):
        outer = getattr(outer, part)
        local.update({k: v for k, v in vars(outer).items() if isinstance(v, type)})
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass in (object, StripeObject, dict) or not issubclass(klass, StripeObject):
            continue
        ann = inspect.get_annotations(klass)
        if not ann:
            continue
        resolved = typing.get_type_hints(klass, globalns=_namespace(klass.__module__), localns=local)
        hints.update({k: v for k, v in resolved.items() if k in ann and typing.get_origin(v) is not typing.ClassVar
                      and not k.startswith("_") and v is not typing.ClassVar})
    return hints


def resource_class(object_name: str) -> type | None:
    entry = OBJECT_CLASSES.get(object_name)
    if entry is None:
        return None
    module_name, class_name = entry
    cls: type = getattr(importlib.import_module(module_name), class_name)
    return cls


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _check(value: Any, tp: Any, path: str, out: list[str]) -> None:
    if tp is Any or tp is object:
        return
    if isinstance(tp, ForwardRef):
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) not in args:
                out.append(f"{path}: null, but the field is not nullable")
            return
        arms = [a for a in args if a is not type(None)]
        literals = [a for a in arms if typing.get_origin(a) is Literal]
        if literals and isinstance(value, str):  # Union[Literal[...], str]: the Literal is the enum
            allowed = [v for lit in literals for v in typing.get_args(lit)]
            if value not in allowed:
                out.append(f"{path}: {value!r} is not one of {allowed}")
            return
        attempts: list[list[str]] = []
        for arm in arms:
            found: list[str] = []
            _check(value, arm, path, found)
            if not found:
                return
            attempts.append(found)
        out.extend(min(attempts, key=len))
        return
    if value is None:
        out.append(f"{path}: null, but the field is not nullable")
        return
    if origin is Literal:
        if value not in args:
            out.append(f"{path}: {value!r} is not one of {list(args)}")
        return
    if origin is list:
        if not isinstance(value, list):
            out.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, args[0] if args else Any, f"{path}[{i}]", out)
        return
    if origin is dict:
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        if args:
            for k, v in value.items():
                _check(v, args[1], f"{path}.{k}", out)
        return
    if origin is UntypedStripeObject or tp is UntypedStripeObject:  # metadata and the like: a dict
        _check(value, dict[str, args[0] if args else Any], path, out)  # type: ignore[misc]
        return
    if origin is ListObject or tp is ListObject:
        _check_list_object(value, args[0] if args else Any, path, out)
        return
    if tp is bool:
        if not isinstance(value, bool):
            out.append(f"{path}: expected a boolean, got {value!r}")
        return
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            out.append(f"{path}: expected an integer, got {value!r}")
        return
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(f"{path}: expected a number, got {value!r}")
        return
    if tp is str:
        if not isinstance(value, str):
            out.append(f"{path}: expected a string, got {value!r}")
        return
    if tp is Decimal:  # `*_decimal` fields travel as strings
        if not isinstance(value, str):
            out.append(f"{path}: expected a decimal string, got {value!r}")
        return
    if inspect.isclass(tp) and issubclass(tp, StripeObject):
        if not isinstance(value, dict):
            out.append(f"{path}: expected a {tp.__qualname__} object, got {value!r}")
            return
        _check_object(value, tp, path, out)
        return
    out.append(f"{path}: cannot check annotation {tp!r}")


def _check_list_object(value: Any, item_tp: Any, path: str, out: list[str]) -> None:
    if not isinstance(value, dict):
        out.append(f"{path}: expected a list object, got {value!r}")
        return
    extra = set(value) - {"object", "data", "has_more", "url"}
    if extra:
        out.append(f"{path}: fields a Stripe list does not have: {sorted(extra)}")
    if value.get("object") != "list":
        out.append(f"{path}.object: expected 'list', got {value.get('object')!r}")
    for name, tp in (("has_more", bool), ("url", str)):
        if name not in value:
            out.append(f"{path}.{name}: missing")
        else:
            _check(value[name], tp, f"{path}.{name}", out)
    _check(value.get("data"), list[item_tp], f"{path}.data", out)  # type: ignore[valid-type]


def _check_object(value: dict[str, Any], cls: type, path: str, out: list[str]) -> None:
    fields = field_types(cls)
    name = value.get("object") if isinstance(value.get("object"), str) else None
    if name and resource_class(name) not in (None, cls) and getattr(cls, "OBJECT_NAME", None) is None:
        cls = resource_class(name) or cls
        fields = field_types(cls)
    unknown = sorted(set(value) - set(fields))
    for key in unknown:
        out.append(f"{path}.{key}: not a field of stripe.{cls.__qualname__} (stripe-python {stripe.VERSION})")
    obj_name = getattr(cls, "OBJECT_NAME", None)
    for key in INCLUDABLE_ONLY.get(str(obj_name), set()):
        if key in value:
            out.append(f"{path}.{key}: Stripe includes it only when expanded (never in webhooks)")
    absent_ok = MAY_BE_ABSENT.get(str(obj_name), set())
    for key, tp in fields.items():
        if key in value:
            if key == "object" and obj_name and value[key] != obj_name:
                out.append(f"{path}.object: expected {obj_name!r}, got {value[key]!r}")
                continue
            _check(value[key], tp, f"{path}.{key}", out)
        elif not _is_optional(tp) and key not in absent_ok and not (obj_name and key in _deleted_only(cls)):
            out.append(f"{path}.{key}: missing (stripe.{cls.__qualname__} declares it always present)")


def _deleted_only(cls: type) -> set[str]:
    return {"deleted"}


def shape_problems(obj: Any, where: str = "") -> list[str]:
    """Everything about one API object (by its `object` name) real Stripe would not send."""
    if not isinstance(obj, dict):
        return [f"{where or 'value'}: not a JSON object"]
    name = obj.get("object")
    if name == "list":
        out: list[str] = []
        _check_list_object(obj, Any, where or "list", out)
        for i, item in enumerate(obj.get("data") or []):
            out.extend(shape_problems(item, f"{where or 'list'}.data[{i}]"))
        return out
    cls = resource_class(str(name))
    if cls is None:
        return [f"{where or name}: unknown object type {name!r}"]
    out = []
    _check_object(obj, cls, where or str(name), out)
    if name == "event":  # data.object is typed as a dict: check it as its own resource
        data = obj.get("data") or {}
        inner = data.get("object")
        if isinstance(inner, dict):
            out.extend(shape_problems(inner, f"{where or 'event'}({obj.get('type')}).data.object"))
        prev = data.get("previous_attributes")
        if isinstance(prev, dict) and isinstance(inner, dict):
            inner_cls = resource_class(str(inner.get("object")))
            known = set(field_types(inner_cls)) if inner_cls else set()
            out.extend(f"{where or 'event'}.data.previous_attributes.{k}: not a field of {inner.get('object')}"
                       for k in sorted(set(prev) - known))
    return out
