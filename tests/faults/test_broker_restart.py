"""A Kafka broker restart while the service ingests (both stores).

What this proves: the broker going away and coming back (memory-only Tansu: it comes back
empty, as a cluster's replacement broker without the topic's data would) neither stops nor
wedges the service: `/healthz` names the broker while it is gone, the topics are created
again, and every report produced after the restart is stored, as is every report stored
before it; nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from incident.adapters.kafka import broker_binary, tansu_command
from tests.support.env import Broker
from tests.support.processes import Faults, Service, report
from tests.support.wait import wait_until


class RestartableBroker(Broker):
    """The test broker, stopped and started again on the same port."""

    def crash(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.proc = subprocess.Popen(
            tansu_command(broker_binary(), "127.0.0.1", self.port),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def own_broker() -> Iterator[RestartableBroker]:
    b = RestartableBroker()
    yield b
    b.stop()


async def produce(bootstrap: str, topic: str, ids: list[str], first: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for i, rid in enumerate(ids):
            await producer.send(topic, value=report(rid, first + i), key=rid.encode())
            if i % 50 == 0:
                await asyncio.sleep(0.02)
        await producer.flush()
    finally:
        await producer.stop()


async def stored_ids(faults: Faults) -> set[str]:
    store = faults.store()
    await store.open()
    try:
        return {s.report.report_id for s in await store.list_reports(limit=100_000)}
    finally:
        await store.close()


async def test_a_broker_restart_mid_stream_loses_nothing_it_delivered(
    own_broker: RestartableBroker, store_url: str, tmp_path: Path
) -> None:
    faults = Faults(tmp_path, own_broker, store_url)
    service = await faults.service()
    try:
        await stream_across_a_restart(faults, own_broker, service)
    finally:
        await service.kill()


async def stream_across_a_restart(faults: Faults, own_broker: RestartableBroker, service: Service) -> None:
    await service.start()
    before = [f"before-{i}" for i in range(500)]
    after = [f"after-{i}" for i in range(500)]
    await produce(own_broker.bootstrap, faults.reports_topic, before, 0)

    async def have(ids: list[str]) -> bool:
        return set(ids) <= await stored_ids(faults)

    await wait_until(lambda: have(before), "the reports sent before the restart stored", limit=60)
    await asyncio.to_thread(own_broker.crash)

    async def broker_named() -> bool:
        status, body = await service.health()
        return status == 503 and body["checks"]["broker"] != "ok"

    await wait_until(broker_named, "/healthz naming the broker while it is down", limit=30)
    await asyncio.to_thread(own_broker.restart)

    async def healthy() -> bool:
        status, _ = await service.health()
        return status == 200

    await wait_until(healthy, "/healthz back to 200 after the broker came back", limit=60)
    await produce(own_broker.bootstrap, faults.reports_topic, after, 500)
    await wait_until(lambda: have(after), "the reports sent after the restart stored", limit=60)
    assert await stored_ids(faults) == set(before) | set(after)
    assert await service.stop() == 0, service.log_tail()
