"""Report ingest throughput and latency on the embedded broker, against a plain aiokafka loop.

    python -m bench.ingest [--reports N] [--rate R] [--seconds S]

Throughput: N reports already on the topic; ours = the real ingest loop (decode, validate,
dead-letter check, correlate, store in SQLite, commit offsets); baseline = a plain aiokafka
consumer group loop that only reads the same messages from the same broker and commits.
Latency: reports produced at a steady R per second for S seconds; time from the Kafka
message timestamp (set at produce) to stored, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from incident.adapters.kafka import BrokerMonitor, EmbeddedBroker
from incident.core.clock import SystemClock
from incident.core.metrics import Metrics
from incident.incidents.live import LiveHub
from incident.incidents.service import IncidentService
from incident.intake.ingest import Batch, Ingestor
from incident.intake.triage import TriageService
from incident.settings import load_settings
from incident.store import open_store


def report(i: int, run: str) -> bytes:
    return orjson.dumps({
        "report_id": f"{run}-{i}", "kind": "low_pressure", "utility": "water", "source": "scada",
        "observed_at": "2026-11-22T08:15:00+00:00",
        # Spread out: each report is its own triage item, the common case at volume.
        "location": {"lon": -85.9 + (i % 1000) * 0.001, "lat": 37.9 + (i // 1000 % 100) * 0.003},
        "asset": {"type": "sensor", "id": f"PT-{i % 5000}"}, "severity": "medium",
        "summary": "pressure below 20 psi at sensor", "details": {"psi": 17.5},
    })  # fmt: skip


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=262_144)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=str(i).encode()) for i, v in enumerate(values)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def plain_loop(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"plain-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=2000,
        heartbeat_interval_ms=300, max_poll_records=500,
    )  # fmt: skip
    await consumer.start()
    try:
        seen, started = 0, 0.0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            if batch and not started:
                started = time.perf_counter()
            for msgs in batch.values():
                seen += len(msgs)
            if batch:
                await consumer.commit({tp: msgs[-1].offset + 1 for tp, msgs in batch.items()})
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


class Ours:
    def __init__(self, bootstrap: str, topic: str, db: Path) -> None:
        self.settings = load_settings(None, {
            "INCIDENT_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "INCIDENT_KAFKA__REPORTS_TOPIC": topic,
            "INCIDENT_KAFKA__DEAD_LETTER_TOPIC": topic + ".dlq", "INCIDENT_KAFKA__GROUP_ID": f"ours-{topic}",
            "INCIDENT_KAFKA__SESSION_TIMEOUT_MS": "2000", "INCIDENT_KAFKA__HEARTBEAT_INTERVAL_MS": "300",
            "INCIDENT_STORE__URL": f"sqlite:///{db}",
        })  # fmt: skip
        self.bootstrap = bootstrap
        self.metrics = Metrics()
        self.latencies: list[float] = []
        self.first_batch = 0.0

    async def after_store(self, batch: Batch) -> None:
        now = time.time()
        if not self.first_batch:
            self.first_batch = time.perf_counter()
        for msgs in batch.values():
            self.latencies += [now - m.timestamp / 1000 for m in msgs]

    async def run_until(self, n: int) -> float:
        store = open_store(self.settings.store, SystemClock())
        await store.open()
        triage = TriageService(IncidentService(store, LiveHub(self.metrics, 10), self.metrics))
        ingestor = Ingestor(self.settings, self.bootstrap, store, triage, self.metrics, embedded=False,
                            after_store=self.after_store)  # fmt: skip
        await ingestor.start()
        task = asyncio.create_task(ingestor.run())
        try:
            while self.metrics.reports_stored._value.get() < n:  # noqa: ASYNC110 - polling a counter
                await asyncio.sleep(0.005)
            return time.perf_counter()
        finally:
            ingestor.request_stop()
            await task
            await ingestor.stop()
            await store.close()


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)

    broker = EmbeddedBroker("127.0.0.1:0")
    await broker.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            topic = f"bench-{uuid.uuid4().hex[:6]}"
            ours = Ours(broker.bootstrap, topic, Path(tmp) / "ingest.db")
            monitor = BrokerMonitor(broker.bootstrap, ours.settings.kafka)
            await monitor.start()
            await monitor.close()
            run = uuid.uuid4().hex[:6]
            await produce(broker.bootstrap, topic, [report(i, run) for i in range(args.reports)])
            base = await plain_loop(broker.bootstrap, topic, args.reports)
            done = await ours.run_until(args.reports)
            rate = args.reports / (done - ours.first_batch)
            print(f"Ingest throughput, {args.reports} reports on the embedded broker (Tansu), SQLite store")
            print(f"  baseline: plain aiokafka consume+commit loop   {base:>9,.0f} reports/s")
            ratio = rate / base
            print(f"  ours: decode, validate, correlate, store, commit {rate:>9,.0f}/s  ratio {ratio:.2f}")

            # Steady load: produce at a fixed rate, measure produce -> stored.
            topic2 = f"bench-{uuid.uuid4().hex[:6]}"
            steady = Ours(broker.bootstrap, topic2, Path(tmp) / "steady.db")
            monitor = BrokerMonitor(broker.bootstrap, steady.settings.kafka)
            await monitor.start()
            await monitor.close()
            total = args.rate * args.seconds
            consumer = asyncio.create_task(steady.run_until(total))
            await asyncio.sleep(3)  # let the consumer join its group first
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
            await producer.start()
            run2 = uuid.uuid4().hex[:6]
            started = time.perf_counter()
            for i in range(total):
                target = started + i / args.rate
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await producer.send(topic2, report(i, run2))
            await producer.flush()
            await producer.stop()
            await consumer
            lat = sorted(steady.latencies)
            p50 = statistics.median(lat) * 1000
            p99 = lat[int(len(lat) * 0.99) - 1] * 1000
            print(f"Latency at a steady {args.rate} reports/s for {args.seconds} s (produce -> stored)")
            print(f"  p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   max {lat[-1] * 1000:6.1f} ms")
    finally:
        await broker.close()


if __name__ == "__main__":
    asyncio.run(main())
