"""Dashboard data: each page's queries against the naive DataFrame approach, per size."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.parts import ROOT


@dataclass(frozen=True)
class PageResult:
    page: str
    first_ms: float
    median_ms: float
    rss_delta_mb: float
    rss_peak_mb: float
    traced_peak_mb: float
    reps: int


def probe(url: str, page: str, reps: int, now: datetime, trace: bool = True) -> PageResult:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "bench.dashboard_probe", url, page, str(reps), now.isoformat(),
                          "trace" if trace else "no-trace"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"dashboard probe {page} failed: {out.stderr.strip()[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    times = [t * 1000 for t in data["times"]]
    return PageResult(page, times[0], statistics.median(times), data["rss_peak_mb"] - data["rss_base_mb"],
                      data["rss_peak_mb"], data["traced_peak_mb"], len(times))


def run(url: str, now: datetime, reps: int, naive_reps: int, trace_naive: bool) -> list[PageResult]:
    results = [probe(url, "collections", reps, now), probe(url, "invoices", reps, now)]
    results += [probe(url, "naive_collections", naive_reps, now, trace_naive),
                probe(url, "naive_invoices", naive_reps, now, trace_naive)]
    return results


class _TimingConn:
    """Wraps a connection; records each execute's time under the name of the function that called it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.timings: dict[str, float] = {}

    def execute(self, query: Any, params: Any = None) -> Any:
        caller = sys._getframe(1).f_code.co_name
        started = time.perf_counter()
        cur = self._conn.execute(query, params)
        self.timings[caller] = self.timings.get(caller, 0.0) + (time.perf_counter() - started) * 1000
        return cur

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def build_rollup(url: str) -> float:
    """Build crm.collections_daily once, committed, as the first page read after the migration
    (or a time zone change) does; milliseconds. The loader's COPY fires no triggers, so the
    roll-up starts empty; the page measurements after it are the steady state."""
    import psycopg

    from bench.dashboard_pages import TZ

    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("SELECT crm.refresh_collections_daily(%s)", (TZ,))
        return (time.perf_counter() - started) * 1000


def breakdown(url: str, now: datetime) -> dict[str, dict[str, float]]:
    """Milliseconds per query function of each SQL page (second, warm run)."""
    import psycopg
    from psycopg.rows import dict_row

    from bench.dashboard_pages import collections_page, invoices_page

    out: dict[str, dict[str, float]] = {}
    with psycopg.connect(url, row_factory=dict_row) as conn:
        for name, fn in (("collections", collections_page), ("invoices", invoices_page)):
            fn(conn, now)
            timed = _TimingConn(conn)
            fn(timed, now)  # type: ignore[arg-type]
            conn.rollback()
            out[name] = timed.timings
    return out
