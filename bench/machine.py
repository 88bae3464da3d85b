"""The machine a run happened on: cores, memory, CPU model, Postgres and Python versions, load."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def describe(postgres_version: str) -> list[tuple[str, str]]:
    load = _read("/proc/loadavg").split()[:3]
    return [
        ("CPU", f"{cpu_model()}, {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))})"),
        ("Memory", f"{memory_gib():.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Postgres", f"{postgres_version} (embedded, db/embedded.py defaults: shared_buffers 128MB, fsync on)"),
        ("Python", platform.python_version()),
        ("Load average at start", " ".join(load) if load else "unknown"),
    ]
