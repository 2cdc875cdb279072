"""Per-token rate limits for the API: a token bucket for each API token.

A bucket holds up to ``burst`` requests and refills at ``per_minute / 60`` a second, so a platform
may send a burst after a quiet spell but not more than its rate for long. Buckets live in this
process's memory (one per app, on ``app.extensions``): with several web processes each one allows
the rate, which is the documented trade for not needing Redis on a small install.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

from flask import Flask

EXTENSION_KEY = "modtools_api_buckets"
MAX_BUCKETS = 10_000  # a bound on memory; idle full buckets are dropped first


@dataclass
class Bucket:
    """Tokens left and when they were last counted."""

    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """Token buckets keyed by API token id, shared by the web threads of one process."""

    per_minute: float
    burst: float
    buckets: dict[int, Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: int, cost: float = 1.0, now: float | None = None) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket; 0.0 when allowed, else seconds to wait.

        A cost above the burst is charged as the burst, so a large batch can pass once the bucket
        is full rather than never.
        """
        if self.per_minute <= 0:
            return 0.0  # switched off
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        cost = min(cost, self.burst)
        with self.lock:
            bucket = self.buckets.get(key)
            if bucket is None:
                if len(self.buckets) >= MAX_BUCKETS:
                    self._forget_idle(now, rate)
                bucket = self.buckets[key] = Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / rate

    def _forget_idle(self, now: float, rate: float) -> None:
        full = [
            k for k, b in self.buckets.items() if b.tokens + (now - b.updated) * rate >= self.burst
        ]
        for key in full or list(self.buckets)[: len(self.buckets) // 2]:
            del self.buckets[key]


def limiter_for(app: Flask) -> RateLimiter:
    """The app's limiter, made on first use from ``API_RATE_LIMIT_PER_MINUTE`` and ``_BURST``."""
    limiter = app.extensions.get(EXTENSION_KEY)
    if limiter is None:
        per_minute = float(app.config.get("API_RATE_LIMIT_PER_MINUTE", 600))
        burst = float(app.config.get("API_RATE_LIMIT_BURST") or max(per_minute / 6, 1))
        limiter = app.extensions.setdefault(EXTENSION_KEY, RateLimiter(per_minute, burst))
    return limiter


def retry_after_seconds(wait: float) -> int:
    """The ``Retry-After`` value for a wait: whole seconds, at least one."""
    return max(1, math.ceil(wait))
