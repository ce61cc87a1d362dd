"""Per-key rate limits: a token bucket per key id, in each server process (N workers allow up to N times
the rate in all)."""
from __future__ import annotations

import math
import threading
import time
from typing import Optional


class RateLimiter:
    def __init__(self, rate: float, burst: Optional[float] = None):
        self.rate = rate  # requests a second; 0 turns limiting off
        self.burst = burst if burst is not None else max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> Optional[int]:
        """None when the request may go ahead; else the seconds to wait (for Retry-After)."""
        if self.rate <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.rate))
