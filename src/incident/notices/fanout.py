"""The fan-out: approved deliveries -> Kafka notify jobs (keyed by household) -> senders ->
the carrier, exactly once per delivery.

- The dispatcher takes due deliveries from the store (the outbox), marks each ``queued``
  and publishes a job. Jobs lost with a broker restart are found again: a delivery still
  ``queued`` after ``requeue_s`` goes back to ``planned`` and is published again.
- A sender (any instance in the consumer group) takes a job only by moving its delivery
  ``queued`` -> ``claimed`` (by this instance) in the store (compare-and-set): a replayed or
  duplicated job finds it taken and does nothing. Just before the carrier calls, a few at a
  time, ``claimed`` -> ``sending`` (compare-and-set again): only a delivery this instance
  started is handed to the carrier.
- Claims of an instance that is gone (its lease, renewed every second or so, ran out) are
  released to ``planned`` and sent at once: their carrier call never started.
- A send whose outcome is unknown (the process died between the carrier call and recording
  the answer, or the call got no answer) stays ``sending``: the reconciler asks the carrier
  for messages to that number since the attempt began before anything is sent again. App
  push and email have nothing to ask: such a push or email is given up (``failed``,
  ``outcome_unknown``), never sent twice.
- Email goes to an SMTP server (``[email]``); the server taking it is as far as anyone can
  know (bounces are out of scope), so it is recorded ``delivered`` at once. A 4xx answer or
  a server not reached is retried like an SMS, and so is a refusal before any recipient
  (greeting, login, MAIL FROM: the server's or the configuration's trouble); a 5xx answer
  to the recipient or the message is final (``failed``).
- Whatever goes wrong with one delivery is that delivery's outcome, never its batch's: a
  text that no longer renders is ``failed`` (``not_rendered``); an unexpected error while
  handing it over is ``failed`` (``internal_error``) for a push or email, which nothing can
  be asked about, and left to the reconciler (which asks the carrier) for an SMS or call.
- A delivery the carrier took whose final status never came is looked up by its SID after
  ``finality_after_s`` and settled as if the callback had come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import msgspec

from incident.adapters.carriers import (
    CALL_TIMEOUT_S,
    CONNECTIONS,
    CarrierStatus,
    PushGateway,
    TwilioCarrier,
    twiml_for,
)
from incident.adapters.kafka import Consumer, Producer, group_timeouts, make_producer, partition_of
from incident.adapters.smtp import EmailSender
from incident.core.clock import Clock, isoformat
from incident.core.errors import BrokerError, CarrierError, IncidentError, StoreError
from incident.deliveries.records import Delivery, DeliveryChange, Notice
from incident.deliveries.states import DeliveryState
from incident.households.model import Channel
from incident.notices.context import NoticeContext
from incident.notices.ratelimit import WALL, RateClock, TokenBucket
from incident.notices.templates import NoticeCache, NoticeTemplates, split_email, split_push
from incident.settings import Settings
from incident.store import Store

log = logging.getLogger(__name__)
S = DeliveryState
#: Jobs published and not yet taken by a sender, at most.
MAX_IN_FLIGHT = 2000
#: Deliveries per notify job: a job names the deliveries of one partition's households.
JOB_SIZE = 50
#: Jobs per sender batch (so at most JOB_SIZE x this many deliveries in a batch).
JOBS_PER_BATCH = 10
#: A sender claims only what its channel's rate lets it send this soon.
TAKE_AHEAD_S = 5.0
#: It marks `sending` (carrier call started) what its rate sends this soon, at most
#: ``START_MOST`` at a time: after a crash only those few are looked up, the rest released.
START_AHEAD_S = 0.25
START_MOST = 2 * CONNECTIONS
#: No live sender holds a claim this long (it claims what it sends within seconds): one that
#: old is released whoever holds it (e.g. a start its store write lost).
CLAIM_STALE_S = 60.0
#: Seconds between looks at the fan-out's progress (one read of the store).
PROBE_S = 5.0
#: Deliveries looked up at the carrier per finality sweep, at most.
FINALITY_BATCH = 100
#: Records a carrier status found by a look-up exactly as its callback would have (the
#: webhooks' code); True when it moved the delivery on.
Settle = Callable[[Delivery, CarrierStatus], Awaitable[bool]]
#: Carrier answers wait this long to be recorded together: one transaction for a few
#: hundred answers costs the store far less than one per handful.
FLUSH_AFTER_S = 0.01
#: How long stopping waits for the answers still to be recorded.
CLOSE_WAIT_S = 5.0
#: Channels whose far end keeps nothing to ask: a send with an unknown outcome is given up,
#: never repeated.
NOTHING_TO_ASK = frozenset({Channel.push.value, Channel.email.value})


class NotifyJob(msgspec.Struct, frozen=True, omit_defaults=True):
    """A message on the notify-jobs topic: deliveries of one channel. Jobs of earlier versions
    name no channel (their deliveries are read to learn it), and ``delivery_id`` is the
    one-delivery form of older ones still: both are read so that jobs published before an
    upgrade are not lost."""

    delivery_ids: list[str] = msgspec.field(default_factory=list)
    channel: str = ""
    delivery_id: str = ""

    def ids(self) -> list[str]:
        return [*self.delivery_ids, self.delivery_id] if self.delivery_id else self.delivery_ids


_job = msgspec.json.Encoder()
_read_job = msgspec.json.Decoder(NotifyJob)


def backoff_s(attempt: int, base: float, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter (spreads a 429 storm out instead of echoing it)."""
    return random.uniform(0, min(cap, base * 2 ** max(0, attempt - 1)))  # noqa: S311 - jitter, not secrets


def status_url(base: str, delivery_id: str) -> str:
    """The StatusCallback of one send. It names the delivery: a fast carrier can call back
    before the send's answer (and so the SID) is recorded, and the callback must still find
    its delivery. Twilio signs the whole URL, so the name cannot be forged."""
    return f"{base}/hooks/twilio/status?d={quote_plus(delivery_id)}"


_CHANNELS = {c.value: c for c in Channel}


def _read_jobs(values: list[bytes | None]) -> tuple[dict[Channel, list[str]], list[str]]:
    """The deliveries of a batch of jobs by channel, and those of jobs that name none."""
    by_channel: dict[Channel, list[str]] = {}
    unknown: list[str] = []
    for value in values:
        try:
            job = _read_job.decode(value or b"{}")
            ids = [i for i in job.ids() if i]
        except msgspec.DecodeError:  # not ours to send: skip it, never stop the worker
            log.error("notify job that is not a job skipped")
            continue
        channel = _CHANNELS.get(job.channel)
        if channel is None:  # none (an earlier version) or one unknown here: the store knows
            unknown += ids
        else:
            by_channel.setdefault(channel, []).extend(ids)
    return by_channel, unknown


class _Answers:
    """Carrier answers recorded together, and the future of their recording."""

    __slots__ = ("changes", "recorded")

    def __init__(self, recorded: asyncio.Future[list[Delivery | None]]) -> None:
        self.changes: list[DeliveryChange] = []
        self.recorded = recorded


#: Where an answer will be recorded: its batch's future, and its place in the batch.
Recording = tuple[asyncio.Future[list[Delivery | None]], int]


class AnswerBook:
    """Records carrier answers in one store call per few milliseconds: one transaction for
    a few hundred answers costs the store far less than one each, and one future per batch
    costs the event loop far less than one per answer. The answers that arrive while a
    call is running go in the next one (group commit)."""

    def __init__(self, store: Store, clock: Clock, on_recorded: Callable[[Delivery], None]) -> None:
        self._store = store
        self._clock = clock
        self._on_recorded = on_recorded
        self._filling: _Answers | None = None
        self._flushing: asyncio.Task[None] | None = None

    def submit(self, change: DeliveryChange) -> Recording:
        """Queue ``change``. Its batch's future gives each change's result once recorded
        (None: its precondition no longer held), or the store's error."""
        if self._filling is None:
            self._filling = _Answers(asyncio.get_running_loop().create_future())
        answers = self._filling
        answers.changes.append(change)
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        return answers.recorded, len(answers.changes) - 1

    async def _flush(self) -> None:
        answers: _Answers | None = None
        try:
            await asyncio.sleep(FLUSH_AFTER_S)  # let the answers of the next few ms join
            while self._filling is not None:
                answers, self._filling = self._filling, None
                try:
                    results = await self._store.change_deliveries(
                        answers.changes, isoformat(self._clock.now())
                    )
                except Exception as err:  # those who wait decide what a failed record means
                    log.error(
                        "%d carrier answers not recorded (%s); the reconciler will pick them up",
                        len(answers.changes), err,
                    )  # fmt: skip
                    if not answers.recorded.done():
                        answers.recorded.set_exception(err)
                    continue
                if not answers.recorded.done():
                    answers.recorded.set_result(results)
                for result in results:
                    if result is not None:
                        try:
                            self._on_recorded(result)
                        except Exception:  # a listener's bug must not stall the senders
                            log.exception("listener of delivery changes failed")
                answers = None
        except asyncio.CancelledError:
            for left in (answers, self._filling):
                if left is not None:
                    left.recorded.cancel()
            self._filling = None
            raise
        finally:
            self._flushing = None

    async def close(self) -> None:
        """Record what is waiting (a few seconds at most), then stop: an answer dropped here
        leaves its delivery `sending` for the reconciler to look up at the carrier."""
        if self._flushing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._flushing), CLOSE_WAIT_S)
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing


class NotifyEngine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        templates: NoticeTemplates,
        carrier: TwilioCarrier,
        clock: Clock,
        bootstrap: str,
        *,
        embedded: bool,
        from_number: str,
        public_url: Callable[[], str],
        push: PushGateway | None = None,
        email: EmailSender | None = None,
        on_change: Callable[[Delivery], None] | None = None,
        settle: Settle | None = None,
        rate_clock: RateClock = WALL,
    ) -> None:
        self._settings = settings
        self._n = settings.notify
        self._store = store
        self._templates = templates
        self._carrier = carrier
        self._clock = clock
        self._bootstrap = bootstrap
        self._embedded = embedded
        self._public_url = public_url
        self._from = from_number
        self._push = push
        self._email = email
        self._on_change = on_change or (lambda d: None)
        self._wake = asyncio.Event()
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._caches: dict[str, NoticeCache] = {}
        self._notices: dict[str, Notice] = {}
        self._limits = {
            Channel.sms: TokenBucket(settings.twilio.messages_per_second, clock=rate_clock),
            Channel.voice: TokenBucket(settings.twilio.calls_per_second, clock=rate_clock),
            Channel.email: TokenBucket(settings.email.messages_per_second, clock=rate_clock),
        }
        self._calls = asyncio.Semaphore(self._n.max_concurrent_calls)
        #: Carrier calls at once, as many as the carrier client has connections.
        self._sending = asyncio.Semaphore(CONNECTIONS)
        self._answers = AnswerBook(store, clock, self._recorded)
        self._settle = settle
        #: This process's name on its claims and lease: unique per start (a restarted
        #: instance is another owner; its predecessor's claims are released by lease).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: When this instance last claimed deliveries (written with its lease).
        self._taken_at: str | None = None
        self._probed_at = float("-inf")
        self._oldest_due_s = 0.0
        self._stalled: str | None = None

    def wake(self) -> None:
        """Something became due (a notice was approved): look now, not at the next tick."""
        self._wake.set()

    async def start(self) -> None:
        """Nothing to wait for: the loops connect, and keep trying while Kafka is down."""
        session, heartbeat = group_timeouts(self._settings.kafka, self._embedded)
        self._consumer = Consumer(
            bootstrap_servers=self._bootstrap, group_id=self._n.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=session,
            heartbeat_interval_ms=heartbeat, fetch_max_wait_ms=50, max_poll_records=JOBS_PER_BATCH,
        )  # fmt: skip
        # The carrier's rates are the cluster's: each instance sends at the part of them that
        # its share of the jobs' partitions is (re-divided at every rebalance).
        self._consumer.subscribe_sharing(self._n.jobs_topic, self.set_rate_share)

    @property
    def rate_share(self) -> float:
        """This instance's part of the carrier's rates (its part of the jobs' partitions)."""
        return self._limits[Channel.sms].share

    def set_rate_share(self, share: float) -> None:
        for bucket in self._limits.values():
            bucket.set_share(share)
        log.info("carrier rate share: %.0f%% of the configured rates", share * 100)

    async def stop(self) -> None:
        await self._answers.close()
        # The senders are stopped: what they claimed and did not start goes to others now.
        now = isoformat(self._clock.now())
        try:
            released = await self._store.release_claims(now, now, now, now, owner=self.owner)
        except StoreError as err:
            log.warning("claims not released at stop (%s): released when the lease runs out", err)
        else:
            if released:
                log.info("%d claimed deliveries released at stop", released)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _connected_producer(self) -> Producer:
        while self._producer is None:
            producer = make_producer(self._bootstrap)
            try:
                await producer.start()
            except BrokerError as err:
                await producer.stop()
                log.error("notify dispatcher cannot reach Kafka (%s); retrying", err)
                await asyncio.sleep(2.0)
                continue
            self._producer = producer
        return self._producer

    # --- the outbox -------------------------------------------------------------------------

    async def dispatch_once(self) -> int:
        """Publish the deliveries that are due; returns how many (-1: too many in flight)."""
        producer = await self._connected_producer()
        now = isoformat(self._clock.now())
        published = 0
        # Back-pressure: keep only so many jobs in flight. Publishing faster than senders can
        # send would leave jobs waiting past requeue_s, to be published again for nothing.
        room = MAX_IN_FLIGHT - await self._store.count_deliveries_in([S.queued])
        if room <= 0:
            return -1
        due = await self._store.due_deliveries(now, min(1000, room))
        if not due:
            return 0
        # One statement for the whole round: the ones taken meanwhile are simply not moved.
        moved = await self._store.queue_deliveries([d.delivery_id for d in due], now)
        # Each household's deliveries go to the partition its account id hashes to (Kafka's
        # own partitioner), a job holding several of that partition's deliveries: one
        # message per delivery would cost the broker and both clients far more.
        # A job names its channel, so that its sender need not read its deliveries to learn it.
        partitions = sorted(await producer.partitions_for(self._n.jobs_topic))
        channel_of = {d.delivery_id: d.channel for d in due}
        jobs: dict[tuple[int, str], list[str]] = {}
        for delivery_id, account_id in moved:
            part = partition_of(account_id.encode(), partitions)
            jobs.setdefault((part, channel_of[delivery_id]), []).append(delivery_id)
        futures = []
        for (part, channel), ids in jobs.items():
            for start in range(0, len(ids), JOB_SIZE):
                job = NotifyJob(delivery_ids=ids[start : start + JOB_SIZE], channel=channel)
                futures.append(await producer.send(self._n.jobs_topic, _job.encode(job), partition=part))
            published += len(ids)
        if futures:
            await asyncio.gather(*futures)
        return published

    async def requeue_lost(self, after_s: float | None = None) -> int:
        """Jobs the broker lost (it restarted): their deliveries go back to planned, those
        queued longer than ``after_s`` (default ``requeue_s``), in one store call."""
        now = self._clock.now()
        cutoff = isoformat(now - timedelta(seconds=self._n.requeue_s if after_s is None else after_s))
        back = [
            DeliveryChange(delivery_id=d.delivery_id, expect=frozenset({S.queued}), to=S.planned,
                           detail="job not taken in time: publish again")
            for d in await self._store.deliveries_in([S.queued], 1000) if d.updated_at <= cutoff
        ]  # fmt: skip
        if not back:
            return 0
        return sum(r is not None for r in await self._store.change_deliveries(back, isoformat(now)))

    async def run_dispatcher(self) -> None:
        # The embedded broker keeps jobs in memory only, and was started with this process:
        # jobs published before a restart are gone, so publish their deliveries again now.
        broker_new = self._embedded
        while True:
            try:
                if broker_new:
                    while await self.requeue_lost(0.0):
                        pass
                    broker_new = False
                published = await self.dispatch_once()
                if published < 0:  # senders are busy: look again soon
                    await asyncio.sleep(0.05)
                elif published == 0:
                    await self.requeue_lost()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await self._wake.wait()
                    self._wake.clear()
            except asyncio.CancelledError:
                raise
            except (StoreError, BrokerError) as err:
                log.error("notify dispatcher: %s; retrying", err)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("notify dispatcher failed; retrying")
                await asyncio.sleep(1.0)

    # --- the senders ----------------------------------------------------------------------------

    async def run_worker(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                await self._consumer.start()
                break
            except BrokerError as err:
                log.error("notify worker cannot reach Kafka (%s); retrying", err)
                await asyncio.sleep(2.0)
        # Two batches in flight: the next one sends while the slowest calls of the last one
        # finish. Offsets are committed in order, each once its batch is done.
        ahead: deque[tuple[asyncio.Task[None], dict[Any, int]]] = deque()
        try:
            while True:
                try:
                    batch = await self._consumer.getmany(
                        timeout_ms=50 if ahead else 500, max_records=JOBS_PER_BATCH
                    )
                    if batch:
                        offsets = {tp: ms[-1].offset + 1 for tp, ms in batch.items()}
                        ahead.append((asyncio.create_task(self._send_batch(batch)), offsets))
                    while ahead and (len(ahead) > 1 or ahead[0][0].done()):
                        task, offsets = ahead.popleft()
                        await task
                        await self._consumer.commit(offsets)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the loop outlives any one failure; uncommitted jobs come back
                    log.exception("notify worker batch failed; retrying")
                    await asyncio.sleep(1.0)
        finally:
            for task, _ in ahead:
                task.cancel()
            await asyncio.gather(*(task for task, _ in ahead), return_exceptions=True)

    async def _send_batch(self, batch: dict[Any, list[Any]]) -> None:
        by_channel, unknown = _read_jobs([m.value for ms in batch.values() for m in ms])
        if unknown:  # jobs of an earlier version: learn their channels
            for d in await self._store.deliveries_by_id(unknown):
                if d.state is S.queued:
                    by_channel.setdefault(Channel(d.channel), []).append(d.delivery_id)
        await asyncio.gather(*(self._send_channel(c, ids) for c, ids in by_channel.items()))

    async def _send_channel(self, channel: Channel, waiting: list[str]) -> None:
        # Claim just in time: only what the channel's rate sends within TAKE_AHEAD_S, however
        # slow the rate, so that little waits claimed when this instance dies.
        limit = self._limits.get(channel)
        size = max(1, int(limit.rate * TAKE_AHEAD_S)) if limit is not None else len(waiting)
        for start in range(0, len(waiting), size):
            # One statement per chunk; a replayed job finds its delivery taken.
            now = isoformat(self._clock.now())
            claimed = await self._store.claim_deliveries(waiting[start : start + size], self.owner, now)
            if claimed:
                self._taken_at = now
            await self._send_all(channel, claimed)

    def _start_size(self, channel: Channel) -> int:
        limit = self._limits.get(channel)
        if limit is None:
            return START_MOST
        return max(1, min(START_MOST, int(limit.rate * START_AHEAD_S)))

    async def _start(self, claimed: list[Delivery]) -> list[Delivery]:
        """Mark ``claimed`` as started (their carrier calls follow at once), in one store call;
        the ones still held (a released one is not: another sender has it now)."""
        if not claimed:
            return []
        try:
            started = set(
                await self._store.start_deliveries(
                    [d.delivery_id for d in claimed], isoformat(self._clock.now()), self.owner
                )
            )
        except StoreError as err:
            log.error("%d deliveries not started (%s): released later, sent then", len(claimed), err)
            return []
        return [
            msgspec.structs.replace(d, state=S.sending, attempts=d.attempts + 1)
            for d in claimed
            if d.delivery_id in started
        ]

    async def _send_all(self, channel: Channel, claimed: list[Delivery]) -> None:
        """A few senders, each sending one delivery after another, rather than a task per
        delivery (which cost the event loop more than the sends). They are fed a small
        handful at a time, each handful marked started in one store call, the next one while
        the last one is sent. A sender does not wait for an answer to be recorded before its
        next send: the recordings are awaited at the end, before the jobs are committed."""
        size = self._start_size(channel)
        handfuls = [claimed[i : i + size] for i in range(0, len(claimed), size)]
        line: deque[Delivery] = deque()
        turn = asyncio.Lock()
        upcoming: list[asyncio.Task[list[Delivery]]] = []
        recordings: set[asyncio.Future[list[Delivery | None]]] = set()

        def start_next() -> None:
            if handfuls:
                upcoming.append(asyncio.create_task(self._start(handfuls.pop(0))))

        async def next_delivery() -> Delivery | None:
            while not line:
                async with turn:
                    if line:
                        break
                    if not upcoming:
                        return None
                    started = await upcoming.pop(0)
                    start_next()  # marked while these are sent
                    line.extend(started)
            return line.popleft()

        async def sender() -> None:
            while (delivery := await next_delivery()) is not None:
                try:
                    recording = await self._send_taken(delivery)
                    if recording is not None:
                        recordings.add(recording[0])
                except StoreError as err:
                    log.error(
                        "delivery %s: store failed (%s); the reconciler will pick it up",
                        delivery.delivery_id,
                        err,
                    )
                except Exception:  # never the end of the batch: the others are sent all the same
                    log.exception("delivery %s: not sent; left to the reconciler", delivery.delivery_id)

        start_next()
        try:
            await asyncio.gather(*(sender() for _ in range(min(CONNECTIONS, len(claimed)))))
        finally:
            for task in upcoming:  # cancelled mid-way: what it marked is looked up later
                task.cancel()
        # Shielded: the futures are shared by every sender of the batch and beyond.
        outcomes = await asyncio.gather(*(asyncio.shield(r) for r in recordings), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, (StoreError, asyncio.CancelledError)):
                continue  # logged where it happened; the reconciler picks those deliveries up
            if isinstance(outcome, BaseException):
                raise outcome

    def _cache(self, notice: Notice) -> NoticeCache:
        cache = self._caches.get(notice.notice_id)
        if cache is None:
            context = msgspec.convert(notice.context, NoticeContext)
            cache = self._caches[notice.notice_id] = self._templates.cache(context)
        return cache

    async def send(self, delivery_id: str) -> Delivery | None:
        """Send one delivery if nobody else has: the heart of exactly-once."""
        claimed = await self._store.claim_deliveries([delivery_id], self.owner, isoformat(self._clock.now()))
        started = await self._start(claimed)
        if not started:
            return None  # a replayed or duplicated job: someone already has it
        taken = started[0]
        recording = await self._send_taken(taken)
        if recording is None:
            return taken  # outcome unknown: still `sending`, for the reconciler
        recorded, place = recording
        return (await asyncio.shield(recorded))[place]

    async def _send_taken(self, taken: Delivery) -> Recording | None:
        """Call the carrier for a delivery this sender holds (``sending``); the answer's
        recording is under way when this returns. None: the carrier may or may not have it
        (no answer came), so the delivery stays `sending` and the reconciler asks the carrier
        before anything is sent again."""
        notice = self._notices.get(taken.notice_id)
        if notice is None:  # a notice's template and context never change once planned
            notice = await self._store.get_notice(taken.notice_id)
            assert notice is not None
            self._notices[taken.notice_id] = notice
        try:
            to, sid, error = await self._hand_over(taken, notice)
        except asyncio.CancelledError:
            raise
        except CarrierError as err:
            if err.outcome_unknown and taken.channel in NOTHING_TO_ASK:
                # A push gateway or SMTP server keeps nothing to ask: rather a gap (the household
                # still has its other channels) than a second one. The same rule as one cut short.
                log.warning("delivery %s: %s; not pushed again", taken.delivery_id, err)
                return self._finish(taken, S.failed, error_code="outcome_unknown")
            if err.outcome_unknown:
                log.warning("delivery %s: %s; left to the reconciler", taken.delivery_id, err)
                return None
            code = str(err.carrier_code) if err.carrier_code is not None else None
            if err.retryable and taken.attempts < self._n.max_attempts:
                delay = err.retry_after or backoff_s(taken.attempts, self._n.retry_base_s)
                when = isoformat(self._clock.now() + timedelta(seconds=delay))
                return self._finish(taken, S.retry, error_code=code, next_attempt_at=when)
            return self._finish(taken, S.failed, error_code=code or "carrier_error")
        except Exception:  # a bug, or data no one foresaw: this delivery's outcome, not the batch's
            if taken.channel in NOTHING_TO_ASK:
                # It may have gone out, and nothing can be asked: given up, never sent twice.
                log.exception("delivery %s: sending failed unexpectedly; given up", taken.delivery_id)
                return self._finish(taken, S.failed, error_code="internal_error")
            # The carrier can be asked whether it has it before anything is sent again.
            log.exception("delivery %s: sending failed unexpectedly; for the reconciler", taken.delivery_id)
            return None
        if error is not None:
            return self._finish(taken, to, error_code=error)
        return self._finish(taken, to, carrier_sid=sid)

    async def _hand_over(
        self, taken: Delivery, notice: Notice
    ) -> tuple[DeliveryState, str | None, str | None]:
        """Call the carrier: the state its answer moves the delivery to, its id for it, and
        an error code when there was nobody to call.
        Only the call holds one of the ``_sending`` places: not the wait for the channel's
        rate (a slow channel would hold them all), not the recording of the answer."""
        channel = Channel(taken.channel)
        try:
            rendered = self._cache(notice).render(notice.template, channel, taken.language)
            if channel is Channel.email:
                subject, body = split_email(rendered.text)
        except (IncidentError, ValueError, msgspec.ValidationError) as err:
            # Nothing was sent, and the same text fails the same way every time (a template
            # changed since the notice was approved, a context of an older version): final.
            log.error("delivery %s: notice %s not rendered: %s", taken.delivery_id, notice.notice_id, err)
            return S.failed, None, "not_rendered"
        base = self._public_url().rstrip("/")
        if channel is Channel.sms:
            await self._limits[channel].take()
            async with self._sending:
                accepted = await self._carrier.send_sms(
                    taken.address, self._from, rendered.text, status_url(base, taken.delivery_id)
                )
        elif channel is Channel.voice:
            await self._limits[channel].take()
            twiml = twiml_for(rendered.text, rendered.language_used, f"{base}/hooks/twilio/gather")
            async with self._calls, self._sending:
                accepted = await self._carrier.call(
                    taken.address, self._from, twiml, status_url(base, taken.delivery_id)
                )
        elif channel is Channel.email:
            if self._email is None:
                return S.failed, None, "email_not_configured"
            await self._limits[channel].take()
            async with self._sending:
                message_id = await self._email.send(
                    taken.address, subject, body, language=rendered.language_used,
                    delivery_id=taken.delivery_id, at=self._clock.now(),
                )  # fmt: skip
            # The server took it: as far as anyone can know (bounces are out of scope).
            return S.delivered, message_id, None
        elif self._push is not None:
            title, body = split_push(rendered.text)
            data = {"incident_id": taken.incident_id, "notice_id": taken.notice_id}
            async with self._sending:
                pushed = await self._push.send(taken.address, title, body, data)
            # A push gateway has no delivery receipts: handed over is as far as we can know.
            return S.sent, pushed.sid, None
        else:
            return S.failed, None, "push_not_configured"
        return S.accepted, accepted.sid, None

    def _finish(self, taken: Delivery, to: DeliveryState, **fields: Any) -> Recording:
        change = DeliveryChange(
            delivery_id=taken.delivery_id, expect=frozenset({S.sending}), to=to,
            detail=f"carrier: {to.value}" + (f" {fields['error_code']}" if fields.get("error_code") else ""),
            **fields,
        )  # fmt: skip
        return self._answers.submit(change)

    def _recorded(self, done: Delivery) -> None:
        self._on_change(done)
        if done.state is S.retry:
            self.wake()

    # --- after a crash ----------------------------------------------------------------------------

    async def reconcile(self) -> int:
        """Deliveries left ``sending`` (a sender died mid-call): ask the carrier what happened
        before anything is sent again."""
        now_at = self._clock.now()
        cutoff = isoformat(now_at - timedelta(seconds=self._n.sending_timeout_s))
        # Calls of a sender that is gone are looked up as soon as its lease has run out; a live
        # sender's only after the carrier call's own time limit could have passed.
        candidates = {d.delivery_id: d for d in await self._store.orphaned_sending(isoformat(now_at), 500)}
        # "The carrier never got it" is believed only of a call that cannot still be on its way:
        # a sender whose lease lapsed (a database blip, a clock behind) may be alive and calling.
        call_s = min(CALL_TIMEOUT_S, self._n.sending_timeout_s)
        in_flight_since = isoformat(now_at - timedelta(seconds=call_s))
        for d in await self._store.deliveries_in([S.sending], 500):
            if d.updated_at < cutoff:
                candidates.setdefault(d.delivery_id, d)
        fixed = 0
        for d in candidates.values():
            if d.channel in NOTHING_TO_ASK:
                # A push gateway or SMTP server keeps no list to ask: rather a gap (the household
                # still has its other channels) than a second notice. The same rule as a push
                # left unanswered.
                gave_up = DeliveryChange(
                    delivery_id=d.delivery_id, expect=frozenset({S.sending}), to=S.failed,
                    error_code="outcome_unknown", detail="reconciled: cut short, not sent again",
                )  # fmt: skip
                fixed += await self._store.change_delivery(gave_up, isoformat(self._clock.now())) is not None
                continue
            since = datetime.fromisoformat(d.updated_at) - timedelta(minutes=1)
            try:
                if d.channel == Channel.sms.value:
                    found: list[tuple[str, ...]] = list(await self._carrier.find_sms(d.address, since))
                else:
                    found = list(await self._carrier.find_calls(d.address, since))
            except CarrierError as err:
                log.warning("reconcile %s: carrier lookup failed (%s)", d.delivery_id, err)
                continue
            now = isoformat(self._clock.now())
            sending = frozenset({S.sending})
            if found:
                sid = found[0][0]
                change = DeliveryChange(
                    delivery_id=d.delivery_id, expect=sending, to=S.accepted, carrier_sid=sid,
                    detail="reconciled: the carrier has it",
                )  # fmt: skip
            elif d.updated_at >= in_flight_since:
                continue  # looked at again next time
            else:
                change = DeliveryChange(
                    delivery_id=d.delivery_id, expect=sending, to=S.retry, next_attempt_at=now,
                    detail="reconciled: the carrier never got it",
                )  # fmt: skip
            if await self._store.change_delivery(change, now) is not None:
                fixed += 1
        if fixed:
            self.wake()
        return fixed

    async def run_reconciler(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(self._n.sending_timeout_s / 4, self._n.sender_lease_s)))
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconciler failed; retrying")

    # --- claims of instances that are gone, and the fan-out's health --------------------------

    async def keep_house(self) -> int:
        """Renew this instance's lease (noting when it last took a delivery), release the claims
        of instances that are gone, and look at the fan-out's progress every few seconds.
        Returns how many claims were released."""
        now = self._clock.now()
        lease = timedelta(seconds=self._n.sender_lease_s)
        await self._store.renew_sender(self.owner, isoformat(now + lease), self._taken_at)
        released = await self._store.release_claims(
            isoformat(now), isoformat(now - lease), isoformat(now - timedelta(seconds=CLAIM_STALE_S)),
            isoformat(now),
        )  # fmt: skip
        if released:
            log.warning("%d deliveries released: claimed by a sender that stopped before calling", released)
            self.wake()
        if asyncio.get_running_loop().time() - self._probed_at >= PROBE_S:
            await self.probe()
        return released

    async def probe(self) -> str | None:
        """Read how long due deliveries have waited and when any instance last took one;
        returns (and keeps, for :meth:`stall_reason`) why the fan-out is stalled, or None."""
        self._probed_at = asyncio.get_running_loop().time()
        now = self._clock.now()
        due_since, taken_at = await self._store.fanout_progress(isoformat(now))
        self._oldest_due_s = _age_s(now, due_since)
        idle_s = _age_s(now, taken_at) if taken_at else None
        limit = self._n.stall_after_s
        stalled = self._oldest_due_s > limit and (idle_s is None or idle_s > limit)
        self._stalled = (
            f"deliveries due for {self._oldest_due_s:.0f} s and none taken"
            + (" yet" if idle_s is None else f" for {idle_s:.0f} s")
            if stalled
            else None
        )
        return self._stalled

    def stall_reason(self) -> str | None:
        """Why the fan-out is stalled (deliveries due, none taken for ``stall_after_s``), as of
        the last look; None when it is not (or this instance does not send)."""
        return self._stalled

    def oldest_due_s(self) -> float:
        """Age of the oldest due delivery at the last look, in seconds (0: none due)."""
        return self._oldest_due_s

    async def run_housekeeping(self) -> None:
        while True:
            try:
                await self.keep_house()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a store hiccup: the lease has a few renewals of slack
                log.error("notify housekeeping failed (%s); retrying", err)
            await asyncio.sleep(self._n.sender_lease_s / 4)

    # --- final statuses whose callbacks never came -------------------------------------------------

    async def settle_overdue(self) -> int:
        """Look up at the carrier, by SID, deliveries that have waited ``finality_after_s`` for
        their final status (the callback came while we were down, or never), and record what
        the carrier says as its callback would have been (fallback and retries included).
        Those still not final are looked at again ``finality_after_s`` later. Returns how
        many moved on."""
        if self._settle is None:
            return 0
        now = self._clock.now()
        overdue = await self._store.awaiting_final(
            isoformat(now - timedelta(seconds=self._n.finality_after_s)), FINALITY_BATCH
        )
        moved = 0
        # Not final at the carrier either, or not found: looked at again finality_after_s
        # later (their updated_at is renewed), so they never hold up the ones behind them.
        unchanged: list[DeliveryChange] = []
        for d in overdue:
            assert d.carrier_sid is not None  # awaiting_final gives only those with one
            try:
                if d.channel == Channel.sms.value:
                    status = await self._carrier.message_status(d.carrier_sid)
                else:
                    status = await self._carrier.call_status(d.carrier_sid)
            except CarrierError as err:
                log.warning("delivery %s: final status not looked up (%s)", d.delivery_id, err)
                detail = f"look-up failed: {err.carrier_code or 'no answer'}"
            else:
                if await self._settle(d, status):
                    moved += 1
                    continue
                detail = f"looked up: twilio {status.status}"
            unchanged.append(DeliveryChange(
                delivery_id=d.delivery_id, expect=frozenset({d.state}), to=d.state, detail=detail,
            ))  # fmt: skip
        if unchanged:
            await self._store.change_deliveries(unchanged, isoformat(self._clock.now()))
        return moved

    async def run_finality(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self._n.finality_after_s / 4))
            try:
                await self.settle_overdue()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("finality sweep failed; retrying")


def _age_s(now: datetime, since: str | None) -> float:
    return max(0.0, (now - datetime.fromisoformat(since)).total_seconds()) if since else 0.0
