"""The benchmark's load generator survives a server that closes idle keep-alive connections
(uvicorn does after `timeout_keep_alive`): it reconnects, re-sends once and counts it."""

from __future__ import annotations

import asyncio

import pytest

from bench.http_sender import Connection, build_request


async def _one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Answers one request, then closes without `Connection: close`, as an idle timeout does.
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)
    body = b'{"outcome":"applied"}'
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


def test_a_stale_keep_alive_connection_is_reopened_and_counted() -> None:
    async def run() -> tuple[list[str], int]:
        server = await asyncio.start_server(_one_answer_then_close, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = Connection("127.0.0.1", port)
        request = build_request("127.0.0.1", port, "/webhooks/stripe", b"{}", {})
        outcomes = []
        for _ in range(3):
            outcomes.append((await conn.send(request)).outcome())
            await asyncio.sleep(0.05)  # lets the server's close reach the client first
        await conn.close()
        server.close()
        return outcomes, conn.reconnects

    outcomes, reconnects = asyncio.run(run())
    assert outcomes == ["applied"] * 3
    assert reconnects == 2


def test_a_fresh_connection_that_fails_is_not_retried() -> None:
    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = Connection("127.0.0.1", port)
        try:
            await conn.send(build_request("127.0.0.1", port, "/", b"{}", {}))
        finally:
            server.close()

    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        asyncio.run(run())
