"""parse_json decides without I/O: what a webhook body may hold to be stored as jsonb.

The sidecar skips the walk over the parsed value when the bytes rule every problem out
(webhook/request_input.py); these hold both paths to the same answers.
"""

from __future__ import annotations

import json

import pytest

from webhook.request_input import MAX_JSON_DEPTH, Answer, parse_json


def _nested(depth: int) -> bytes:
    return b'{"id":"evt_1","deep":' + b"[" * depth + b"1" + b"]" * depth + b"}"


@pytest.mark.parametrize("body", [
    json.dumps({"id": "evt_1", "name": "Café \u00e9", "n": 1.5}).encode(),  # \u escapes: the walk runs
    json.dumps({"id": "evt_1", "name": "Café"}, ensure_ascii=False).encode(),  # raw UTF-8: no walk
    _nested(MAX_JSON_DEPTH - 2),
    json.dumps({"items": [{"a": i} for i in range(200)]}).encode(),  # many brackets, shallow: the walk runs
])
def test_storable_bodies_parse(body: bytes) -> None:
    assert parse_json(body) == json.loads(body)


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"a":"x\\u0000"}', "\\u0000"),
    (b'{"a\\u0000":1}', "\\u0000"),
    (b'{"a":"\\ud800"}', "lone surrogate"),
    (b'{"a":"\xed\xa0\x80"}', "lone surrogate"),
    (_nested(MAX_JSON_DEPTH + 1), "nested deeper"),
    (b'{"a":1e999}', "out of range"),
    (b'{"a":' + b"9" * 400 + b'.5}', "out of range"),
    (b'{"a":NaN}', "malformed"),
])
def test_unstorable_bodies_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(Answer) as refused:
        parse_json(body)
    assert refused.value.status == 400 and reason in refused.value.reason
