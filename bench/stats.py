"""Small numeric helpers: latency percentiles and a timer (pure)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def latency(seconds: list[float]) -> Latency:
    """Percentiles of a sample of durations in seconds ('inclusive' method: within the observed range)."""
    if not seconds:
        return Latency(float("nan"), float("nan"), float("nan"), float("nan"))
    ms = sorted(s * 1000 for s in seconds)
    if len(ms) == 1:
        return Latency(ms[0], ms[0], ms[0], ms[0])
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return Latency(q[49], q[94], q[98], ms[-1])


def fmt_ms(value: float) -> str:
    if value != value:  # NaN
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def fmt_mb(value: float) -> str:
    return f"{value:.1f}"
