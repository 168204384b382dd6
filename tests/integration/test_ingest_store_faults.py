"""Ingest through PostgreSQL backends terminated again and again: no good report is
dead-lettered, none is lost, none is stored twice (real broker, real PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from incident.adapters.kafka import BrokerMonitor
from incident.core.clock import ManualClock
from incident.settings import load_settings
from incident.store import open_store
from tests.support.env import Broker, kafka_env
from tests.support.ingest import Harness, report, settled, total
from tests.support.rows import terminate_backends
from tests.support.wait import wait_until

REPORTS = 3000


@pytest.mark.postgres
async def test_terminated_backends_during_ingest_dead_letter_no_good_report(
    broker: Broker, postgres_schema_url: str, clock: ManualClock
) -> None:
    app = f"incident-test-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_schema_url}&application_name={app}"
    env = {"INCIDENT_STORE__URL": url, **kafka_env(broker, consume=True)}
    settings = await asyncio.to_thread(load_settings, None, env)  # reads time-zone files
    monitor = BrokerMonitor(broker.bootstrap, settings.kafka)
    await monitor.start()  # creates the topics
    await monitor.close()
    store = open_store(settings.store, clock)
    await store.open()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(REPORTS):
            location = {"lon": -85.0 + (i % 60) * 0.5, "lat": 30.0 + (i // 60) * 0.5}
            await producer.send(settings.kafka.reports_topic, report(f"r-{i}", location=location))
        await producer.flush()
        harness = Harness(settings, store, broker.bootstrap)
        stop = asyncio.Event()
        killer = asyncio.create_task(terminate_backends(postgres_schema_url, app, stop))
        try:
            async with harness.ingestor():
                await wait_until(lambda: settled(harness, REPORTS), "every report settled", limit=90)
        finally:
            stop.set()
            killed = await killer
        assert killed > 0
        assert total(harness.metrics.reports_dead_lettered) == 0
        assert total(harness.metrics.reports_stored) == REPORTS
        assert await harness.stored() == REPORTS
    finally:
        await producer.stop()
        await store.close()
