"""Refuse outbound webhook deliveries to anything but loopback or private networks.

The sandbox must never reach the internet; a webhook URL is the only place where
a user-supplied address could send traffic out, so every delivery passes here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


def _local_ip(text: str) -> bool:
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return addr.is_loopback or addr.is_private or addr.is_link_local


def url_shape_ok(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def is_local_url(url: str) -> bool:
    """True when every address the URL's host resolves to is loopback or private."""
    if not url_shape_ok(url):
        return False
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    if _local_ip(host):
        return True
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(_local_ip(str(info[4][0])) for info in infos)
