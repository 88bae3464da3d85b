"""Decode Stripe's form encoding (``a[b][0][c]=v``, ``expand[]=x``) into nested data."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormDecodeError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"Invalid parameter name: {key}")
        self.key = key


def decode(body: str) -> dict[str, Any]:
    """Parse an urlencoded string; bracketed keys become dicts, numeric ones lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        m = _KEY_RE.match(key)
        if not m:
            raise FormDecodeError(key)
        parts = [m.group(1), *re.findall(r"\[([^\[\]]*)\]", m.group(2))]
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                # "expand[]=a&expand[]=b" appends: number the items as they arrive.
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise FormDecodeError(key)
                node = child
    return _listify(root)


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {k: _listify(v) for k, v in value.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return value
