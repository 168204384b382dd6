"""The live feed across instances: what one instance publishes, every other one's clients see.

Each instance writes the messages of its live hub (:class:`incident.incidents.live.LiveHub`,
which hands them to :meth:`LiveBridge.relay`) to one Kafka topic
(one partition, so every instance reads them in the order they were written) and reads that
topic from its end, without a consumer group: every instance reads everything, skipping
what it wrote itself (its own clients had it at once). The feed stays best-effort, as it is
within one instance: a message lost while the broker is away is caught up by the console
from the timeline when it reconnects; sending never waits on Kafka (a bounded queue, whose
overflow is counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Literal

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from incident.adapters.kafka import ensure_topics
from incident.core.metrics import Metrics

log = logging.getLogger(__name__)

#: What a live message is about: an incident's event, its delivery counts, or a report.
MessageKind = Literal["event", "deliveries", "report"]
#: Hands a message another instance wrote to this instance's clients.
Deliver = Callable[[MessageKind, str, str], None]

_INSTANCE = "instance"
_KIND = "kind"
#: Messages waiting to be written; more are dropped (and counted), never waited for.
OUTBOX = 10_000
#: Pause before trying again after the broker failed us.
RETRY_S = 1.0


class LiveBridge:
    def __init__(self, deliver: Deliver, bootstrap: str, topic: str, metrics: Metrics) -> None:
        self._deliver_here = deliver
        self._bootstrap = bootstrap
        self._topic = topic
        self._metrics = metrics
        self.instance = uuid.uuid4().hex
        self._outbox: asyncio.Queue[tuple[MessageKind, str, str]] = asyncio.Queue(OUTBOX)
        self._tasks: list[asyncio.Task[None]] = []
        #: Set once this instance reads the topic (messages written after it are seen).
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write(), name="live-bridge-write"),
            asyncio.create_task(self._read(), name="live-bridge-read"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def relay(self, kind: MessageKind, incident_id: str, message: str) -> None:
        """A message of this instance, for the others (never waits: a full queue drops it)."""
        try:
            self._outbox.put_nowait((kind, incident_id, message))
        except asyncio.QueueFull:
            self._metrics.live_bridge.labels(direction="dropped").inc()

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            await ensure_topics(admin, [self._topic], 1)
        finally:
            await admin.close()

    async def _write(self) -> None:
        while True:
            producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks=1, linger_ms=5)
            try:
                await producer.start()
                while True:
                    kind, incident_id, message = await self._outbox.get()
                    await producer.send(
                        self._topic, message.encode(), key=incident_id.encode(),
                        headers=[(_INSTANCE, self.instance.encode()), (_KIND, kind.encode())],
                    )  # fmt: skip
                    self._metrics.live_bridge.labels(direction="out").inc()
            except (KafkaError, OSError) as err:
                log.warning("live feed bridge: writing to %s failed (%s); trying again", self._topic, err)
            finally:
                with contextlib.suppress(Exception):
                    await producer.stop()
            await asyncio.sleep(RETRY_S)

    async def _read(self) -> None:
        part = TopicPartition(self._topic, 0)
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                fetch_max_wait_ms=50,
            )
            try:
                await self._ensure_topic()
                await consumer.start()
                consumer.assign([part])
                await consumer.seek_to_end(part)
                await consumer.position(part)  # resolves the end now: later messages are read
                self.listening.set()
                while True:
                    batches = await consumer.getmany(timeout_ms=500)
                    for record in (r for records in batches.values() for r in records):
                        self._deliver(record.headers, record.key, record.value)
            except (KafkaError, OSError) as err:
                log.warning("live feed bridge: reading %s failed (%s); trying again", self._topic, err)
            except Exception:  # the bridge outlives any one failure: consoles would go quiet
                log.exception("live feed bridge: reading %s failed; trying again", self._topic)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(RETRY_S)

    def _deliver(self, headers: object, key: bytes | None, value: bytes | None) -> None:
        found = dict(headers) if isinstance(headers, (list, tuple)) else {}
        if found.get(_INSTANCE) == self.instance.encode():
            return
        kind = found.get(_KIND)
        try:
            # Only what an instance writes goes to the consoles: JSON, a known kind, text ids.
            incident_id = (key or b"").decode()
            message = value.decode() if value is not None else ""
            msgspec.json.decode(message)
        except (UnicodeDecodeError, msgspec.DecodeError):
            kind = None
        if kind == b"event":
            self._deliver_here("event", incident_id, message)
        elif kind == b"deliveries":
            self._deliver_here("deliveries", incident_id, message)
        elif kind == b"report":
            self._deliver_here("report", incident_id, message)
        else:
            self._metrics.live_bridge.labels(direction="unreadable").inc()
            return
        self._metrics.live_bridge.labels(direction="in").inc()
