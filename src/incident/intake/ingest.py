"""The ingest loop: reports from Kafka into the store, exactly once in effect.

For each batch: decode and validate every message; copy the bad ones to the dead-letter
topic (acknowledged by the broker) with headers naming the error; store the good ones and
their correlation in one transaction (a known ``report_id`` changes nothing); only then
commit the offsets. A crash anywhere before the commit replays the batch, and the replay
changes nothing. If the store or the broker fails, the consumer goes back to the batch's
first offsets and tries again: nothing is skipped.

Every message costs at most itself:

- whatever goes wrong while decoding or validating one message (even ``RecursionError``)
  dead-letters that message (code ``unparseable`` for the unforeseen), never the batch;
- a batch the store refuses for good is stored report by report, and only the refused
  ones are dead-lettered (``store_rejected``);
- a value larger than the dead-letter topic takes (the producer refuses a request over
  ``max_request_size``, 1 MiB by default, before sending) is cut to
  :data:`DEAD_LETTER_MAX_VALUE` bytes, with headers ``original.sha256`` (hex, of the whole
  value) and ``original.size``; original headers and key too large to carry are dropped
  (``original.headers_dropped``, ``original.key_size``);
- a dead-letter publish that fails (the topic refuses, the broker is down) is retried, each
  try bounded, with backoff, until it is taken: nothing is skipped, and while no progress is
  made for ``[kafka] stall_after_s`` with reports waiting, :meth:`Ingestor.stall` says why
  (``/healthz`` 503 naming ``ingest``; ``incident_ingest_stalled`` 1).

Dead-letter copies: within one process a message is dead-lettered once, however often its
batch is retried (the offsets already copied are remembered until committed). After a crash
or a rebalance before the commit, the batch is replayed and its bad messages are copied
again (as may be a publish whose try timed out after all reaching the broker); every copy
carries the same ``original.topic`` / ``original.partition`` / ``original.offset`` headers,
so readers of the dead-letter topic can drop duplicates by them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from incident.adapters.kafka import (
    Batch,
    BrokerError,
    Consumer,
    Producer,
    Record,
    TopicPartition,
    make_consumer,
    make_producer,
)
from incident.core.errors import StoreError
from incident.core.metrics import Metrics
from incident.intake.triage import TriageService, ingest_planner
from incident.reports.model import RejectCode, ReportRejected, ReportStatus, StoredReport, parse_report
from incident.settings import Settings
from incident.store import Store
from incident.store.ports import Appended, IncomingReport, IngestResult

log = logging.getLogger(__name__)

#: Test seam: awaited after the store has a batch and before its offsets are committed.
AfterStore = Callable[[Batch], Awaitable[None]]


#: A dead letter's value is cut to this: well under the producer's ``max_request_size``
#: (1 MiB by default) and a broker's default ``message.max.bytes``, with room for headers.
DEAD_LETTER_MAX_VALUE = 512 * 1024
#: The original key and headers are carried while together they stay under this.
DEAD_LETTER_MAX_EXTRA = 128 * 1024
#: The longest one dead-letter publish may take (the producer's own timeout is 10 s).
DEAD_LETTER_TRY_S = 15.0


@dataclass(frozen=True)
class DeadLetterRecord:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter_headers(msg: Record, rejected: ReportRejected) -> list[tuple[str, bytes]]:
    own = [
        ("error.code", rejected.code.value.encode()),
        ("error.message", rejected.message[:500].encode()),
        ("original.topic", msg.topic.encode()),
        ("original.partition", str(msg.partition).encode()),
        ("original.offset", str(msg.offset).encode()),
        ("original.timestamp", str(msg.timestamp).encode()),
    ]
    return [*(msg.headers or ()), *own]


def dead_letter_record(msg: Record, rejected: ReportRejected) -> DeadLetterRecord:
    """What goes to the dead-letter topic for ``msg``: unchanged when it fits, else cut."""
    key, value = msg.key, msg.value
    theirs = list(msg.headers or ())
    own = dead_letter_headers(msg, rejected)[len(theirs) :]
    if value is not None and len(value) > DEAD_LETTER_MAX_VALUE:
        own += [
            ("original.sha256", hashlib.sha256(value).hexdigest().encode()),
            ("original.size", str(len(value)).encode()),
        ]
        value = value[:DEAD_LETTER_MAX_VALUE]
    if len(key or b"") + sum(len(k) + len(v) for k, v in theirs) > DEAD_LETTER_MAX_EXTRA:
        own.append(("original.headers_dropped", str(len(theirs)).encode()))
        theirs = []
        if key is not None and len(key) > 1024:
            own.append(("original.key_size", str(len(key)).encode()))
            key = key[:1024]
    return DeadLetterRecord(key, value, [*theirs, *own])


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
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._stopping = asyncio.Event()
        self._idle = True
        self._consumer_started = False
        #: Offsets copied to the dead-letter topic and not committed yet: a retried batch
        #: does not copy them again.
        self._dead_lettered: dict[TopicPartition, set[int]] = {}
        # Stall watch: when ingest last moved, whether reports wait, and what holds them.
        self._last_progress = time.monotonic()
        self._in_hand = False
        self._lag = 0
        self._problem = ""
        metrics.ingest_stalled.set_function(lambda: 0.0 if self.stall() is None else 1.0)

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
            except BrokerError as err:
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

    def stall(self) -> str | None:
        """Why ingest is stalled, or None: stalled means no progress (a batch committed or a
        message dead-lettered) for ``[kafka] stall_after_s`` while reports wait (a batch in
        hand, or lag). A Kafka that does not answer is the broker check's to report."""
        if not (self._in_hand or self._lag > 0):
            return None
        idle = time.monotonic() - self._last_progress
        if idle < self._kafka.stall_after_s:
            return None
        why = f": {self._problem}" if self._problem else ""
        return f"stalled: no progress for {idle:.0f}s while reports wait{why}"

    def _progressed(self) -> None:
        self._last_progress = time.monotonic()
        self._problem = ""

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
                self._in_hand = bool(batch)  # a failed batch stays in hand until read again
                if batch:
                    await self.handle(batch)
                    self._in_hand = False
                    self._progressed()
                await self._update_lag()
                if not batch and self._lag == 0:
                    self._progressed()  # nothing waits: up to date is progress
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the loop must outlive any one failure
                stage = (
                    "store"
                    if isinstance(err, StoreError)
                    else "kafka"
                    if isinstance(err, BrokerError)
                    else "other"
                )
                self._metrics.ingest_errors.labels(stage).inc()
                self._problem = f"the batch failed ({stage}: {type(err).__name__})"
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

    async def _update_lag(self) -> None:
        """Messages behind the end of our partitions, from the highwater marks every fetch
        brings (empty ones too): kept current while idle or stuck, at no extra request."""
        consumer = self._consumer
        if consumer is None:
            return
        lag = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue  # not fetched yet: no position to compare with
            try:
                async with asyncio.timeout(1.0):
                    lag += max(0, high - await consumer.position(tp))
            except (BrokerError, TimeoutError):
                continue  # revoked meanwhile
        self._lag = lag
        self._metrics.consumer_lag.set(lag)

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

    def _already_dead(self, msg: Record) -> bool:
        return msg.offset in self._dead_lettered.get(TopicPartition(msg.topic, msg.partition), ())

    async def _try_dead_letter(self, msg: Record, rejected: ReportRejected) -> bool:
        """One bounded try to copy ``msg`` to the dead-letter topic; False if it failed."""
        assert self._producer is not None
        record = dead_letter_record(msg, rejected)
        try:
            async with asyncio.timeout(DEAD_LETTER_TRY_S):
                sent = await self._producer.send(
                    self._kafka.dead_letter_topic, value=record.value, key=record.key, headers=record.headers
                )
                await sent
        except (BrokerError, TimeoutError) as err:
            self._metrics.ingest_errors.labels("dead_letter").inc()
            self._problem = f"the dead-letter topic does not take messages ({type(err).__name__})"
            log.error(
                "dead letter %s/%d/%d not taken (%s); will retry",
                msg.topic,
                msg.partition,
                msg.offset,
                type(err).__name__,
            )
            return False
        self._dead_lettered.setdefault(TopicPartition(msg.topic, msg.partition), set()).add(msg.offset)
        self._metrics.reports_dead_lettered.labels(rejected.code.value).inc()
        log.warning("dead-lettered %s/%d/%d: %s", msg.topic, msg.partition, msg.offset, rejected.code.value)
        self._progressed()
        return True

    async def _dead_letter(self, bad: list[tuple[Record, ReportRejected]]) -> None:
        """Copy every ``bad`` message to the dead-letter topic, acknowledged, before the batch
        goes on; those not taken are retried with backoff until they are (or until stop,
        which leaves the batch uncommitted, to be replayed)."""
        bad = [(m, r) for m, r in bad if not self._already_dead(m)]
        taken = await asyncio.gather(*(self._try_dead_letter(m, r) for m, r in bad))
        backoff = 0.5
        for (msg, rejected), ok in zip(bad, taken, strict=True):
            while not ok:
                if self._stopping.is_set():
                    raise BrokerError("stopping with a dead letter not taken; the batch will be replayed")
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)
                ok = await self._try_dead_letter(msg, rejected)

    async def _store_reports(self, good: list[IncomingReport], sources: list[Record]) -> IngestResult:
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
            await self._dead_letter([(msg, ReportRejected(RejectCode.store_rejected, problem[:500]))])
        return IngestResult(stored, duplicates, appended)

    def _parse(self, msg: Record) -> IncomingReport:
        """One message's report, or :class:`ReportRejected` (``parse_report`` turns anything
        unforeseen into ``unparseable``)."""
        report = parse_report(msg.value, self._kafka.max_report_bytes)
        return IncomingReport(report, f"{msg.topic}/{msg.partition}/{msg.offset}")

    async def _handle(self, batch: Batch) -> None:
        assert self._consumer is not None
        assert self._producer is not None
        metrics = self._metrics
        good: list[IncomingReport] = []
        sources: list[Record] = []
        bad: list[tuple[Record, ReportRejected]] = []
        kafka_times: dict[str, float] = {}
        for msgs in batch.values():
            for msg in msgs:
                metrics.reports_consumed.inc()
                if self._already_dead(msg):
                    continue  # copied when this batch was tried before
                try:
                    item = self._parse(msg)
                except ReportRejected as rejected:
                    bad.append((msg, rejected))
                    continue
                good.append(item)
                sources.append(msg)
                kafka_times[item.report.report_id] = msg.timestamp / 1000
        if bad:
            await self._dead_letter(bad)  # dead letters are safe before the offsets move
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
        committed = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items()}
        await self._consumer.commit(committed)
        self._forget_dead_letters(committed)

    def _forget_dead_letters(self, committed: dict[TopicPartition, int]) -> None:
        """Committed offsets are never read again here: keep only what may still be."""
        assigned = self.assignment()
        for tp in list(self._dead_lettered):
            if tp not in assigned:
                del self._dead_lettered[tp]
            elif tp in committed:
                self._dead_lettered[tp] = {o for o in self._dead_lettered[tp] if o >= committed[tp]}
