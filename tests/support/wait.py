"""The one way a test waits for something the app does in the background."""

from __future__ import annotations

import asyncio
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
