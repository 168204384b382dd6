"""The one way a test waits for something the app does in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    check: Callable[[], Awaitable[T]], what: str = "the condition", limit: float = 30.0, every: float = 0.1
) -> T:
    """Poll ``check`` until it returns something true, and return that; fail naming ``what``
    after ``limit`` seconds."""
    try:
        async with asyncio.timeout(limit):
            while not (result := await check()):
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"{what}: not seen within {limit:.0f} s") from None
    return result


class QuickTime:
    """A clock for the carrier's rate limits on which time runs ``factor`` times faster than
    the wall's: a fan-out paced at 3 a second takes a tenth of the time at ``factor=10``, and
    every pacing decision (what is taken ahead, what waits) is the same as at the real rate."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._start = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._start) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.factor)
