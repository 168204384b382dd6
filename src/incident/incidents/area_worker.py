"""Area geometry off the event loop, with a time limit.

Buffering, unions and household queries are CPU work in Shapely, NumPy and pyproj; on the
event loop one large area would stop every other request. :class:`AreaWorker` runs them in
threads of its own (not the default executor, which the stores use), and answers a request
whose computation runs past ``[area] compute_timeout_s`` with 422 ``area_too_complex``
while the service goes on answering. A thread cannot be killed, so the computation also
gets a :class:`~incident.incidents.areas.Deadline` it checks between steps: it stops soon after the
limit instead of running on. One step is bounded by the input limits
(:class:`~incident.incidents.areas.AreaLimits`, the radius bound), not by the clock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from incident.core.errors import Busy
from incident.incidents.areas import DEFAULT_LIMITS, AreaLimits, Deadline, too_complex

T = TypeVar("T")


class AreaWorker:
    def __init__(self, limits: AreaLimits = DEFAULT_LIMITS, timeout_s: float = 5.0, threads: int = 2) -> None:
        self.limits = limits
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="area")

    async def run(self, work: Callable[[Deadline], T]) -> T:
        """``work(deadline)`` in a worker thread; its answer, or an error at the time limit."""
        deadline = Deadline(self.timeout_s)
        started = threading.Event()

        def job() -> T:
            started.set()
            deadline.check()  # waited in the queue past the limit: do not start at all
            return work(deadline)

        future = asyncio.get_running_loop().run_in_executor(self._pool, job)
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            if not started.is_set():
                raise Busy(
                    f"every area worker was busy for {self.timeout_s:g} s (slow areas of other "
                    "requests): try again shortly",
                    code="area_busy",
                ) from None
            raise too_complex(self.timeout_s) from None

    def close(self) -> None:
        """Drop queued work; threads still running stop at their deadline's next check."""
        self._pool.shutdown(wait=False, cancel_futures=True)
