"""Webhook sidecar: signed invoice.paid events over HTTP against the floor (the SQL function alone).

The sidecar runs as it does in production (`python -m webhook` under uvicorn, its own
pool, JSON logs to a file), workers off. Each phase uses invoices no other phase touched,
with 10% of deliveries repeated (Stripe's duplicates). Closed-loop phases keep
`concurrency` requests in flight; the fixed-load phase is open-loop: events are due at
200/s whatever the answers do, and latency counts from when an event was due (so a
stalled server cannot hide its queue).
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import stripe
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bench.http_sender import Connection, build_request
from bench.parts import ROOT
from bench.stats import Latency, latency
from db.embedded import free_port

# The exact statement db.stripe_events.apply_event sends (one autocommit SELECT per event).
from db.stripe_events import _APPLY as APPLY_SQL

SECRET = "whsec_bench_0123456789abcdef"
ROUTE = "/webhooks/stripe"
DUPLICATE_SHARE = 0.10


@dataclass
class Delivery:
    """One POST: the event, its exact bytes and Stripe-Signature headers (signed when built,
    just before its phase, well inside the 300 s tolerance; keeps HMAC off the sender's clock)."""

    event: dict[str, Any]
    body: bytes
    headers: dict[str, str]


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


def _measured(phase: Any, server_pid: int | None) -> PhaseResult:
    """Runs a phase coroutine and attaches the CPU both sides used."""
    client0 = self_cpu_s()
    server0 = proc_cpu_s(server_pid) if server_pid else 0.0
    result: PhaseResult = asyncio.run(phase)
    result.client_cpu_s = self_cpu_s() - client0
    if server_pid:
        result.server_cpu_s = proc_cpu_s(server_pid) - server0
    return result


def open_invoices(url: str, limit: int) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT stripe_invoice_id, amount_due_cents FROM crm.invoices WHERE status = 'open' AND mode = 'test' "
            "ORDER BY id LIMIT %s", (limit,)).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def paid_event(stripe_invoice_id: str, amount: int, n: int) -> dict[str, Any]:
    """An invoice.paid event in the current API shape (the fields the sidecar reads)."""
    now = int(time.time())
    return {
        "id": f"evt_benchpaid{n:09d}{random.getrandbits(32):08x}", "object": "event",
        "api_version": "2026-10-28.endive", "created": now, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": "invoice.paid",
        "data": {"object": {
            "id": stripe_invoice_id, "object": "invoice", "amount_due": amount, "amount_paid": amount,
            "amount_remaining": 0, "attempt_count": 1, "attempted": True, "collection_method": "send_invoice",
            "currency": "usd", "customer": "cus_bench", "livemode": False, "metadata": {}, "status": "paid",
            "status_transitions": {"finalized_at": now - 3600, "marked_uncollectible_at": None, "paid_at": now,
                                   "voided_at": None},
            "total": amount,
        }},
    }


def deliveries(invoices: list[tuple[str, int]], rng: random.Random) -> list[Delivery]:
    """One event per invoice plus 10% repeats, each repeat placed after its original."""
    import json

    out = []
    for n, (sid, amount) in enumerate(invoices):
        event = paid_event(sid, amount, n)
        body = json.dumps(event, separators=(",", ":")).encode()
        out.append(Delivery(event, body, signed_headers(body)))
    for _ in range(int(len(out) * DUPLICATE_SHARE)):
        i = rng.randrange(len(out))
        out.insert(rng.randrange(i + 1, len(out) + 1), out[i])
    return out


def signed_headers(body: bytes) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, int(time.time()))
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


class Sidecar:
    """`python -m webhook` in a subprocess on a free port, logs to a file."""

    def __init__(self, database_url: str, log_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "sidecar.log"
        env = {**os.environ, "DATABASE_URL": database_url, "STRIPE_WEBHOOK_SECRET": SECRET, "STRIPE_MODE": "test",
               "WEBHOOK_RUN_WORKERS": "0", "PYTHONPATH": str(ROOT)}
        env.update(extra_env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "webhook", "--port", str(self.port)], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sidecar exited ({self.proc.returncode}); see {self.log_path}")
            try:
                # /healthz, not /readyz: readyz also wants migrations that are on disk but not on
                # main yet (a teammate's work in progress), which the bench leaves out on purpose.
                if httpx.get(self.url + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"sidecar not ready within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _requests(url: str, items: list[Delivery]) -> tuple[str, int, list[bytes]]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port), [build_request(host, int(port), ROUTE, d.body, d.headers) for d in items]


async def _closed_loop_http(url: str, items: list[Delivery], concurrency: int) -> PhaseResult:
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    host, port, requests = _requests(url, items)
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
    return PhaseResult("sidecar", concurrency, len(items), elapsed, latency(latencies), outcomes)


async def _open_loop_http(url: str, items: list[Delivery], rate: float) -> PhaseResult:
    """Each event is due at start + i/rate; a free keep-alive connection takes it, or a new one opens."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    host, port, requests = _requests(url, items)
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
    result = PhaseResult("sidecar, offered load", len(opened), len(items), elapsed, latency(latencies), outcomes)
    return result


async def _closed_loop_floor(database_url: str, items: list[Delivery], concurrency: int) -> PhaseResult:
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
    return PhaseResult("floor (SQL function)", concurrency, len(items), elapsed, latency(latencies), outcomes)


async def _same_job_pairs(database_url: str, pairs: list[list[tuple[str, int]]]) -> Counter[str]:
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


def job_pairs(url: str, limit: int, skip: set[str]) -> list[list[tuple[str, int]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT array_agg(stripe_invoice_id ORDER BY id), array_agg(amount_due_cents ORDER BY id) "
            "FROM crm.invoices WHERE status = 'open' AND mode = 'test' GROUP BY job_id HAVING count(*) = 2 "
            "ORDER BY job_id DESC LIMIT %s", (limit,)).fetchall()
    return [list(zip(sids, amounts, strict=True)) for sids, amounts in rows if not set(sids) & skip]


@dataclass
class WebhookResults:
    pairs: list[tuple[PhaseResult, PhaseResult]]  # (sidecar, floor) per concurrency
    offered: PhaseResult | None
    offered_rate: float
    note: str = ""
    same_job: Counter[str] = field(default_factory=Counter)
    same_job_pairs: int = 0


def run(database_url: str, log_dir: Path, concurrencies: tuple[int, ...], events_per_phase: int,
        offered_rate: float, offered_seconds: float, seed: int = 11) -> WebhookResults:
    rng = random.Random(seed)
    offered_n = int(offered_rate * offered_seconds)
    phases = 2 * len(concurrencies)
    pool = open_invoices(database_url, phases * events_per_phase + offered_n)
    per_phase = min(events_per_phase, max(1, (len(pool) - offered_n) // phases)) if pool else 0
    note = ""
    if per_phase < events_per_phase:
        note = f"only {len(pool)} open invoices at this size: {per_phase} distinct invoices per phase"
    chunks = [pool[i * per_phase:(i + 1) * per_phase] for i in range(phases)]
    offered_pool = pool[phases * per_phase:phases * per_phase + offered_n]
    sidecar = Sidecar(database_url, log_dir)
    pairs: list[tuple[PhaseResult, PhaseResult]] = []
    try:
        # Warm the sidecar's pool and code paths on a few events that are not measured.
        warm = deliveries(chunks[0][:min(20, per_phase)], rng) if per_phase > 20 else []
        if warm:
            asyncio.run(_closed_loop_http(sidecar.url, warm, 4))
            chunks[0] = chunks[0][20:]
        for n, c in enumerate(concurrencies):
            http_items = deliveries(chunks[2 * n], rng)
            floor_items = deliveries(chunks[2 * n + 1], rng)
            side = _measured(_closed_loop_http(sidecar.url, http_items, c), sidecar.proc.pid)
            floor = _measured(_closed_loop_floor(database_url, floor_items, c), None)
            pairs.append((side, floor))
        offered = None
        if offered_pool:
            items = deliveries(offered_pool, rng)[:len(offered_pool)]
            offered = _measured(_open_loop_http(sidecar.url, items, offered_rate), sidecar.proc.pid)
    finally:
        sidecar.stop()
    used = {sid for sid, _ in pool}
    same = job_pairs(database_url, 40, used)
    same_job = asyncio.run(_same_job_pairs(database_url, same)) if same else Counter[str]()
    return WebhookResults(pairs, offered, offered_rate, note, same_job, len(same))
