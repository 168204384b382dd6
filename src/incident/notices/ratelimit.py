"""A token bucket: over any stretch of ``t`` seconds at most ``rate * t + burst`` sends.

The burst defaults to a hundredth of a second's worth (at least one send): enough to absorb
the event loop's timer jitter (a bucket of one loses every oversleep, and a fan-out runs at
half its rate), small enough that a carrier's per-second limit holds within 1% in every
second, not only on average (a full bucket of ``rate`` would allow twice the rate at first).

Several instances share one carrier account's rate: each runs at its share
(:meth:`TokenBucket.set_share`, from the fan-out's Kafka partitions), and an instance whose
share is nothing waits until it has one.
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
        #: The whole rate, and this bucket's part of it (all of it unless shared).
        self.full_rate = rate
        self.rate = rate
        self._burst = burst
        self.capacity = max(1.0, rate / 100 if burst is None else burst)
        self._now = clock.now
        self._sleep = clock.sleep
        self._tokens = self.capacity
        self._stamp = clock.now()
        self._lock = asyncio.Lock()
        self._sharing = asyncio.Event()
        self._sharing.set()

    @property
    def share(self) -> float:
        return self.rate / self.full_rate

    def set_share(self, share: float) -> None:
        """Run at ``share`` (0..1) of the full rate from now on; 0 stops sends until a share
        comes back. Tokens saved at the old rate are kept, up to the new capacity."""
        share = min(1.0, max(0.0, share))
        self._refill()
        self.rate = self.full_rate * share
        self.capacity = max(1.0, self.rate / 100 if self._burst is None else self._burst * share)
        self._tokens = min(self._tokens, self.capacity)
        if self.rate > 0:
            self._sharing.set()
        else:
            self._sharing.clear()

    def _refill(self) -> None:
        now = self._now()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self) -> None:
        async with self._lock:  # first come, first served: no starvation under load
            while True:
                if self.rate <= 0:
                    await self._sharing.wait()
                    self._stamp = self._now()  # nothing accrues while the share is nothing
                    continue
                self._refill()
                if self._tokens >= 1 - 1e-9:  # rounding must not leave a send waiting forever
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)
