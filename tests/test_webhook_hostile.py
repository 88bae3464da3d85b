"""Hostile input at the public sidecar (real uvicorn over HTTP, real Postgres): junk headers
and bodies, validly signed poison events, future timestamps, clients that hang up or trickle.

What an operator sees: a 4xx with a reason (never a 5xx while the database is up), exactly
one JSON log line per request, no traceback, never the body in the log, nothing written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import selectors
import socket
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.signing import svix_headers
from tests import stripe_payloads as sp
from tests.fixtures.sidecar import TEST_SECRET, Sidecar, SidecarLog, seed_invoice, snapshot
from tests.test_reminders_support import WEBHOOK_SECRET

MARKER = "BODY-MARKER-7f3a"  # put in bodies; must never show up in the log


@pytest.fixture
def hooks(sidecar: Sidecar) -> Sidecar:
    """The sidecar with Stripe secrets (the `sidecar` fixture) and the Resend secret stored."""
    from crm.config.settings import save_setting
    from webhook.resend_route import SECRETS

    save_setting(sidecar.db, "resend.webhook_secret", WEBHOOK_SECRET)
    SECRETS.clear()
    return sidecar


def post(hooks: Sidecar, route: str, body: bytes, headers: dict[str, Any]) -> httpx.Response:
    return hooks.http.post(f"/webhooks/{route}", content=body, headers=headers)


def one_line(log: SidecarLog, route: str, since: int) -> dict[str, Any]:
    lines = log.requests(route, since)
    assert len(lines) == 1, lines
    assert "exc" not in lines[0] and not log.uvicorn_errors, (lines, log.uvicorn_errors)
    assert MARKER not in json.dumps(lines[0])
    return lines[0]


def stripe_signed(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    return {"Stripe-Signature": sp.signature_header(body, TEST_SECRET, timestamp), "Content-Type": "application/json"}


def resend_signed(body: bytes, timestamp: int | None = None, msg_id: str = "msg_hostile") -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {**svix_headers(WEBHOOK_SECRET, msg_id, stamp, body), "Content-Type": "application/json"}


def paid_event(hooks: Sidecar, **extra: Any) -> dict[str, Any]:
    inv = seed_invoice(hooks.db)
    obj = sp.invoice(str(inv["stripe_invoice_id"]), status="paid", amount_paid=10_000)
    obj["metadata"] = {"note": MARKER, **extra}
    return sp.event("invoice.paid", obj)


# ---------------------------------------------------------------- unsigned junk: 400, never 500

JUNK_HEADERS = [
    ("stripe", {"Stripe-Signature": "t=1700000000,v1=é".encode()}, "malformed Stripe-Signature"),
    # b"\xb2" is '²' as the server decodes headers (latin-1): str.isdigit() says yes, int() says no.
    ("resend", {"svix-id": "msg_1", "svix-timestamp": b"\xb2", "svix-signature": "v1,AAAA"},
     "malformed svix-timestamp"),
    ("resend", {"svix-id": "msg_1", "svix-timestamp": "9" * 5000, "svix-signature": "v1,AAAA"},
     "malformed svix-timestamp"),
    ("resend", {"svix-id": "msg_1", "svix-timestamp": "NOW", "svix-signature": "v1,é".encode()},
     "malformed svix-signature"),
    ("resend", {"svix-id": "msg_1", "svix-timestamp": "NOW", "svix-signature": "v1"}, "malformed svix-signature"),
]


@pytest.mark.parametrize(("route", "headers", "reason"), JUNK_HEADERS)
def test_junk_signature_headers_get_400_and_one_log_line(hooks: Sidecar, sidecar_log: SidecarLog, route: str,
                                                         headers: dict[str, Any], reason: str) -> None:
    headers = {k: str(int(time.time())) if v == "NOW" else v for k, v in headers.items()}
    before = snapshot(hooks.db)
    resp = post(hooks, route, b'{"id": "evt_junk"}', headers)
    assert resp.status_code == 400, resp.text
    assert reason in resp.json()["error"]
    line = one_line(sidecar_log, route, 0)
    assert line["status"] == 400 and reason in line["detail"]
    assert snapshot(hooks.db) == before


def test_client_that_disconnects_mid_body_is_logged_once(hooks: Sidecar, sidecar_log: SidecarLog) -> None:
    host, port = hooks.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1=00\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"id\": ")
        time.sleep(0.2)
    lines = sidecar_log.wait_for("stripe", 0)
    assert len(lines) == 1 and lines[0]["status"] == 400
    assert "disconnected" in lines[0]["detail"]
    assert not sidecar_log.uvicorn_errors and "exc" not in lines[0]


# ---------------------------------------------------------------- signed poison: 400, nothing written

def _deep(evt: dict[str, Any], depth: int) -> bytes:
    body = sp.body_of(evt)
    nested = b"[" * depth + b"1" + b"]" * depth
    return body[:-1] + b',"deep":' + nested + b"}"


POISON = {
    "nested_100000": lambda evt: _deep(evt, 100_000),
    "nested_200": lambda evt: _deep(evt, 200),
    "nul_in_a_string": lambda evt: sp.body_of(evt).replace(MARKER.encode(), MARKER.encode() + b"\\u0000"),
    "nul_in_a_key": lambda evt: sp.body_of(evt).replace(b'"note"', b'"no\\u0000te"'),
    "lone_surrogate": lambda evt: sp.body_of(evt).replace(MARKER.encode(), MARKER.encode() + b"\\ud800"),
    "nested_65": lambda evt: _deep(evt, 65),
    "huge_decimal": lambda evt: sp.body_of(evt)[:-1] + b',"x":' + b"9" * 400 + b'.5}',
    "infinity": lambda evt: sp.body_of(evt)[:-1] + b',"x":1e999}',
    "nan": lambda evt: sp.body_of(evt)[:-1] + b',"x":NaN}',
}


@pytest.mark.parametrize("kind", list(POISON))
def test_signed_poison_stripe_event_gets_400_and_writes_nothing(hooks: Sidecar, sidecar_log: SidecarLog,
                                                                kind: str) -> None:
    evt = paid_event(hooks)
    body = POISON[kind](evt)
    before = snapshot(hooks.db)
    resp = post(hooks, "stripe", body, stripe_signed(body))
    assert resp.status_code == 400, resp.text
    assert snapshot(hooks.db) == before
    line = one_line(sidecar_log, "stripe", 0)
    assert line["event_id"] == evt["id"] and line["status"] == 400


@pytest.mark.parametrize("kind", list(POISON))
def test_signed_poison_resend_event_gets_400_and_writes_nothing(hooks: Sidecar, sidecar_log: SidecarLog,
                                                                kind: str) -> None:
    evt = {"type": "email.delivered", "created_at": "2030-01-01T00:00:00Z",
           "data": {"email_id": "re_1", "tags": {"note": MARKER}}}
    body = POISON[kind](evt)
    before = snapshot(hooks.db)
    resp = post(hooks, "resend", body, resend_signed(body))
    assert resp.status_code == 400, resp.text
    assert snapshot(hooks.db) == before
    assert one_line(sidecar_log, "resend", 0)["status"] == 400


# ---------------------------------------------------------------- timestamps from the future

def test_future_timestamps_are_refused_on_both_routes(hooks: Sidecar, sidecar_log: SidecarLog) -> None:
    evt = paid_event(hooks)
    body = sp.body_of(evt)
    # Far past the 300 s tolerance, not just past it: a request that takes seconds to arrive on
    # a busy machine must still be in the future when the sidecar reads the clock.
    future = int(time.time()) + 3600
    before = snapshot(hooks.db)
    stripe = post(hooks, "stripe", body, stripe_signed(body, future))
    resend_body = json.dumps({"type": "email.delivered", "data": {"email_id": "re_1"}}).encode()
    resend = post(hooks, "resend", resend_body, resend_signed(resend_body, future))
    assert (stripe.status_code, resend.status_code) == (400, 400)
    assert "in the future" in stripe.json()["error"] and "in the future" in resend.json()["error"]
    assert snapshot(hooks.db) == before
    # Within the tolerance, either way, is fine.
    assert post(hooks, "stripe", body, stripe_signed(body, int(time.time()) + 200)).json()["outcome"] == "applied"


# ---------------------------------------------------------------- fuzz

header_bytes = st.binary(max_size=60).map(
    lambda b: bytes(c for c in b if c >= 0x21 and c != 0x7F) or b"x")  # what an HTTP client can send
digits = st.one_of(st.sampled_from(["", "0", "1700000000", "\xb2", "١٢٣", "9" * 5000, "-5", "1e9", "12 3"]),
                   st.integers(-400, 400).map(lambda d: str(int(time.time()) + d)))  # around now, at draw time
stripe_header = st.one_of(
    header_bytes,
    st.builds(lambda t, v: f"t={t},v1=".encode("latin-1", "replace") + v, digits, header_bytes),
    st.builds(lambda v: b"t=" + str(int(time.time())).encode() + b",v1=" + v + b",v0=" + v, header_bytes),
)
svix_headers_junk = st.fixed_dictionaries({}, optional={
    "svix-id": header_bytes,
    "svix-timestamp": st.one_of(digits.map(lambda s: s.encode("latin-1", "replace")), header_bytes),
    "svix-signature": st.one_of(header_bytes, header_bytes.map(lambda b: b"v1," + b), header_bytes.map(
        lambda b: b"v1," + base64.b64encode(b) + b" v2," + b)),
})
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=20)
bodies = st.one_of(
    st.binary(max_size=300),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda n: b'{"a":' + b"[" * n + b"]" * n + b"}"),
    st.text(max_size=50).map(lambda s: json.dumps({"id": "evt_1", "type": "email.sent", "x": s + "\x00"}).encode()),
)


def _fuzz_settings(n: int) -> Any:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _counts(db: Any) -> dict[str, int]:
    row = db.execute("SELECT (SELECT count(*) FROM crm.stripe_events) AS stripe, (SELECT count(*) FROM "
                     "crm.email_events) AS email, (SELECT count(*) FROM crm.audit_log) AS audit").fetchone()
    return dict(row)


UNSIGNED_CASES = 1000


def test_fuzz_unsigned_junk_never_5xx_and_changes_nothing(hooks: Sidecar, sidecar_log: SidecarLog) -> None:
    seed_invoice(hooks.db)
    before = snapshot(hooks.db)
    tried = {"stripe": 0, "resend": 0}

    @_fuzz_settings(UNSIGNED_CASES)
    @given(route=st.sampled_from(["stripe", "resend"]), stripe_sig=stripe_header, svix=svix_headers_junk, body=bodies)
    def case(route: str, stripe_sig: bytes, svix: dict[str, bytes], body: bytes) -> None:
        tried[route] += 1
        since = len(sidecar_log.lines)
        headers: dict[str, bytes] = {"Stripe-Signature": stripe_sig} if route == "stripe" else dict(svix)
        resp = post(hooks, route, body, headers)
        assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
        line = one_line(sidecar_log, route, since)
        assert line["status"] == resp.status_code and line["detail"]

    case()
    total = sum(tried.values())
    print(f"fuzz: {total} unsigned requests ({tried})")
    assert total >= UNSIGNED_CASES and min(tried.values()) > 0
    assert snapshot(hooks.db) == before


SIGNED_CASES = 500


def test_fuzz_signed_bodies_never_5xx(hooks: Sidecar, sidecar_log: SidecarLog) -> None:
    inv = seed_invoice(hooks.db)
    tried = {"stripe": 0, "resend": 0}
    fields = st.dictionaries(st.text(max_size=8), json_value, max_size=3)

    def event_like(extra: dict[str, Any], amount: Any) -> bytes:
        obj = sp.invoice(str(inv["stripe_invoice_id"]), status="paid", amount_paid=10_000)
        obj.update(extra)
        obj["amount_paid"] = amount
        return sp.body_of(sp.event("invoice.paid", obj))

    stripe_bodies = st.one_of(bodies, st.builds(event_like, fields, st.one_of(st.integers(), json_leaf)))
    resend_bodies = st.one_of(bodies, st.builds(
        lambda d, t, c: json.dumps({"type": t, "created_at": c, "data": d}).encode(), fields,
        st.sampled_from(["email.delivered", "email.bounced", "email.opened", "email.x"]),
        st.one_of(st.text(max_size=30), st.sampled_from(["0001-01-01T00:00:00-12:00", "9999-12-31T23:59:59+00:00"]))))

    @_fuzz_settings(SIGNED_CASES)
    @given(route=st.sampled_from(["stripe", "resend"]), stripe_body=stripe_bodies, resend_body=resend_bodies,
           n=st.integers(0, 10 ** 6))
    def case(route: str, stripe_body: bytes, resend_body: bytes, n: int) -> None:
        tried[route] += 1
        since = len(sidecar_log.lines)
        if route == "stripe":
            try:
                headers = stripe_signed(stripe_body)
            except UnicodeDecodeError:  # stripe-python signs text; not UTF-8 goes unsigned
                headers = {"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}
            resp = post(hooks, route, stripe_body, headers)
        else:
            resp = post(hooks, route, resend_body, _svix_signed_bytes(resend_body, f"msg_fuzz_{n}"))
        assert resp.status_code < 500, (resp.status_code, resp.text)
        one_line(sidecar_log, route, since)

    case()
    total = sum(tried.values())
    print(f"fuzz: {total} signed requests ({tried})")
    assert total >= SIGNED_CASES and min(tried.values()) > 0


def _svix_signed_bytes(body: bytes, msg_id: str) -> dict[str, str]:
    """svix headers over raw bytes (sandbox.signing takes the same inputs; this also signs non-UTF-8)."""
    stamp = str(int(time.time()))
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"svix-id": msg_id, "svix-timestamp": stamp, "svix-signature": f"v1,{sig}"}


# ---------------------------------------------------------------- slow connections

SLOW = 200


def test_slow_connections_are_closed_after_the_timeout_while_deliveries_get_through(
        hooks: Sidecar, sidecar_log: SidecarLog) -> None:
    """200 clients trickling a byte every 0.5 s (half still in their headers, half in the body)
    are cut off after the test sidecar's 2 s read timeouts; a real delivery meanwhile is applied."""
    from tests.fixtures.sidecar import SLOW_CLIENT_LIMITS

    limit_s = float(SLOW_CLIENT_LIMITS["WEBHOOK_HEADER_TIMEOUT_S"])
    host, port = hooks.url.removeprefix("http://").split(":")
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    try:
        for i in range(SLOW):
            sock = socket.create_connection((host, int(port)), timeout=5)
            start = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
            if i % 2:  # headers complete, body never
                start += b"Stripe-Signature: t=1,v1=00\r\nContent-Length: 100000\r\n\r\n"
            sock.sendall(start)
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
            socks.append(sock)
        opened = time.monotonic()

        inv = seed_invoice(hooks.db)
        evt = sp.event("invoice.paid", sp.invoice(str(inv["stripe_invoice_id"]), status="paid", amount_paid=10_000))
        delivered = hooks.post(evt)
        assert delivered.status_code == 200 and delivered.json()["outcome"] == "applied"

        closed: set[int] = set()
        still_open_at_half: int | None = None
        while len(closed) < SLOW and time.monotonic() - opened < limit_s + 5:  # bounded
            if still_open_at_half is None and time.monotonic() - opened > limit_s / 2:
                still_open_at_half = SLOW - len(closed)
            for sock in socks:
                if sock.fileno() in closed:
                    continue
                try:
                    sock.send(b"X")
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    closed.add(sock.fileno())
            for key, _ in sel.select(timeout=0.5):
                sock = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:  # the server closed it (after a 408 for those that sent headers)
                    closed.add(sock.fileno())
                    sel.unregister(sock)
        elapsed = time.monotonic() - opened
    finally:
        for sock in socks:
            sock.close()
        sel.close()
    assert still_open_at_half == SLOW, "connections were closed before the timeout"
    assert len(closed) == SLOW, f"{SLOW - len(closed)} slow connections still open after {elapsed:.1f} s"
    assert elapsed < limit_s + 3
    timeouts = sidecar_log.requests("stripe")
    assert sum(1 for line in timeouts if line["status"] == 408) == SLOW // 2  # the body deadline, one line each
    assert not sidecar_log.uvicorn_errors
