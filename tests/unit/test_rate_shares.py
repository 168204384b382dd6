"""A rate shared by several instances: each bucket runs at its share, on a fake clock."""

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


def _busiest_second(times: list[float]) -> int:
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


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
