"""One pace for every API call of a run: the provider counts them all.

Hand-written around aiolimiter (which does the pacing) because the adaptation is ours: a 429
halves the pace and holds every caller for `Retry-After`, quiet time restores it step by step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
from aiolimiter import AsyncLimiter


class AdaptiveThrottle:
    """One pace for every API call: never above `rate` per second, no bursts.

    A 429 halves the pace and holds every caller for `Retry-After`; each quiet `recover_after`
    seconds raise it by a quarter, back up to `rate`.
    """

    def __init__(
        self,
        rate: float,
        *,
        min_rate: float = 0.2,
        recover_after: float = 5.0,
        sleep: Callable[[float], Any] = anyio.sleep,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.max_rate = self.rate = rate
        self.min_rate = min(min_rate, rate)
        self.recover_after = recover_after
        self.rate_limited = 0
        self._sleep, self._now = sleep, now
        self._limiter = AsyncLimiter(1, 1 / rate)
        self._paused_until = 0.0
        self._changed_at = now()

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        self._limiter = AsyncLimiter(1, 1 / rate)
        self._changed_at = self._now()

    async def acquire(self) -> None:
        wait = self._paused_until - self._now()
        if wait > 0:
            await self._sleep(wait)
        if self.rate < self.max_rate and self._now() - self._changed_at >= self.recover_after:
            self._set_rate(min(self.max_rate, self.rate * 1.25))
        await self._limiter.acquire()

    def on_rate_limited(self, retry_after: float | None) -> None:
        self.rate_limited += 1
        now = self._now()
        if now - self._changed_at > 0.5 or self.rate == self.max_rate:
            self._set_rate(max(self.min_rate, self.rate / 2))
        self._paused_until = max(self._paused_until, now + (retry_after or 1.0))
