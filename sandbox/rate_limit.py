"""A one-second sliding window of requests: Resend's team rate limit.

The window is wall-clock time (time.monotonic), not the sandbox's adjustable clock: a client's
backoff sleeps in real time.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 1.0


class RateLimiter:
    """At most `per_s` requests in any one-second window; 0 or less means no limit."""

    def __init__(self, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = per_s
        self._clock = clock
        self._seen: deque[float] = deque()

    def retry_after(self) -> float | None:
        """Seconds until a request would be allowed, or None (and the request is counted)."""
        if self.per_s <= 0:
            return None
        now = self._clock()
        while self._seen and self._seen[0] <= now - WINDOW_S:
            self._seen.popleft()
        if len(self._seen) >= max(1, int(self.per_s)):
            return self._seen[0] + WINDOW_S - now
        self._seen.append(now)
        return None

    def headers(self, wait_s: float) -> dict[str, str]:
        seconds = str(max(1, math.ceil(wait_s)))
        return {"retry-after": seconds, "ratelimit-limit": str(max(1, int(self.per_s))),
                "ratelimit-remaining": "0", "ratelimit-reset": seconds}
