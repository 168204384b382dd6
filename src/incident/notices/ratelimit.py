"""A token bucket: over any stretch of ``t`` seconds at most ``rate * t + burst`` sends.

The burst defaults to a hundredth of a second's worth (at least one send): enough to absorb
the event loop's timer jitter (a bucket of one loses every oversleep, and a fan-out runs at
half its rate), small enough that a carrier's per-second limit holds within 1% in every
second, not only on average (a full bucket of ``rate`` would allow twice the rate at first).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class RateClock(Protocol):
    """Seconds for a rate limit: where they are read and how they are waited for."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class WallClock:
    """The monotonic clock and the event loop's sleep."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


WALL = WallClock()


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None, *, clock: RateClock = WALL) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate / 100 if burst is None else burst)
        self._now = clock.now
        self._sleep = clock.sleep
        self._tokens = self.capacity
        self._stamp = clock.now()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:  # first come, first served: no starvation under load
            while True:
                now = self._now()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1 - 1e-9:  # rounding must not leave a send waiting forever
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)
