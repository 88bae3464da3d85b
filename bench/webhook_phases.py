"""The webhook bench's phases: closed loop over HTTP, open loop at a fixed rate, the SQL floor,
and both invoices of a job paid at once. Each reports throughput, latency and outcomes;
`measured` adds the CPU both sides spent.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bench.http_sender import Connection, build_request
from bench.stats import Latency, latency
from bench.webhook_events import Delivery, paid_event

# The exact statement db.stripe_events.apply_event sends (one autocommit SELECT per event).
from db.stripe_events import _APPLY as APPLY_SQL

ROUTE = "/webhooks/stripe"


@dataclass
class PhaseResult:
    name: str
    concurrency: int
    deliveries: int
    seconds: float
    latency: Latency
    outcomes: Counter[str] = field(default_factory=Counter)
    client_cpu_s: float = 0.0  # CPU the load generator (this process) used during the phase
    server_cpu_s: float | None = None  # CPU the sidecar process used (None for the floor)
    samples_s: list[float] = field(default_factory=list, repr=False)  # each delivery's latency, for pooling

    def cpu_ms_per_event(self, seconds: float | None) -> float | None:
        return None if seconds is None or not self.deliveries else seconds * 1000 / self.deliveries

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(phase: Any, server_pid: int | None) -> PhaseResult:
    """Runs a phase coroutine and attaches the CPU both sides used."""
    client0 = self_cpu_s()
    server0 = proc_cpu_s(server_pid) if server_pid else 0.0
    result: PhaseResult = asyncio.run(phase)
    result.client_cpu_s = self_cpu_s() - client0
    if server_pid:
        result.server_cpu_s = proc_cpu_s(server_pid) - server0
    return result


def requests_for(url: str, items: list[Delivery]) -> tuple[str, int, list[bytes]]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port), [build_request(host, int(port), ROUTE, d.body, d.headers) for d in items]


def _count_reconnects(outcomes: Counter[str], connections: list[Connection]) -> None:
    """Requests re-sent on a new connection after the server closed an idle one (see
    bench/http_sender.py), reported beside the outcomes so a run says how often it happened."""
    reconnects = sum(c.reconnects for c in connections)
    if reconnects:
        outcomes["re-sent after keep-alive close"] = reconnects


async def closed_loop_http(url: str, items: list[Delivery], concurrency: int) -> PhaseResult:
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    host, port, requests = requests_for(url, items)
    queue = iter(requests)
    connections = [Connection(host, port) for _ in range(concurrency)]

    async def worker(conn: Connection) -> None:
        for request in queue:
            started = time.perf_counter()
            answer = await conn.send(request)
            latencies.append(time.perf_counter() - started)
            outcomes[answer.outcome()] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - started
    for c in connections:
        await c.close()
    _count_reconnects(outcomes, connections)
    return PhaseResult("sidecar", concurrency, len(items), elapsed, latency(latencies), outcomes, samples_s=latencies)


async def open_loop_http(url: str, items: list[Delivery], rate: float) -> PhaseResult:
    """Each event is due at start + i/rate; a free keep-alive connection takes it, or a new one opens."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    host, port, requests = requests_for(url, items)
    idle: list[Connection] = []
    opened: list[Connection] = []
    start = time.perf_counter() + 0.05

    async def one(i: int, request: bytes) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        conn = idle.pop() if idle else Connection(host, port)
        if conn not in opened:
            opened.append(conn)
        answer = await conn.send(request)
        idle.append(conn)
        latencies.append(time.perf_counter() - due)
        outcomes[answer.outcome()] += 1

    await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
    elapsed = time.perf_counter() - start
    for c in opened:
        await c.close()
    _count_reconnects(outcomes, opened)
    result = PhaseResult("sidecar, offered load", len(opened), len(items), elapsed, latency(latencies), outcomes,
                         samples_s=latencies)
    return result


async def closed_loop_floor(database_url: str, items: list[Delivery], concurrency: int) -> PhaseResult:
    """The same kind of events straight into crm.apply_stripe_event: one autocommit statement each,
    `concurrency` connections driven from one event loop (no thread hand-offs on the client side)."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    queue = iter(items)

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.set_autocommit(True)

    async with AsyncConnectionPool(database_url, min_size=concurrency, max_size=concurrency, configure=configure,
                                   open=False) as pool:
        await pool.wait(timeout=60)

        async def worker() -> None:
            for d in queue:
                started = time.perf_counter()
                try:
                    async with pool.connection() as conn:
                        cur = await conn.execute(APPLY_SQL, (Jsonb(d.event), "test", "webhook"))
                        row = await cur.fetchone()
                    outcome = str(row[0]["outcome"]) if row else "no row"
                except psycopg.Error as exc:  # reported (the sidecar answers 500 for these and Stripe retries)
                    outcome = f"error {type(exc).__name__}"
                latencies.append(time.perf_counter() - started)
                outcomes[outcome] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return PhaseResult("floor (SQL function)", concurrency, len(items), elapsed, latency(latencies), outcomes,
                       samples_s=latencies)


async def same_job_pairs(database_url: str, pairs: list[list[tuple[str, int]]]) -> Counter[str]:
    """Both open invoices of a job paid at the same moment (a deposit and a final invoice paid
    together), one pair at a time, each event on its own connection; outcomes counted."""
    outcomes: Counter[str] = Counter()
    conns = [await psycopg.AsyncConnection.connect(database_url, autocommit=True) for _ in range(2)]
    try:
        for n, pair in enumerate(pairs):
            async def one(conn: psycopg.AsyncConnection[Any], sid: str, amount: int, k: int) -> str:
                try:
                    cur = await conn.execute(APPLY_SQL, (Jsonb(paid_event(sid, amount, 10_000_000 + k)), "test",
                                                         "webhook"))
                    row = await cur.fetchone()
                    return str(row[0]["outcome"]) if row else "no row"
                except psycopg.Error as exc:
                    return f"error {type(exc).__name__}"
            got = await asyncio.gather(*(one(conns[i], sid, amt, 2 * n + i) for i, (sid, amt) in enumerate(pair)))
            outcomes.update(got)
    finally:
        for c in conns:
            await c.close()
    return outcomes
