"""The token bucket on a fake clock: no second ever carries more than the rate (plus the burst)."""

from __future__ import annotations

import asyncio

from incident.notices.ratelimit import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


async def _sends(rate: float, n: int, burst: float | None = None, senders: int = 1) -> list[float]:
    clock = FakeTime()
    bucket = TokenBucket(rate, burst, clock=clock)
    times: list[float] = []
    todo = iter(range(n))

    async def sender() -> None:
        for _ in todo:
            await bucket.take()
            times.append(clock.t)

    await asyncio.gather(*(sender() for _ in range(senders)))
    return sorted(times)


def _busiest_second(times: list[float]) -> int:
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


async def test_no_second_carries_more_than_the_rate() -> None:
    times = await _sends(rate=50, n=500, senders=20)
    assert len(times) == 500
    assert _busiest_second(times) <= 50 + 1
    fast = await _sends(rate=1000, n=3000, senders=50)
    assert _busiest_second(fast) <= 1000 + 10  # within 1%
    assert times[-1] - times[0] >= (500 - 1) / 50 - 1e-6  # and it is not slower than it must be
    assert times[-1] - times[0] <= 500 / 50 + 0.1


async def test_a_burst_is_allowed_only_as_configured() -> None:
    burst = await _sends(rate=10, n=30, burst=10)
    assert _busiest_second(burst) <= 10 + 10
    assert sum(1 for t in burst if t == burst[0]) == 10  # the configured burst goes at once
    steady = await _sends(rate=10, n=30)
    assert sum(1 for t in steady if t == steady[0]) == 1


async def test_a_late_wake_up_is_made_up_within_the_burst() -> None:
    """The loop wakes a sleeping sender late (timer jitter): the credit is not lost."""

    class LateTime(FakeTime):
        async def sleep(self, seconds: float) -> None:
            await super().sleep(seconds * 1.8)  # every sleep overshoots by 80%

    clock = LateTime()
    bucket = TokenBucket(1000, clock=clock)
    start = clock.t
    for _ in range(2000):
        await bucket.take()
    assert clock.t - start <= 2000 / 1000 * 1.05


# --- a rate shared by several instances: each bucket runs at its share ---------------


async def test_buckets_sharing_a_rate_never_exceed_it_together() -> None:
    clock = FakeTime()
    rate = 60.0
    shares = (1 / 6, 2 / 6, 3 / 6)  # partitions held: 1, 2 and 3 of 6
    buckets = [TokenBucket(rate, clock=clock) for _ in shares]
    for bucket, share in zip(buckets, shares, strict=True):
        bucket.set_share(share)
    times: list[float] = []
    per_bucket = [0, 0, 0]

    async def sender(i: int, n: int) -> None:
        for _ in range(n):
            await buckets[i].take()
            times.append(clock.t)
            per_bucket[i] += 1

    # One event loop, one fake clock: each bucket sends its share of 10 seconds' worth.
    await asyncio.gather(*(sender(i, int(rate * s * 10)) for i, s in enumerate(shares)))
    assert per_bucket == [100, 200, 300]
    assert _busiest_second(sorted(times)) <= rate + len(buckets)  # one send of burst each
    assert max(times) - min(times) >= 10 - 1.0  # and none of them went faster than its share


async def test_no_share_waits_until_a_share_comes_back() -> None:
    clock = FakeTime()
    bucket = TokenBucket(10, clock=clock)
    bucket.set_share(0.0)
    taken = asyncio.ensure_future(bucket.take())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not taken.done()
    clock.t += 3600  # a long time with no share earns nothing
    bucket.set_share(0.5)
    await asyncio.wait_for(taken, 1)
    assert bucket.share == 0.5 and bucket.rate == 5
    start = clock.t
    for _ in range(10):
        await bucket.take()
    assert clock.t - start >= (10 - 1) / 5 - 1e-6  # the hour without a share was not saved up


async def test_a_smaller_share_keeps_no_more_tokens_than_it_may_burst() -> None:
    clock = FakeTime()
    bucket = TokenBucket(1000, burst=100, clock=clock)
    bucket.set_share(0.1)
    assert bucket.capacity == 10
    start = clock.t
    for _ in range(20):
        await bucket.take()
    assert clock.t - start >= (20 - 10) / 100 - 1e-6
