"""What the app holds of Kafka while it runs: the embedded broker (if any), the health
monitor, and the ingest loop with its task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from incident.adapters.kafka import BrokerMonitor, EmbeddedBroker
from incident.core.metrics import Metrics
from incident.intake.ingest import Ingestor
from incident.intake.triage import TriageService
from incident.settings import Settings
from incident.store import Store

log = logging.getLogger(__name__)


@dataclass
class KafkaRuntime:
    bootstrap: str
    broker: EmbeddedBroker | None
    monitor: BrokerMonitor
    ingestor: Ingestor
    task: asyncio.Task[None] | None


@contextlib.asynccontextmanager
async def kafka_runtime(
    settings: Settings, store: Store, triage: TriageService, metrics: Metrics
) -> AsyncIterator[KafkaRuntime]:
    k = settings.kafka
    broker: EmbeddedBroker | None = None
    if not k.bootstrap_servers:
        broker = EmbeddedBroker(k.embedded_listener)
        try:
            await broker.start()
        except BaseException:
            await broker.close()
            raise
    bootstrap = broker.bootstrap if broker else k.bootstrap_servers
    monitor = BrokerMonitor(
        bootstrap, k, on_status=lambda up: metrics.kafka_up.set(1 if up else 0),
        extra_topics=[settings.notify.jobs_topic],
    )  # fmt: skip
    ingestor = Ingestor(settings, bootstrap, store, triage, metrics, embedded=broker is not None)
    try:
        await monitor.start()
        task: asyncio.Task[None] | None = None
        if k.consume_reports:
            await ingestor.start()
            task = asyncio.create_task(ingestor.run(), name="ingest")
        yield KafkaRuntime(bootstrap, broker, monitor, ingestor, task)
        if task is None:
            return
        ingestor.request_stop()
        if ingestor.idle:
            task.cancel()  # nothing in hand: no need to wait for the poll to time out
        try:
            async with asyncio.timeout(settings.http.shutdown_timeout):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        except TimeoutError:
            log.warning("ingest did not finish its batch in time; it will be replayed at the next start")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await ingestor.stop()
        await monitor.close()
        if broker is not None:
            await broker.close()
