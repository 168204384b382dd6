"""The ingest loop: reports from Kafka into the store, exactly once in effect.

For each batch: decode and validate every message; copy the bad ones unchanged to the
dead-letter topic (acknowledged by the broker) with headers naming the error; store the good
ones and their correlation in one transaction (a known ``report_id`` changes nothing); only
then commit the offsets. A crash anywhere before the commit replays the batch, and the
replay changes nothing. If the store or the broker fails, the consumer goes back to the
batch's first offsets and tries again: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from incident.errors import StoreError
from incident.kafka import make_consumer, make_producer
from incident.metrics import Metrics
from incident.reports import RejectCode, ReportRejected, ReportStatus, StoredReport, parse_report
from incident.settings import Settings
from incident.store import Store
from incident.store.base import Appended, IncomingReport, IngestResult
from incident.triage import TriageService, ingest_planner

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
#: Test seam: awaited after the store has a batch and before its offsets are committed.
AfterStore = Callable[[Batch], Awaitable[None]]


def dead_letter_headers(
    msg: ConsumerRecord[bytes, bytes], rejected: ReportRejected
) -> list[tuple[str, bytes]]:
    own = [
        ("error.code", rejected.code.value.encode()),
        ("error.message", rejected.message[:500].encode()),
        ("original.topic", msg.topic.encode()),
        ("original.partition", str(msg.partition).encode()),
        ("original.offset", str(msg.offset).encode()),
        ("original.timestamp", str(msg.timestamp).encode()),
    ]
    return [*(msg.headers or ()), *own]


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        store: Store,
        triage: TriageService,
        metrics: Metrics,
        *,
        embedded: bool,
        after_store: AfterStore | None = None,
    ) -> None:
        self._settings = settings
        self._kafka = settings.kafka
        self._bootstrap = bootstrap
        self._store = store
        self._triage = triage
        self._metrics = metrics
        self._embedded = embedded
        self._after_store = after_store
        self._planner = ingest_planner(settings.correlation)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self._idle = True
        self._consumer_started = False

    async def start(self) -> None:
        """Nothing to wait for: :meth:`run` connects (and keeps trying while Kafka is down)."""

    async def _connect(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._producer = make_producer(self._bootstrap)
                await self._producer.start()
                self._consumer = make_consumer(self._bootstrap, self._kafka, embedded=self._embedded)
                self._consumer_started = True  # so stop() leaves the group even if start is cut short
                await self._consumer.start()
                return
            except KafkaError as err:
                self._metrics.ingest_errors.labels("kafka").inc()
                log.error("cannot reach Kafka at %s (%s); retrying in %.1fs", self._bootstrap, err, backoff)
                await self.stop()
                await self._pause(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    def assignment(self) -> set[TopicPartition]:
        """The partitions this instance reads now (empty before it has joined the group)."""
        if self._consumer is None or not self._consumer_started:
            return set()
        return set(self._consumer.assignment())

    @property
    def idle(self) -> bool:
        """Waiting for messages, with no batch in hand: safe to cancel."""
        return self._idle

    def request_stop(self) -> None:
        """Finish the batch in hand, commit it, and leave :meth:`run`."""
        self._stopping.set()

    async def stop(self) -> None:
        # Leaving the group hands our partitions over at once; uncommitted work is replayed
        # by whoever takes them, and the replay changes nothing.
        if self._consumer is not None and self._consumer_started:
            await self._consumer.stop()
        self._consumer = None
        self._consumer_started = False
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def run(self) -> None:
        # Joining the group takes a while (the broker holds JoinGroup): do it here, in the
        # background, so the service answers HTTP meanwhile.
        await self._connect()
        backoff = 0.2
        while not self._stopping.is_set():
            assert self._consumer is not None
            try:
                self._idle = True
                batch: Batch = await self._consumer.getmany(
                    timeout_ms=500, max_records=self._kafka.batch_size
                )
                self._idle = False
                if batch:
                    await self.handle(batch)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the loop must outlive any one failure
                stage = (
                    "store"
                    if isinstance(err, StoreError)
                    else "kafka"
                    if isinstance(err, KafkaError)
                    else "other"
                )
                self._metrics.ingest_errors.labels(stage).inc()
                log.error(
                    "ingest batch failed (%s: %s); retrying in %.1fs",
                    stage,
                    err,
                    backoff,
                    exc_info=stage == "other",
                )
                self._idle = True
                await self._pause(backoff)
                backoff = min(backoff * 2, 10.0)

    async def handle(self, batch: Batch) -> None:
        assert self._consumer is not None
        try:
            await self._handle(batch)
        except BaseException:
            # Go back to where this batch began so it is read again, not skipped.
            for tp, msgs in batch.items():
                if tp in self._consumer.assignment():
                    self._consumer.seek(tp, msgs[0].offset)
            raise

    async def _dead_letter(
        self, msg: ConsumerRecord[bytes, bytes], rejected: ReportRejected
    ) -> Awaitable[Any]:
        assert self._producer is not None
        sent: Awaitable[Any] = await self._producer.send(
            self._kafka.dead_letter_topic,
            value=msg.value,
            key=msg.key,
            headers=dead_letter_headers(msg, rejected),
        )
        return sent

    async def _store_reports(
        self, good: list[IncomingReport], sources: list[ConsumerRecord[bytes, bytes]]
    ) -> IngestResult:
        """Store the batch; if the store refuses it for good (not a passing fault), store the
        reports one by one and dead-letter the ones it refuses, so one report that the schema
        let through but the database will not take never stops the flow."""
        try:
            return await self._store.ingest_reports(good, self._planner)
        except StoreError as err:
            if err.retryable:
                raise
            log.warning("the store refused a batch (%s); storing its reports one by one", err.message)
        except Exception as err:  # refused in a way we did not foresee: same treatment
            log.warning("the store refused a batch (%s); storing its reports one by one", type(err).__name__)
        stored: list[StoredReport] = []
        duplicates: list[str] = []
        appended: list[Appended] = []
        for item, msg in zip(good, sources, strict=True):
            try:
                one = await self._store.ingest_reports([item], self._planner)
            except StoreError as err:
                if err.retryable:
                    raise
                problem = err.message
            except Exception as err:
                problem = f"{type(err).__name__}: {err}"
            else:
                stored += one.stored
                duplicates += one.duplicates
                appended += one.appended
                continue
            rejected = ReportRejected(RejectCode.store_rejected, problem[:500])
            self._metrics.reports_dead_lettered.labels(rejected.code.value).inc()
            log.warning("dead-lettered %s/%d/%d: store_rejected", msg.topic, msg.partition, msg.offset)
            await (await self._dead_letter(msg, rejected))
        return IngestResult(stored, duplicates, appended)

    async def _handle(self, batch: Batch) -> None:
        assert self._consumer is not None
        assert self._producer is not None
        metrics = self._metrics
        good: list[IncomingReport] = []
        sources: list[ConsumerRecord[bytes, bytes]] = []
        dead: list[Awaitable[Any]] = []
        kafka_times: dict[str, float] = {}
        for msgs in batch.values():
            for msg in msgs:
                metrics.reports_consumed.inc()
                try:
                    report = parse_report(msg.value, self._kafka.max_report_bytes)
                except ReportRejected as rejected:
                    metrics.reports_dead_lettered.labels(rejected.code.value).inc()
                    log.warning(
                        "dead-lettered %s/%d/%d: %s",
                        msg.topic,
                        msg.partition,
                        msg.offset,
                        rejected.code.value,
                    )
                    dead.append(await self._dead_letter(msg, rejected))
                    continue
                good.append(IncomingReport(report, f"{msg.topic}/{msg.partition}/{msg.offset}"))
                sources.append(msg)
                kafka_times[report.report_id] = msg.timestamp / 1000
        if dead:
            await asyncio.gather(*dead)  # dead letters are safe before the offsets move
        if good:
            result = await self._store_reports(good, sources)
            now = time.time()
            metrics.reports_stored.inc(len(result.stored))
            metrics.reports_duplicate.inc(len(result.duplicates))
            for stored in result.stored:
                report = stored.report
                metrics.report_observed_to_stored.observe(max(0.0, now - report.observed_at.timestamp()))
                metrics.report_kafka_to_stored.observe(max(0.0, now - kafka_times[report.report_id]))
            self._triage.publish(
                result.appended, [s for s in result.stored if s.status == ReportStatus.unassigned]
            )
        if self._after_store is not None:
            await self._after_store(batch)
        await self._consumer.commit({tp: msgs[-1].offset + 1 for tp, msgs in batch.items()})
        lag = 0
        for tp, msgs in batch.items():
            high = self._consumer.highwater(tp)
            if high is not None:
                lag += max(0, high - (msgs[-1].offset + 1))
        metrics.consumer_lag.set(lag)
