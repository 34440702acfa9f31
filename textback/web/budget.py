"""How many requests a session may make per second: the web app shares the daemon's event
loop, so a page fetched in a tight loop (a script, a stuck tab) must not take the loop from
the send path.

A token bucket per session: ``rate`` requests a second on average, ``burst`` at once (a page
and its CSS, JS and live fragment). A person clicking never meets it; a loop gets 429 with
Retry-After, and a 429 costs the loop almost nothing. The live-update stream is one
long request and is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RequestBudget:
    def __init__(self, rate: float = 10.0, burst: float = 60.0, max_keys: int = 1000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> float:
        """0 when the request may go (one token taken), else seconds until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.pop(next(iter(self._buckets)))
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate
