"""Recovery after a SIGKILL mid-fan-out: how long until every remaining household is handed
to the carrier, against the time the carrier's rate alone needs for them (the baseline,
computed in the same run from what was left at the kill).

Goal (issue 12): every remaining household handed over within 10 s plus the time its
channel's rate needs. The service runs as a real process (``incident serve``), the carrier
(the drill carrier, a Twilio-compatible server) in a process of its own, the broker is Tansu.

    .venv/bin/python -m bench.recovery [--households 1500] [--rate 100] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tests.support.env import POSTGRES_URL, Broker, postgres_schema
from tests.support.processes import Carrier, Faults, carrier_process, declare_and_approve, sending_service
from tests.support.wait import wait_until

from incident.carriersim.config import DrillConfig, SmsOutcome


async def one_run(store_url: str, broker: Broker, households: int, rate: float, tmp: Path) -> str:
    config = DrillConfig(latency_ms=(20, 200), sms_mix={SmsOutcome.delivered: 1.0}, seed=1)
    async with carrier_process(config) as carrier:
        faults = Faults(tmp, broker, store_url)
        service, numbers = await sending_service(faults, carrier, tmp, households, rate)
        try:
            await service.start()
            await declare_and_approve(service)
            await wait_until(lambda: _reached(carrier, len(numbers) // 3), "a third sent", limit=300)
            await service.kill()
            killed_at = time.monotonic()
            left = len(numbers) - len(await carrier.messages())
            await service.start()
            restarted_s = time.monotonic() - killed_at
            await wait_until(lambda: _reached(carrier, len(numbers)), "everyone sent", limit=600)
            done_s = time.monotonic() - killed_at
            sent = await carrier.count_by_number()
            await service.stop()
        finally:
            await service.kill()
    twice = sum(1 for c in sent.values() if c > 1)
    bound = left / rate
    return (
        f"  {left:>5} households left at the kill; rate alone needs {bound:6.1f} s\n"
        f"  service back (process start to listening) {restarted_s:5.1f} s after the kill\n"
        f"  all handed over {done_s:6.1f} s after the kill: {done_s - bound:+5.1f} s over the rate"
        f" (goal: at most +10 s)   ratio {bound / done_s:.2f}\n"
        f"  numbers sent twice: {twice}; numbers never sent: {len(numbers - set(sent))}"
    )


async def _reached(carrier: Carrier, n: int) -> bool:
    return len(await carrier.messages()) >= n


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--postgres", default=POSTGRES_URL, help='"" to skip PostgreSQL')
    args = parser.parse_args(argv)
    broker = Broker()
    try:
        print(f"Recovery after SIGKILL mid-fan-out: {args.households} SMS at {args.rate:g}/s")
        with tempfile.TemporaryDirectory() as tmp:
            print("SQLite")
            print(await one_run(f"sqlite:///{tmp}/bench.db", broker, args.households, args.rate, Path(tmp)))
        if args.postgres:
            async with postgres_schema(args.postgres, "bench") as url:
                with tempfile.TemporaryDirectory() as tmp:
                    print("PostgreSQL")
                    print(await one_run(url, broker, args.households, args.rate, Path(tmp)))
    finally:
        broker.stop()


if __name__ == "__main__":
    import sys

    asyncio.run(main(sys.argv[1:]))
