"""Fault injection on incoming API requests: error statuses, hangs, and added latency.

A rule matches on service, HTTP method and path (shell-style wildcards allowed).
Rules with a ``status`` or ``timeout_s`` are consumed one hit at a time when they
have ``times``; rules with only ``latency_ms`` slow down every matching call. A ``hold``
rule keeps every matching call waiting until the rule is deleted or the faults are
cleared: a test that needs a call to be in flight waits on a condition, not on a clock.
``phase: "after"`` runs the real handler first and then answers with the fault,
which is how a response lost on the wire looks to a client.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

_ids = itertools.count(1)
SERVICES = ("stripe", "resend", "twilio")


class FaultSpecError(ValueError):
    pass


@dataclass
class FaultRule:
    id: str
    service: str | None = None
    method: str | None = None
    path: str | None = None
    status: int | None = None
    times: int | None = None
    timeout_s: float = 0.0
    latency_ms: int = 0
    phase: str = "before"
    message: str | None = None
    should_retry: bool | None = None
    hold: bool = False
    hits: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    @property
    def is_latency_only(self) -> bool:
        return self.status is None and not self.timeout_s

    def matches(self, service: str, method: str, path: str) -> bool:
        if self.service and self.service != service:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path and not (self.path == path or fnmatch.fnmatchcase(path, self.path)):
            return False
        return self.times is None or self.times > 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("released")
        return out


@dataclass
class FaultPlan:
    latency_s: float = 0.0
    hang_s: float = 0.0
    status: int | None = None
    phase: str = "before"
    message: str | None = None
    should_retry: bool | None = None
    rule_id: str | None = None
    holds: list[asyncio.Event] = field(default_factory=list)

    async def delay(self) -> None:
        """The added latency, a hang, and every hold until it is released."""
        if self.latency_s or self.hang_s:
            await asyncio.sleep(self.latency_s + self.hang_s)
        for held in self.holds:
            await held.wait()


class FaultBook:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, spec: dict[str, Any]) -> FaultRule:
        known = {"service", "method", "path", "status", "times", "timeout_s", "latency_ms",
                 "phase", "message", "should_retry", "hold"}
        unknown = set(spec) - known
        if unknown:
            raise FaultSpecError(f"unknown fault fields: {sorted(unknown)}")
        service = spec.get("service")
        if service is not None and service not in SERVICES:
            raise FaultSpecError(f"service must be one of {SERVICES}")
        status = spec.get("status")
        if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
            raise FaultSpecError("status must be an integer HTTP error status (400-599)")
        phase = spec.get("phase", "before")
        if phase not in ("before", "after"):
            raise FaultSpecError("phase must be 'before' or 'after'")
        times = spec.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise FaultSpecError("times must be a positive integer")
        rule = FaultRule(
            id=f"fault_{next(_ids)}", service=service, method=spec.get("method"),
            path=spec.get("path"), status=status, times=times,
            timeout_s=float(spec.get("timeout_s") or 0.0),
            latency_ms=int(spec.get("latency_ms") or 0), phase=phase,
            message=spec.get("message"), should_retry=spec.get("should_retry"), hold=bool(spec.get("hold")),
        )
        if rule.is_latency_only and not rule.latency_ms and not rule.hold:
            raise FaultSpecError("a fault needs status, timeout_s, latency_ms or hold")
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.remove(lambda _rule: True)

    def remove(self, which: Any) -> bool:
        """Delete the rules `which(rule)` picks, releasing the calls they hold."""
        gone = [r for r in self.rules if which(r)]
        self.rules = [r for r in self.rules if not which(r)]
        for rule in gone:
            rule.released.set()
        return bool(gone)

    def plan(self, service: str, method: str, path: str) -> FaultPlan:
        """Decide what happens to this request, consuming one hit of the first error rule."""
        plan = FaultPlan()
        consumed = False
        for rule in self.rules:
            if not rule.matches(service, method, path):
                continue
            plan.latency_s += rule.latency_ms / 1000.0
            if rule.hold:
                plan.holds.append(rule.released)
            if rule.is_latency_only:
                rule.hits += 1
                continue
            if consumed:
                continue
            consumed = True
            rule.hits += 1
            if rule.times is not None:
                rule.times -= 1
            plan.hang_s = rule.timeout_s
            plan.status = rule.status
            plan.phase = rule.phase
            plan.message = rule.message
            plan.should_retry = rule.should_retry
            plan.rule_id = rule.id
        return plan
