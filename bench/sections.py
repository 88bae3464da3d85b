"""The order of a bench run: server, sizes (load, dashboard, queue), webhook at the largest, send, driveway.

Each part checks it is on main first; what is missing is reported, never guessed at.
Results go to bench.render, which turns them into the report's tables and targets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench import dashboard_bench, machine, parts, queue_bench, render
from bench.cluster import bench_server, drop_database, fresh_database, server_version
from bench.loader import LoadResult, load
from bench.report import Report
from bench.rows import size_label
from db.embedded import EmbeddedPostgres

WEBHOOK_CONCURRENCY = (1, 16, 64)
OFFERED_RATE = 200.0
LATENCY_MS = 100
BROWSER_SENDS = 12
BASELINE_SIZE = 400_000  # enough open invoices for the baseline comparison's rounds (about 11,600)


@dataclass
class Config:
    sizes: list[int]
    only: list[str]
    smoke: bool
    seed: int
    anchor: datetime
    started_at: datetime
    command: str
    commit: str = ""
    baseline: str | None = None  # commit whose webhook sidecar is measured beside HEAD's


@dataclass
class Results:
    loads: list[LoadResult] = field(default_factory=list)
    dashboard: dict[int, list[dashboard_bench.PageResult]] = field(default_factory=dict)
    breakdown: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    rollup_build_ms: dict[int, float] = field(default_factory=dict)  # size -> first build of collections_daily
    queue: dict[int, queue_bench.QueueRun] = field(default_factory=dict)
    webhook: object | None = None
    webhook_size: int = 0
    baseline: object | None = None  # bench.webhook_baseline.BaselineResult
    send: list[object] = field(default_factory=list)
    send_browser: object | None = None  # bench.send_browser.BrowserSends
    driveway: object | None = None  # bench.driveway_bench.DrivewayResult
    skipped: dict[str, str] = field(default_factory=dict)  # part -> why not measured
    errors: dict[str, str] = field(default_factory=dict)  # part -> what went wrong
    postgres: str = "?"
    machine: list[tuple[str, str]] = field(default_factory=list)  # described when the run starts


class Runner:
    def __init__(self, cfg: Config, report: Report, log_dir: Path, keep: bool = False) -> None:
        self.cfg, self.report, self.log_dir, self.keep = cfg, report, log_dir, keep
        self.results = Results()

    def _available(self, key: str) -> bool:
        if key not in self.cfg.only:
            self.results.skipped[key] = "not selected (--only)"
            return False
        missing = parts.missing(parts.PARTS[key])
        if missing:
            self.results.skipped[key] = f"{parts.PARTS[key].title.lower()} not on main yet ({', '.join(missing)})"
            print(f"not measured: {key} not on main yet ({', '.join(missing)})", flush=True)
            return False
        return True

    def run(self) -> None:
        cfg, res = self.cfg, self.results
        do = {k: self._available(k) for k in ("dashboard", "queue", "webhook", "send", "driveway")}
        sized = any(do[k] for k in ("dashboard", "queue", "webhook"))  # `--only send` loads no sizes
        with bench_server(keep=self.keep) as server:
            for n, size in enumerate(cfg.sizes if sized else []):
                label = size_label(size)
                url = fresh_database(server, f"bench_{label.lower()}")
                if not res.machine:
                    res.postgres = server_version(url)
                    res.machine = machine.describe(res.postgres)
                print(f"[{label}] loading {size} invoices ...", flush=True)
                loaded = load(url, size, cfg.anchor, cfg.seed)
                res.loads.append(loaded)
                print(f"[{label}] loaded in {loaded.seconds:.1f}s: {loaded.rows}", flush=True)
                if do["dashboard"]:
                    self._guard("dashboard", lambda u=url, s=size: self._dashboard(u, s))
                if do["queue"]:
                    self._guard("queue", lambda u=url, s=size: self._queue(u, s))
                last = n == len(cfg.sizes) - 1
                if last and do["webhook"]:
                    self._guard("webhook", lambda u=url, s=size: self._webhook(u, s))
                if not last:
                    time.sleep(0.1)
                    drop_database(server, f"bench_{label.lower()}")  # free the disk before the next size
            if do["webhook"] and cfg.baseline:
                self._guard("baseline", lambda: self._baseline(server))
            if do["send"]:
                self._guard("send", lambda: self._send(fresh_database(server, "bench_send")))
            if do["driveway"]:
                self._guard("driveway", lambda: self._driveway(fresh_database(server, "bench_driveway")))

    def _guard(self, key: str, fn: object) -> None:
        """A failing part is reported with its error; the others still run."""
        import traceback

        assert callable(fn)
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported in the doc, the run goes on
            traceback.print_exc()
            self.results.errors[key] = f"{type(exc).__name__}: {str(exc)[:300]}"

    def _dashboard(self, url: str, size: int) -> None:
        label = size_label(size)
        big = size >= 1_000_000
        reps = 2 if self.cfg.smoke else (3 if big else 5)
        print(f"[{label}] dashboard ...", flush=True)
        self.results.rollup_build_ms[size] = dashboard_bench.build_rollup(url)
        print(f"[{label}]   collections roll-up built in {self.results.rollup_build_ms[size]:.0f} ms", flush=True)
        self.results.dashboard[size] = dashboard_bench.run(url, self.cfg.started_at, reps, 1, trace_naive=not big)
        self.results.breakdown[size] = dashboard_bench.breakdown(url, self.cfg.started_at)
        for r in self.results.dashboard[size]:
            print(f"[{label}]   {r.page}: {r.median_ms:.0f} ms, +{r.rss_delta_mb:.0f} MB RSS", flush=True)

    def _queue(self, url: str, size: int) -> None:
        print(f"[{size_label(size)}] reminder queueing ...", flush=True)
        run = queue_bench.run(url, self.cfg.anchor, reps=2 if self.cfg.smoke else 3)
        self.results.queue[size] = run
        for r in run.results:
            print(f"[{size_label(size)}]   {r.label}: due {r.due}, {r.median_ms:.1f} ms", flush=True)

    def _webhook(self, url: str, size: int) -> None:
        from bench import webhook_bench

        print(f"[{size_label(size)}] webhook sidecar ...", flush=True)
        per_phase = 60 if self.cfg.smoke else 1500
        seconds = 1.0 if self.cfg.smoke else 10.0
        self.results.webhook = webhook_bench.run(url, self.log_dir, WEBHOOK_CONCURRENCY, per_phase, OFFERED_RATE,
                                                 seconds)
        self.results.webhook_size = size

    def _baseline(self, server: EmbeddedPostgres) -> None:
        from bench import webhook_baseline

        assert self.cfg.baseline
        size = 4000 if self.cfg.smoke else BASELINE_SIZE
        print(f"webhook sidecar against the baseline {self.cfg.baseline} ...", flush=True)
        self.results.baseline = webhook_baseline.run(
            server, size, self.cfg.baseline, self.cfg.anchor, self.cfg.seed, self.log_dir, OFFERED_RATE,
            rounds=2 if self.cfg.smoke else webhook_baseline.ROUNDS)

    def _send(self, url: str) -> None:
        from bench import send_bench

        print("send via Stripe ...", flush=True)
        self.results.send = list(send_bench.run(url, LATENCY_MS, invoices=2 if self.cfg.smoke else 4))
        if self.cfg.smoke:
            return  # the browser part starts the whole system and Chromium: not for a smoke run
        from bench import send_browser

        print(f"send in the browser ({BROWSER_SENDS} sends) ...", flush=True)
        self.results.send_browser = send_browser.run(BROWSER_SENDS)

    def _driveway(self, url: str) -> None:
        from bench import driveway_bench

        print("driveway: text the pay link, pay, watch for Paid ...", flush=True)
        self.results.driveway = driveway_bench.run(url, runs=5 if self.cfg.smoke else 25)

    def finish(self, seconds: float, failed: bool = False) -> None:
        render.render(self.report, self.cfg, self.results, seconds, failed)

