"""A minimal HTTP/1.1 keep-alive sender on asyncio streams: the webhook bench's load generator.

Why not httpx: on this 2-core machine httpx's async client spent 1.3 to 7 ms of CPU per
request (more at higher concurrency), more than the sidecar spent answering it, so the
sender, not the sidecar, set the pace. Requests here are pre-built bytes and responses are
read by Content-Length, which is all uvicorn sends for these JSON answers (no chunking).

A server closes idle keep-alive connections (uvicorn after `timeout_keep_alive`, 5 s by
default), and a request written just as it does so finds the connection gone. Like any HTTP
client, the sender then reconnects and sends the request once more, and counts it
(`Connection.reconnects`): a webhook delivery is safe to repeat, the ledger dedups it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def outcome(self) -> str:
        if self.status != 200:
            return f"http {self.status}"
        try:
            return str(json.loads(self.body).get("outcome"))
        except ValueError:
            return "unreadable"


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def send(self, request: bytes) -> Answer:
        reused = self._writer is not None and not self._writer.is_closing()
        try:
            return await self._exchange(request)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise  # a fresh connection that fails is a real failure, not a stale one
            await self.close()
            self.reconnects += 1
            return await self._exchange(request)

    async def _exchange(self, request: bytes) -> Answer:
        reader, writer = await self._open()
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        body = await reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return Answer(status, body)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except ConnectionError:
                pass
        self._reader = self._writer = None
