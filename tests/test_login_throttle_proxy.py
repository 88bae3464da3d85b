"""The login throttle behind a local tunnel or proxy: a fresh X-Forwarded-For per try buys
nothing unless the proxy is named in CRM_TRUSTED_PROXIES (crm/users/client_address.py).

The HTTP layer is uvicorn's own ProxyHeadersMiddleware with the options Streamlit's uvicorn
runs with (it trusts 127.0.0.1), in front of an endpoint that reads the address the way
`ui.session.client_source` does and logs in against the real database.

Failed on the code before the fix (checked by hand): `client_source` returned
`st.context.ip_address`, the address uvicorn rewrote from the header, so keying this
endpoint on it gave twelve sources, twelve single failures and no wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from crm.users.auth import LoginError, login
from crm.users.client_address import client_address, configured_proxies, parse_proxies, server_trusted_hosts
from tests.fixtures.dashboard import STAFF_EMAIL

Conn = psycopg.Connection[Any]


def login_app(db: Conn) -> Any:
    async def attempt(request: Request) -> PlainTextResponse:
        host = request.client.host if request.client else None
        peer = None if host in {"127.0.0.1", "::1"} else host  # what st.context.ip_address answers
        source = client_address(peer, request.headers.getlist("x-forwarded-for"), configured_proxies(),
                                server_trusted_hosts())
        try:
            login(db, STAFF_EMAIL, "wrong password!", source=source)
        except LoginError as exc:
            return PlainTextResponse(str(exc), status_code=401)
        return PlainTextResponse("logged in")

    return ProxyHeadersMiddleware(Starlette(routes=[Route("/login", attempt, methods=["POST"])]), "127.0.0.1")


def burst(db: Conn, peer: str, forwarded: list[str]) -> list[str]:
    transport = httpx.ASGITransport(app=login_app(db), client=(peer, 50_000))

    async def run() -> list[str]:
        async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
            return [(await client.post("/login", headers={"X-Forwarded-For": ip})).text for ip in forwarded]

    return asyncio.run(run())


def sources(db: Conn) -> list[str]:
    return [r["source_key"] for r in db.execute("SELECT source_key FROM crm.login_throttle ORDER BY 1")]


@pytest.mark.usefixtures("dashboard_users")
def test_throttle_proxy_a_fresh_forwarded_header_per_try_is_still_throttled(
        db: Conn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_TRUSTED_PROXIES", raising=False)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    answers = burst(db, "127.0.0.1", [f"203.0.113.{n}" for n in range(12)])
    assert any(a.startswith("Too many failed attempts") for a in answers), answers
    assert sources(db) == ["proxy 127.0.0.1|*", f"proxy 127.0.0.1|{STAFF_EMAIL}"]


@pytest.mark.usefixtures("dashboard_users")
def test_throttle_proxy_a_named_proxy_keys_each_client_and_a_direct_peer_cannot_forge(
        db: Conn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TRUSTED_PROXIES", "127.0.0.1")
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    burst(db, "127.0.0.1", ["198.51.100.7", "198.51.100.8"])
    burst(db, "192.0.2.50", ["198.51.100.9"])  # not a proxy: its header is ignored
    assert sources(db) == ["192.0.2.50|*", f"192.0.2.50|{STAFF_EMAIL}", "198.51.100.7|*",
                           f"198.51.100.7|{STAFF_EMAIL}", "198.51.100.8|*", f"198.51.100.8|{STAFF_EMAIL}"]


def test_throttle_proxy_client_address_rules() -> None:
    none = parse_proxies("")
    lan = parse_proxies("127.0.0.1, 10.0.0.0/8, not-an-ip")
    assert client_address("192.0.2.1", [], none) == "192.0.2.1"
    assert client_address(None, [], none) == "loopback"
    # uvicorn rewrote the peer from the header: keyed on what it saw unless we trust that too.
    assert client_address("203.0.113.9", ["203.0.113.9"], none) == "proxy 127.0.0.1"
    assert client_address(None, ["127.0.0.1"], none) == "proxy 127.0.0.1"
    assert client_address("203.0.113.9", ["203.0.113.9"], lan) == "203.0.113.9"
    assert client_address("203.0.113.9", ["203.0.113.9"], lan, server_trusted="*") == "proxy *"
    # A named proxy chain: the first address from the right that none of ours added.
    assert client_address("10.1.2.3", ["6.6.6.6, 203.0.113.9, 10.9.9.9"], lan) == "203.0.113.9"
    # A peer we do not trust: its header is ignored.
    assert client_address("192.0.2.1", ["203.0.113.9"], lan) == "192.0.2.1"
