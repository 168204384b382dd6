"""Notification fan-out against a local zero-latency Twilio-compatible server (the drill
carrier with callbacks off), against a plain aiohttp loop posting the same requests.

    python -m bench.fanout [--deliveries N] [--households M] [--rounds R]

1. Hand-over: N approved SMS deliveries in SQLite; ours = the real engine (outbox ->
   Kafka notify jobs on the embedded broker -> senders that take each delivery by
   compare-and-set -> the twilio library -> the carrier -> the answer recorded); baseline =
   a plain aiohttp loop posting the same Messages.json requests, same concurrency.
2. Planning and rendering for M households (default 1,000,000): households in priority
   order -> deliveries (one per channel and address) -> rendered text for each, with the
   peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from incident.adapters.carriers import TwilioCarrier
from incident.adapters.kafka import BrokerMonitor, EmbeddedBroker
from incident.carriersim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DrillConfig
from incident.carriersim.server import serve_drill
from incident.core.clock import SystemClock, isoformat
from incident.core.domain import Kind, Utility
from incident.deliveries.records import Delivery, Notice
from incident.deliveries.states import DeliveryState
from incident.households.model import Channel
from incident.notices.context import NoticeContext, TemplateKey
from incident.notices.fanout import NotifyEngine
from incident.notices.planner import AudienceCounts, plan_deliveries
from incident.notices.service import load_notice_templates
from incident.settings import BUNDLED_DIR, load_settings
from incident.store import open_store
from incident.store.ports import PutNotice

CONCURRENCY = 64


def bench_context(incident_id: str) -> NoticeContext:
    return NoticeContext(
        utility_name="Sampletown Water",
        utility_phone="+1 555 0100",
        utility_url="https://sampletown.example",
        incident_id=incident_id,
        kind=Kind.main_break,
        utility=Utility.water,
        area="Maple St",
    )


def language_of(i: int) -> str:
    return "en" if i % 5 else "zh-CN"


async def plain_loop(url: str, n: int) -> float:
    """The same requests as ours (same rendered bodies, same language mix), nothing else."""
    settings = await asyncio.to_thread(load_settings, None, {})
    templates = await asyncio.to_thread(load_notice_templates, settings.notify)
    cache = templates.cache(bench_context("INC-2026-000001"))
    bodies = {
        lang: cache.render(TemplateKey.boil_water.value, Channel.sms, lang).text for lang in ("en", "zh-CN")
    }
    headers = {"Authorization": aiohttp.encode_basic_auth(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)}
    endpoint = f"{url}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
    counter = iter(range(n))
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker() -> None:
            for i in counter:
                form = {
                    "To": f"+1502{i:07d}",
                    "From": "+15005550006",
                    "Body": bodies[language_of(i)],
                    "StatusCallback": "http://127.0.0.1:9/hooks/twilio/status",
                }
                async with session.post(endpoint, data=form) as resp:
                    assert resp.status == 201, await resp.text()
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - started)


async def ours(url: str, n: int, tmp: Path) -> float:
    broker = EmbeddedBroker("127.0.0.1:0")
    await broker.start()
    suffix = uuid.uuid4().hex[:6]
    settings = await asyncio.to_thread(
        load_settings,
        None,
        {
            "INCIDENT_STORE__URL": f"sqlite:///{tmp / 'fanout.db'}",
            "INCIDENT_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
            "INCIDENT_NOTIFY__JOBS_TOPIC": f"jobs-{suffix}",
            "INCIDENT_NOTIFY__QUIET_HOURS": "",
            "INCIDENT_TWILIO__MESSAGES_PER_SECOND": "1000000",
            "INCIDENT_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "INCIDENT_KAFKA__HEARTBEAT_INTERVAL_MS": "300",
        },
    )
    store = open_store(settings.store, SystemClock())
    await store.open()
    monitor = BrokerMonitor(broker.bootstrap, settings.kafka, extra_topics=[settings.notify.jobs_topic])
    await monitor.start()
    await monitor.close()
    templates = await asyncio.to_thread(load_notice_templates, settings.notify)

    # A notice needs an incident: make one the usual way.
    from incident.core import domain

    appended = await store.create_incident(
        lambda _id: domain.declare(
            domain.Declaration(
                kind=Kind.main_break, utility=Utility.water, title="bench", severity=domain.Severity.high
            ),
            "bench",
            owner="bench",
        )
    )
    iid = appended.incident.id
    context = bench_context(iid)
    import msgspec

    now = isoformat(SystemClock().now())
    await store.apply_plan(
        [
            PutNotice(
                Notice(
                    notice_id=f"{iid}-N1",
                    incident_id=iid,
                    template="boil_water",
                    channels=["sms"],
                    status="approved",
                    created_by="bench",
                    created_at=now,
                    context=msgspec.to_builtins(context),
                )
            )
        ]
    )
    for start in range(0, n, 10_000):
        await store.add_deliveries(
            [
                Delivery(
                    delivery_id=f"{iid}-N1:{i}",
                    notice_id=f"{iid}-N1",
                    incident_id=iid,
                    seq=i,
                    channel="sms",
                    address=f"+1502{i:07d}",
                    account_id=f"A{i}",
                    language=language_of(i),
                    priority_rank=3,
                    state=DeliveryState.planned,
                    updated_at=now,
                )
                for i in range(start, min(n, start + 10_000))
            ]
        )
    carrier = TwilioCarrier(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, url)
    accepted: list[int] = []
    engine = NotifyEngine(
        settings,
        store,
        templates,
        carrier,
        SystemClock(),
        broker.bootstrap,
        embedded=True,
        from_number="+15005550006",
        public_url=lambda: "http://127.0.0.1:9",
        on_change=lambda d: accepted.append(1) if d.state is DeliveryState.accepted else None,
    )
    await engine.start()
    tasks = [asyncio.create_task(engine.run_worker()), asyncio.create_task(engine.run_dispatcher())]
    try:
        await asyncio.sleep(1.5)  # the worker joins its group before the clock starts
        started = time.perf_counter()
        while len(accepted) < n:  # noqa: ASYNC110 - counted from the engine callback, no store polling
            await asyncio.sleep(0.05)
        return n / (time.perf_counter() - started)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.stop()
        await carrier.close()
        await store.close()
        await broker.close()


def plan_and_render(m: int) -> tuple[float, float, int]:
    from bench.geo_synth import households
    from incident.households.files import read_network

    network = read_network(BUNDLED_DIR / "sample/network.inp")
    table = households(network, m)
    settings = load_settings(None, {})
    templates = load_notice_templates(settings.notify)
    context = NoticeContext(
        utility_name="Sampletown Water",
        utility_phone="+1 555 0100",
        utility_url="https://sampletown.example",
        incident_id="INC-2026-000001",
        kind=Kind.main_break,
        utility=Utility.water,
        area="Maple St",
    )
    started = time.perf_counter()
    cache = templates.cache(context)
    counts = AudienceCounts()
    chars = 0
    planned = 0
    for d in plan_deliveries(iter(table), [Channel.sms, Channel.voice], counts):
        chars += len(cache.render(TemplateKey.boil_water.value, d.channel, d.language).text)
        planned += 1
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return seconds, peak_mb, planned


def _drill_process(ready: multiprocessing.Queue[str]) -> None:
    """The carrier in a process of its own, as Twilio is: the engine's event loop is then
    measured alone, not sharing its CPU with the server it calls."""

    async def serve() -> None:
        async with serve_drill(DrillConfig(callbacks=False)) as drill:
            ready.put(drill.url)
            await asyncio.Event().wait()

    asyncio.run(serve())


@contextlib.asynccontextmanager
async def carrier_process() -> AsyncIterator[str]:
    spawn = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue[str] = spawn.Queue()
    carrier = spawn.Process(target=_drill_process, args=(ready,), daemon=True)
    carrier.start()
    try:
        yield await asyncio.to_thread(ready.get, True, 30)
    finally:
        carrier.terminate()
        await asyncio.to_thread(carrier.join, 10)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="baseline/ours pairs, alternated (the median ratio is the result)",
    )
    args = parser.parse_args(argv)
    pairs: list[tuple[float, float]] = []
    # Alternated, so a slow minute of this machine (a VM: its neighbours vary) weighs on both
    # sides of a pair rather than on one; each side against a carrier of its own, since the
    # drill carrier keeps every message it took and slows as they pile up.
    for _ in range(args.rounds):
        async with carrier_process() as url:
            base = await plain_loop(url, args.deliveries)
        async with carrier_process() as url:
            with tempfile.TemporaryDirectory() as tmp:
                rate = await ours(url, args.deliveries, Path(tmp))
        pairs.append((base, rate))
    print(f"Fan-out of {args.deliveries:,} SMS to a local Twilio-compatible server, {args.rounds} rounds")
    print("(the drill carrier in a process of its own, no callbacks)")
    for n, (base, rate) in enumerate(pairs, 1):
        print(
            f"  round {n}: baseline (plain aiohttp loop, {CONCURRENCY} at once) {base:>7,.0f} requests/s;"
            f" ours (outbox -> Kafka -> sender -> twilio) {rate:>7,.0f} notices/s; ratio {rate / base:.2f}"
        )
    ratios = sorted(rate / base for base, rate in pairs)
    rates = sorted(rate for _, rate in pairs)
    print(f"  median: ours {statistics.median(rates):,.0f} notices/s, ratio {statistics.median(ratios):.2f}")
    seconds, peak, planned = await asyncio.to_thread(plan_and_render, args.households)
    print(f"Planning and rendering for {args.households:,} households (sms + voice): {planned:,} deliveries")
    print(f"  {seconds:.1f} s, peak resident memory {peak:,.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
