"""Twilio's own API description (the trimmed twilio-oai file in ../shared/reference), read at
test time, never copied into the project: checks a request the CRM sent to the sandbox and a
Message object the sandbox returned against it."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

NAME = "twilio-messages-openapi.json"


def spec_path() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "reference" / NAME
        if candidate.exists():
            return candidate
    return None


@cache
def spec() -> dict[str, Any]:
    path = spec_path()
    if path is None:
        pytest.skip(f"{NAME} not found in any parent's shared/reference")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable` as JSON Schema, refs resolved from the spec's components."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return _nullable(spec()["components"]["schemas"][name])
        out = {k: _nullable(v) for k, v in schema.items() if k not in ("nullable", "x-twilio", "format")}
        if schema.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(schema, list):
        return [_nullable(v) for v in schema]
    return schema


def message_schema() -> dict[str, Any]:
    schema = _nullable(spec()["components"]["schemas"]["api.v2010.account.message"])
    # The status enum ref is not nullable in the spec; the shape's every field is present.
    schema["required"] = sorted(schema["properties"])
    schema["additionalProperties"] = False
    return schema


def check_message(obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, message_schema())


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for template, item in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not in Twilio's API description")


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        assert value in ("true", "false"), f"boolean parameter sent as {value!r}"
        return value == "true"
    return value


def check_request(method: str, path: str, form: list[tuple[str, str]], query: str = "") -> str:
    """Every parameter sent is one the operation declares, with its type, pattern and enum;
    the required ones are there. Returns the path template matched."""
    template, op = _operation(method, path)
    params = {p["name"]: p for p in op.get("parameters", [])}
    for name, _value in (tuple(kv.split("=", 1)) for kv in query.split("&") if kv):
        assert name in params and params[name]["in"] == "query", f"{method} {template}: unknown query {name}"
    if method.upper() != "POST":
        return template
    body = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    props = body.get("properties", {})
    seen: dict[str, Any] = {}
    for name, value in form:
        assert name in props, f"{method} {template}: parameter {name} is not in Twilio's API"
        schema = _nullable(props[name])
        item = schema.get("items", schema) if schema.get("type") == "array" else schema
        coerced = _coerce(value, item)
        jsonschema.validate(coerced, item)
        seen[name] = coerced
    for name in body.get("required", []):
        assert name in seen, f"{method} {template}: required parameter {name} missing"
    return template
