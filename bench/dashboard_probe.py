"""One page's data in a fresh process: wall time per run and the memory the data costs.

Run by bench.dashboard_bench as `python -m bench.dashboard_probe URL PAGE REPS NOW`; prints
one JSON line. A fresh process per page keeps peak RSS honest: ru_maxrss only grows, so
the peak after the runs minus the peak before them is what the page's data needed (pandas
and psycopg are imported before the baseline, as they are in the dashboard process).
tracemalloc's peak (Python allocations only) comes from one extra, separately timed run.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import tracemalloc
from datetime import datetime

import pandas  # noqa: F401 - part of the baseline, as in the dashboard process
import psycopg
from psycopg.rows import dict_row

from bench.dashboard_pages import PAGES


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> None:
    url, page, reps, now_text = argv[0], argv[1], int(argv[2]), argv[3]
    trace = len(argv) < 5 or argv[4] == "trace"
    fn = PAGES[page]
    now = datetime.fromisoformat(now_text)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        conn.execute("SELECT 1")
        base = rss_mb()
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            fn(conn, now)
            conn.rollback()
            times.append(time.perf_counter() - started)
        peak = rss_mb()
        traced_peak = -1024 * 1024  # -1 MB: not traced (too slow for the naive path at 1M)
        if trace:
            tracemalloc.start()
            fn(conn, now)
            conn.rollback()
            _, traced_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    print(json.dumps({"times": times, "rss_base_mb": base, "rss_peak_mb": peak,
                      "traced_peak_mb": traced_peak / 1024 / 1024}))


if __name__ == "__main__":
    main(sys.argv[1:])
