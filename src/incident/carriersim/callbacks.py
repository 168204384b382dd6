"""Posting webhooks as Twilio does, on time: a signed form poster and one scheduler.

The scheduler keeps one heap of due steps for every message and call, one timer task and a
fixed pool of workers; a message's next step is pushed only after its previous one was
posted, so each message's callbacks leave in order (unless the plan reordered them on
purpose). Thousands of messages in flight cost heap entries, not tasks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import hmac
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from incident.carriersim.outcome import Step

__all__ = ["Chain", "PostResult", "Scheduler", "WebhookPoster"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PostResult:
    status: int
    text: str


class WebhookPoster:
    """Posts form-encoded webhooks signed with ``X-Twilio-Signature`` (HMAC-SHA1 of the URL
    and the sorted fields, keyed with the auth token), as Twilio does."""

    def __init__(self, session: aiohttp.ClientSession, auth_token: str, timeout_s: float) -> None:
        self._session = session
        self._key = auth_token.encode()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def sign(self, url: str, params: dict[str, str]) -> str:
        """Twilio's signature: base64 of HMAC-SHA1 over the URL followed by each field's name and
        value, fields sorted by name. Computed here, not with the twilio library: the simulator
        stands for Twilio, and the service checks it with the library's own validator."""
        data = url + "".join(name + params[name] for name in sorted(params))
        return base64.b64encode(hmac.new(self._key, data.encode(), hashlib.sha1).digest()).decode()

    async def post(
        self, url: str, params: dict[str, str], *, method: str = "POST", idempotency_token: str = ""
    ) -> PostResult:
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if idempotency_token:
            headers["I-Twilio-Idempotency-Token"] = idempotency_token
        if method == "GET":
            full = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
            headers["X-Twilio-Signature"] = self.sign(full, {})
            request = self._session.get(URL(full, encoded=True), headers=headers, timeout=self._timeout)
        else:
            headers["X-Twilio-Signature"] = self.sign(url, params)
            request = self._session.post(
                URL(url, encoded=True), data=params, headers=headers, timeout=self._timeout
            )
        async with request as response:
            return PostResult(response.status, await response.text())


@dataclass(slots=True, eq=False)
class Chain(Generic[T]):
    """The remaining steps of one message or call, run one after the other."""

    record: T
    steps: tuple[Step, ...]
    #: ``time.monotonic()`` of the create: step offsets count from here.
    base: float
    index: int = 0
    #: Status callbacks posted so far (a call's SequenceNumber).
    posted: int = 0

    @property
    def step(self) -> Step:
        return self.steps[self.index]


class Scheduler(Generic[T]):
    """Runs each chain's steps at their times with at most ``concurrency`` posts at once."""

    def __init__(self, run: Callable[[Chain[T]], Awaitable[None]], concurrency: int) -> None:
        self._run = run
        self._concurrency = concurrency
        self._heap: list[tuple[float, int, Chain[T]]] = []
        self._order = itertools.count()
        self._ready: asyncio.Queue[Chain[T]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending = 0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pending(self) -> int:
        """Chains with steps still to run."""
        return self._pending

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._timer(), name="drill-callback-timer"))
        for i in range(self._concurrency):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"drill-callback-worker-{i}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def submit(self, chain: Chain[T]) -> None:
        if not chain.steps:
            return
        self._pending += 1
        self._idle.clear()
        self._push(chain)

    async def wait_idle(self) -> None:
        """Until every submitted chain has run all its steps."""
        await self._idle.wait()

    def _push(self, chain: Chain[T]) -> None:
        due = chain.base + chain.step.offset
        heapq.heappush(self._heap, (due, next(self._order), chain))
        if self._heap[0][2] is chain:
            self._wake.set()

    async def _timer(self) -> None:
        heap = self._heap
        while True:
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                self._ready.put_nowait(heapq.heappop(heap)[2])
            self._wake.clear()
            if not heap:
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(heap[0][0] - now):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _worker(self) -> None:
        while True:
            chain = await self._ready.get()
            try:
                await self._run(chain)
            except Exception:
                log.exception("drill carrier: a callback step failed")
            chain.index += 1
            if chain.index < len(chain.steps):
                self._push(chain)
            else:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()
