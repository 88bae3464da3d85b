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
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from bench.parts import ROOT
from bench.webhook_events import SECRET, deliveries
from bench.webhook_phases import (
    PhaseResult,
    closed_loop_floor,
    closed_loop_http,
    measured,
    open_loop_http,
    same_job_pairs,
)
from db.embedded import free_port


def open_invoices(url: str, limit: int) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT stripe_invoice_id, amount_due_cents FROM crm.invoices WHERE status = 'open' AND mode = 'test' "
            "ORDER BY id LIMIT %s", (limit,)).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


class Sidecar:
    """`python -m webhook` in a subprocess on a free port, logs to a file."""

    def __init__(self, database_url: str, log_dir: Path, extra_env: dict[str, str] | None = None,
                 root: Path = ROOT, log_name: str = "sidecar.log") -> None:
        """`root` is the tree whose sidecar runs (this checkout, or a baseline's exported tree)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / log_name
        env = {**os.environ, "DATABASE_URL": database_url, "STRIPE_WEBHOOK_SECRET": SECRET, "STRIPE_MODE": "test",
               "WEBHOOK_RUN_WORKERS": "0", "PYTHONPATH": str(root)}
        env.update(extra_env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "webhook", "--port", str(self.port)], cwd=root, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # never leave a sidecar behind when it did not come up
            raise

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
            asyncio.run(closed_loop_http(sidecar.url, warm, 4))
            chunks[0] = chunks[0][20:]
        for n, c in enumerate(concurrencies):
            http_items = deliveries(chunks[2 * n], rng)
            floor_items = deliveries(chunks[2 * n + 1], rng)
            side = measured(closed_loop_http(sidecar.url, http_items, c), sidecar.proc.pid)
            floor = measured(closed_loop_floor(database_url, floor_items, c), None)
            pairs.append((side, floor))
        offered = None
        if offered_pool:
            items = deliveries(offered_pool, rng)[:len(offered_pool)]
            offered = measured(open_loop_http(sidecar.url, items, offered_rate), sidecar.proc.pid)
    finally:
        sidecar.stop()
    used = {sid for sid, _ in pool}
    same = job_pairs(database_url, 40, used)
    same_job = asyncio.run(same_job_pairs(database_url, same)) if same else Counter[str]()
    return WebhookResults(pairs, offered, offered_rate, note, same_job, len(same))
