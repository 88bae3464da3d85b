"""The address a login attempt comes from, for the throttle: one an attacker cannot choose.

A forwarded header (X-Forwarded-For) is trusted only from a proxy named in
CRM_TRUSTED_PROXIES (comma-separated addresses or networks; empty by default). Anything
else is keyed on the address the server itself sees, so sending a fresh header with each
try changes nothing.

One twist: the web server under Streamlit (uvicorn) already replaces the peer with the
header's last entry when the peer is one it trusts (FORWARDED_ALLOW_IPS, 127.0.0.1 by
default: a local tunnel, port-forward or proxy). When the address we are handed is one of
the header's entries, the server rewrote it, and what it really saw was one of the hosts
it trusts: unless CRM_TRUSTED_PROXIES trusts all of those too, the key is those hosts.
docs/REVERSE-PROXY.md says how to run behind a proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from db.config import env_str

UVICORN_TRUSTED_DEFAULT = "127.0.0.1"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(raw: str) -> tuple[Network, ...]:
    """'10.0.0.5, 192.168.0.0/24' -> networks; an entry that is not an address is ignored."""
    networks: list[Network] = []
    for item in raw.split(","):
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def _hops(forwarded_for: Iterable[str]) -> list[str]:
    return [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]


def _client_behind(hops: list[str], proxies: Sequence[Network]) -> str:
    """The first hop, from the right, that none of our proxies added (the leftmost if all did)."""
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0]


def client_address(peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[Network],
                   server_trusted: str = UVICORN_TRUSTED_DEFAULT) -> str:
    """The throttle's source for one request. `peer` is the address the web server hands the
    app (None for loopback, as Streamlit gives it), `forwarded_for` every X-Forwarded-For
    value, `proxies` CRM_TRUSTED_PROXIES, `server_trusted` the web server's own
    FORWARDED_ALLOW_IPS. Pure."""
    hops = _hops(forwarded_for)
    if not hops:
        return peer or "loopback"
    if peer is None or peer in hops:
        # The server rewrote the peer from the header: it saw one of the hosts it trusts.
        seen = [h.strip() for h in server_trusted.split(",") if h.strip()]
        if seen and "*" not in seen and all(_trusted(h, proxies) for h in seen):
            return _client_behind(hops, proxies)
        return "proxy " + ",".join(seen or ["unknown"])
    if _trusted(peer, proxies):
        return _client_behind(hops, proxies)
    return peer


def configured_proxies() -> tuple[Network, ...]:
    return parse_proxies(env_str("CRM_TRUSTED_PROXIES"))


def server_trusted_hosts() -> str:
    """What uvicorn trusts by itself (Streamlit passes no forwarded_allow_ips of its own)."""
    return env_str("FORWARDED_ALLOW_IPS", UVICORN_TRUSTED_DEFAULT)
