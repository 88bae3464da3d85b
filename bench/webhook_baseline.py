"""This commit's webhook sidecar against a baseline commit's, measured in one run.

A number from another day cannot say whether a change made the webhook slower: this
shared 2-core machine's speed varies by about 2x from hour to hour (the load generator,
whose code does not change, has used 0.09 to 0.38 ms of CPU per event). So both sides are
measured here, under the same conditions, alternating. HEAD's tree and the baseline's
(each exported with `git archive`, so only committed code runs) each migrate a fresh
database with their own migrations and serve their own sidecar; this checkout's loader
loads the same generated data into both, so both pay the same invoices in the same order.
Each round measures both sides, the order alternating; per side and round: a closed loop at
concurrency 16 over HTTP and on the SQL floor (the ratio), then the open-loop 200/s phase
(the p99). The ratio is taken over all rounds; the p99 compared is the median of the rounds'
p99s (the pooled percentiles are shown too); the report divides HEAD by baseline.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

from bench import parts
from bench.cluster import drop_database, empty_database
from bench.loader import load
from bench.stats import Latency, latency
from bench.webhook_bench import Sidecar, open_invoices
from bench.webhook_events import deliveries
from bench.webhook_phases import PhaseResult, closed_loop_floor, closed_loop_http, measured, open_loop_http
from db.embedded import EmbeddedPostgres

CONCURRENCY = 16
ROUNDS = 8  # a stall of a second lands in one round; the median of eight shrugs it off
CLOSED_EVENTS = 300  # per round, phase and side
OFFERED_SECONDS = 3.0

# Run inside the exported tree: its own migrator with its own defaults (files beside it).
_MIGRATE = "import sys; from db.migrate import migrate; migrate(sys.argv[1])"


@dataclass
class Round:
    sidecar: PhaseResult  # closed loop over HTTP at CONCURRENCY
    floor: PhaseResult  # the same on crm.apply_stripe_event directly
    offered: PhaseResult  # open loop at the offered rate

    @property
    def ratio(self) -> float:
        return self.sidecar.per_second / self.floor.per_second if self.floor.per_second else float("nan")


@dataclass
class Side:
    label: str  # "HEAD" or "baseline"
    commit: str  # "abc1234 subject"
    rounds: list[Round] = field(default_factory=list)

    def ratio(self) -> float:
        """Sidecar ÷ floor events/s over all rounds."""
        side_s = sum(r.sidecar.seconds for r in self.rounds)
        floor_s = sum(r.floor.seconds for r in self.rounds)
        side_n = sum(r.sidecar.deliveries for r in self.rounds)
        floor_n = sum(r.floor.deliveries for r in self.rounds)
        if not side_s or not floor_s or not floor_n:
            return float("nan")
        return (side_n / side_s) / (floor_n / floor_s)

    def offered_latency(self) -> Latency:
        return latency([s for r in self.rounds for s in r.offered.samples_s])

    def round_p99_ms(self) -> float:
        """The median over rounds of each round's p99 at the offered rate: the number compared,
        because one stall (this machine has them) can move the pooled p99 by itself."""
        values = sorted(r.offered.latency.p99_ms for r in self.rounds)
        if not values:
            return float("nan")
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    def offered_events(self) -> int:
        return sum(r.offered.deliveries for r in self.rounds)


@dataclass
class BaselineResult:
    size: int
    rate: float
    head: Side
    base: Side
    note: str = ""


def resolve(ref: str) -> str:
    """`ref` as '<short sha> <subject>', or ValueError when git does not know it."""
    done = subprocess.run(["git", "log", "-1", "--format=%h %s", ref, "--"], cwd=parts.ROOT, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise ValueError(f"baseline {ref!r} is not a commit of this repository")
    return done.stdout.strip()


def export_tree(ref: str, dest: Path) -> Path:
    """The committed tree of `ref`, unpacked into dest."""
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=parts.ROOT, capture_output=True,
                             check=True).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def migrated_database(server: EmbeddedPostgres, name: str, tree: Path) -> str:
    """Database `name`, migrated by the migrator and migrations of `tree`."""
    url = empty_database(server, name)
    done = subprocess.run([sys.executable, "-c", _MIGRATE, url], cwd=tree, capture_output=True, text=True,
                          env={**_env(), "PYTHONPATH": str(tree)}, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"migrating {name} with {tree.name}'s migrations failed: {done.stderr[-500:]}")
    return url


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}


def _budget(available: int, rounds: int, rate: float) -> tuple[int, int]:
    """(closed-loop events, offered events) per round and side that the open invoices allow."""
    per_round = available // rounds
    offered = int(rate * OFFERED_SECONDS)
    if per_round >= 2 * CLOSED_EVENTS + offered:
        return CLOSED_EVENTS, offered
    closed = max(1, per_round // 4)
    return closed, max(1, per_round - 2 * closed)


def run(server: EmbeddedPostgres, size: int, baseline_ref: str, anchor: datetime, seed: int, log_dir: Path,
        rate: float, rounds: int = ROUNDS) -> BaselineResult:
    base_commit = resolve(baseline_ref)
    head = Side("HEAD", parts.head_commit())
    base = Side("baseline", base_commit)
    (parts.ROOT / ".data").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-baseline-", dir=parts.ROOT / ".data") as tmp:
        urls: dict[str, str] = {}
        sidecars: dict[str, Sidecar] = {}
        trees: dict[str, Path] = {}
        for side, ref in ((head, "HEAD"), (base, base_commit.split()[0])):
            trees[side.label] = tree = export_tree(ref, Path(tmp) / side.label)
            name = f"bench_ab_{side.label.lower()}"
            print(f"[baseline] {side.label} ({side.commit[:60]}): migrating and loading {size} invoices ...",
                  flush=True)
            urls[side.label] = url = migrated_database(server, name, tree)
            load(url, size, anchor, seed)
        with psycopg.connect(server.admin_url(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # the loads' writes are not flushed during the rounds
        try:
            for label, tree in trees.items():
                sidecars[label] = Sidecar(urls[label], log_dir, root=tree, log_name=f"sidecar-{label}.log")
            note = _rounds(head, base, urls, sidecars, rate, rounds, seed)
        finally:
            for s in sidecars.values():
                s.stop()
            for side in (head, base):
                drop_database(server, f"bench_ab_{side.label.lower()}")
    return BaselineResult(size, rate, head, base, note)


def _rounds(head: Side, base: Side, urls: dict[str, str], sidecars: dict[str, Sidecar], rate: float, rounds: int,
            seed: int) -> str:
    """Measures every round into head.rounds and base.rounds; returns a note when the open
    invoices were too few for the full budget."""
    # Identical data: both sides list the same open invoices in the same order.
    pools = {label: open_invoices(url, rounds * (2 * CLOSED_EVENTS + int(rate * OFFERED_SECONDS)) + 20)
             for label, url in urls.items()}
    listed = min(len(p) for p in pools.values())
    warm_n = min(20, listed // 5)
    available = listed - warm_n
    closed, offered = _budget(max(available, 4 * rounds), rounds, rate)
    note = "" if closed == CLOSED_EVENTS else f"only {available} open invoices: {closed} + {closed} + {offered} a round"
    for side in (head, base):  # warm each sidecar's pool and code paths, unmeasured
        warm = pools[side.label][:warm_n]
        if warm:
            asyncio.run(closed_loop_http(sidecars[side.label].url, deliveries(warm, random.Random(seed)), 4))
    per_round = 2 * closed + offered
    for r in range(rounds):
        order = (head, base) if r % 2 == 0 else (base, head)
        for side in order:
            start = warm_n + r * per_round
            pool = pools[side.label][start:start + per_round]
            rng = random.Random(seed * 1000 + r)  # the same duplicates on both sides
            sidecar = sidecars[side.label]
            http = measured(closed_loop_http(sidecar.url, deliveries(pool[:closed], rng), CONCURRENCY),
                            sidecar.proc.pid)
            floor = measured(closed_loop_floor(urls[side.label], deliveries(pool[closed:2 * closed], rng),
                                               CONCURRENCY), None)
            items = deliveries(pool[2 * closed:], rng)[:len(pool) - 2 * closed]
            time.sleep(0.5)  # let the closed loops' backlog (autovacuum, WAL) settle before the timed window
            paced = measured(open_loop_http(sidecar.url, items, rate), sidecar.proc.pid)
            side.rounds.append(Round(http, floor, paced))
            print(f"[baseline]   round {r + 1} {side.label}: ratio {side.rounds[-1].ratio:.2f}, "
                  f"p99 at {rate:.0f}/s {paced.latency.p99_ms:.1f} ms", flush=True)
    return note
