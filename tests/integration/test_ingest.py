"""Report ingestion against a real broker (Tansu) and a real store (both stores)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from incident.adapters.kafka import BrokerMonitor, EmbeddedBroker
from incident.intake.ingest import Batch, Ingestor
from incident.keys import STORE
from incident.settings import load_settings
from incident.store import Store
from tests.support.app import serve
from tests.support.env import Broker, Tokens, kafka_env
from tests.support.ingest import MALFORMED, Harness, report, settled, total
from tests.support.wait import wait_until


@pytest.fixture
async def harness(broker: Broker, store: Store, store_url: str) -> Harness:
    env = {"INCIDENT_STORE__URL": store_url, **kafka_env(broker, consume=True)}
    settings = await asyncio.to_thread(load_settings, None, env)  # reads time-zone files
    monitor = BrokerMonitor(broker.bootstrap, settings.kafka)
    await monitor.start()  # creates the topics, with the configured partition count
    await monitor.close()
    return Harness(settings, store, broker.bootstrap)


@pytest.fixture
async def producer(broker: Broker) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


async def read_topic(bootstrap: str, topic: str, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        messages: list[Any] = []
        async with asyncio.timeout(15):
            while len(messages) < expected:
                for msgs in (await consumer.getmany(timeout_ms=200)).values():
                    messages += msgs
        return messages
    finally:
        await consumer.stop()


async def test_valid_duplicate_and_malformed_reports_end_where_they_should(
    harness: Harness, producer: AIOKafkaProducer
) -> None:
    topic = harness.settings.kafka.reports_topic
    for i in range(30):
        await producer.send(
            topic, report(f"ok-{i}", location={"lon": -85.0 + i, "lat": 38.0}), key=b"k%d" % i
        )
    for i in range(10):  # resent by a flaky gateway
        await producer.send(
            topic, report(f"ok-{i}", location={"lon": -85.0 + i, "lat": 38.0}), key=b"k%d" % i
        )
    for name, value, _ in MALFORMED:
        await producer.send(topic, value, key=name.encode(), headers=[("source", b"test")])
    await producer.flush()

    async with harness.ingestor():
        await wait_until(
            lambda: settled(harness, 40 + len(MALFORMED)), "every message consumed and committed"
        )
    assert await harness.stored() == 30
    assert harness.metrics.reports_duplicate._value.get() == 10
    dead = await read_topic(harness.bootstrap, harness.settings.kafka.dead_letter_topic, len(MALFORMED))
    assert len(dead) == len(MALFORMED)
    by_key = {m.key.decode(): m for m in dead}
    for name, value, code in MALFORMED:
        msg = by_key[name]
        headers = dict(msg.headers)
        assert msg.value == value, f"{name}: the dead letter must be the message unchanged"
        assert headers["error.code"].decode() == code.value, name
        assert headers["error.message"]
        assert headers["original.topic"].decode() == harness.settings.kafka.reports_topic
        assert headers["source"] == b"test"  # original headers kept
        assert int(headers["original.offset"]) >= 0


class Crash(BaseException):
    """Stands in for the process dying (not an Exception: the loop must not catch it)."""


async def test_a_crash_between_store_and_commit_loses_and_duplicates_nothing(
    harness: Harness, producer: AIOKafkaProducer
) -> None:
    topic = harness.settings.kafka.reports_topic
    sent = [f"gas-{i}" for i in range(20)]
    for i, rid in enumerate(sent):
        # Gas leaks declare incidents: a replay must not declare or link twice.
        await producer.send(
            topic, report(rid, kind="gas_leak", utility="gas", location={"lon": -80.0 - i, "lat": 35.0})
        )
    await producer.flush()

    crashed = asyncio.Event()

    async def crash(batch: Batch) -> None:
        crashed.set()
        raise Crash

    async with harness.ingestor(after_store=crash) as (_, task):
        await asyncio.wait_for(crashed.wait(), 20)
        with contextlib.suppress(Crash):
            await task
    stored_before = await harness.stored()
    assert stored_before > 0  # the store had the batch; the offsets were never committed

    consumed_before = harness.metrics.reports_consumed._value.get()
    assert consumed_before == stored_before
    async with harness.ingestor():
        # Everything not committed is read again: the stored batch and the rest.
        await wait_until(
            lambda: settled(harness, consumed_before + 20), "all reports consumed after the restart"
        )
    assert harness.metrics.reports_duplicate._value.get() == stored_before  # the replay was recognised
    reports = await harness.store.list_reports(None, limit=100)
    assert sorted(r.report.report_id for r in reports) == sorted(sent)
    incidents = await harness.store.list_incidents(None, limit=100)
    assert len(incidents) == 20 and all(i.reports == 1 for i in incidents)


async def _count(harness: Harness, n: int) -> bool:
    return await harness.stored() >= n


async def test_two_consumers_share_the_work_and_hand_over_on_stop(
    harness: Harness, producer: AIOKafkaProducer
) -> None:
    topic = harness.settings.kafka.reports_topic

    def leak(i: int) -> bytes:
        # Gas leaks far apart: each opens its own incident, so a report handled twice would
        # show as a second incident or a second link, not only as a duplicate row.
        return report(
            f"leak-{i}", kind="gas_leak", utility="gas", location={"lon": -85.0 + i / 50, "lat": 30.0}
        )

    async with harness.ingestor() as (survivor, _):
        async with harness.ingestor() as (leaving, _):
            await wait_until(lambda: _both_assigned(survivor, leaving), "the group split the partitions")
            a, b = survivor.assignment(), leaving.assignment()
            assert a and b and not (a & b) and len(a | b) == 3
            for i in range(150):
                await producer.send(topic, leak(i), key=b"%d" % i)
            await producer.flush()
            await wait_until(lambda: _count(harness, 150), "first 150 stored")
            # More work arrives, and one instance stops while it is being handled.
            for i in range(150, 300):
                await producer.send(topic, leak(i), key=b"%d" % i)
            await producer.flush()
        await wait_until(lambda: _all_partitions(survivor, 3), "the survivor took over every partition")
        await wait_until(lambda: _count(harness, 300), "all 300 stored")
        await wait_until(lambda: settled(harness, 300), "every message settled")
    incidents = await harness.store.list_incidents(None, limit=1000)
    assert len(incidents) == 300 and all(i.reports == 1 for i in incidents)
    # Work handed over uncommitted was read again and recognised, not applied twice.
    consumed = total(harness.metrics.reports_consumed)
    assert total(harness.metrics.reports_duplicate) == consumed - 300


async def _both_assigned(a: Ingestor, b: Ingestor) -> bool:
    return bool(a.assignment()) and bool(b.assignment())


async def _all_partitions(ing: Ingestor, n: int) -> bool:
    return len(ing.assignment()) == n


async def test_a_broker_restart_mid_stream(store: Store, store_url: str, tmp_path: Path) -> None:
    broker = EmbeddedBroker("127.0.0.1:0")
    await broker.start()
    try:
        env = {"INCIDENT_STORE__URL": store_url, **kafka_env(_FakeBroker(broker.bootstrap), consume=True)}
        settings = await asyncio.to_thread(load_settings, None, env)
        harness = Harness(settings, store, broker.bootstrap)
        monitor = BrokerMonitor(
            broker.bootstrap,
            settings.kafka,
            interval=0.2,
            on_status=lambda up: harness.metrics.kafka_up.set(1 if up else 0),
        )
        await monitor.start()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            async with harness.ingestor():
                for i in range(20):
                    await producer.send(settings.kafka.reports_topic, report(f"before-{i}"))
                await producer.flush()
                await wait_until(lambda: _count(harness, 20), "reports before the restart stored")

                await broker.stop()
                assert not await monitor.check(limit_s=1.0)
                assert harness.metrics.kafka_up._value.get() == 0
                assert "does not answer" in monitor.last_error

                await broker.start()  # same port, empty (memory-only)
                await wait_until(lambda: monitor.check(limit_s=1.0), "the monitor sees the broker again")
                assert harness.metrics.kafka_up._value.get() == 1
                async with asyncio.timeout(20):
                    while True:  # the producer reconnects by itself
                        try:
                            for i in range(20):
                                await producer.send_and_wait(
                                    settings.kafka.reports_topic, report(f"after-{i}")
                                )
                            break
                        except Exception:
                            await asyncio.sleep(0.2)
                await wait_until(lambda: _count(harness, 40), "reports after the restart stored", limit=30)
        finally:
            await producer.stop()
            await monitor.close()
    finally:
        await broker.close()
    assert await harness.stored() == 40


class _FakeBroker(Broker):
    """Only carries an address for kafka_env()."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap

    @property
    def bootstrap(self) -> str:
        return self._bootstrap


async def test_operators_list_and_replay_dead_letters(
    harness: Harness, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from incident.cli import main

    k = harness.settings.kafka
    broken = report("scada-77").replace(b'"severity":"medium"', b'"severity":"urgent"')
    await producer.send_and_wait(k.reports_topic, broken, key=b"scada-77")
    async with harness.ingestor():
        await wait_until(lambda: settled(harness, 1), "dead-lettered")
    env = {
        "INCIDENT_KAFKA__BOOTSTRAP_SERVERS": harness.bootstrap,
        "INCIDENT_KAFKA__REPORTS_TOPIC": k.reports_topic,
        "INCIDENT_KAFKA__DEAD_LETTER_TOPIC": k.dead_letter_topic,
    }
    runner = CliRunner()
    listed = await asyncio.to_thread(runner.invoke, main, ["reports", "dlq", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.strip().splitlines()
    where, code, message, preview = line.split("\t")
    assert code == "bad_enum" and "urgent" in message and preview.startswith('{"report_id":"scada-77"')

    unfixed = await asyncio.to_thread(runner.invoke, main, ["reports", "dlq", "replay", where], env=env)
    assert unfixed.exit_code == 1 and "still not a valid report (bad_enum" in unfixed.output
    fixed = tmp_path / "fixed.json"
    await asyncio.to_thread(fixed.write_bytes, report("scada-77", severity="high"))
    replayed = await asyncio.to_thread(
        runner.invoke, main, ["reports", "dlq", "replay", where, "--file", str(fixed)], env=env
    )
    assert replayed.exit_code == 0, replayed.output
    assert f"re-submitted scada-77 from {where}" in replayed.output
    nowhere = await asyncio.to_thread(runner.invoke, main, ["reports", "dlq", "replay", "0:999"], env=env)
    assert nowhere.exit_code == 1 and "no dead letter at 0:999" in nowhere.output

    async with harness.ingestor():
        await wait_until(lambda: _count(harness, 1), "the fixed report stored")
    stored = await harness.store.get_report("scada-77")
    assert stored is not None and stored.report.severity.value == "high"


async def test_a_report_the_database_refuses_is_dead_lettered_and_the_rest_go_on(
    harness: Harness, producer: AIOKafkaProducer, store_url: str
) -> None:
    """The schema cannot foresee every rule of the database: a report that passes validation
    but that the store refuses for good must not stall the partition behind it."""
    if not store_url.startswith("sqlite"):
        pytest.skip(
            "the refusing rule is a SQLite trigger here; the code path is the store's, not the engine's"
        )
    import sqlite3

    from incident.settings import sqlite_path

    def add_rule() -> None:
        conn = sqlite3.connect(sqlite_path(store_url))
        conn.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON reports WHEN NEW.report_id = 'poison'"
            " BEGIN SELECT RAISE(ABORT, 'refused by a database rule'); END"
        )
        conn.commit()
        conn.close()

    await asyncio.to_thread(add_rule)
    topic = harness.settings.kafka.reports_topic
    for rid in ("before", "poison", "after"):
        await producer.send(topic, report(rid), key=b"same-partition")
    await producer.flush()
    async with harness.ingestor():
        await wait_until(lambda: settled(harness, 3), "all three settled")
    stored = {r.report.report_id for r in await harness.store.list_reports(None, limit=10)}
    assert stored == {"before", "after"}
    dead = await read_topic(harness.bootstrap, harness.settings.kafka.dead_letter_topic, 1)
    assert [dict(m.headers)["error.code"] for m in dead] == [b"store_rejected"]
    assert b"refused by a database rule" in dict(dead[0].headers)["error.message"]


async def test_the_embedded_broker_never_takes_someone_elses_port() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        broker = EmbeddedBroker(f"127.0.0.1:{port}")
        with pytest.raises(Exception, match=f"127.0.0.1:{port} is already taken"):
            await broker.start()
        await broker.close()
    finally:
        server.close()
        await server.wait_closed()


# --- hostile input: every message costs at most itself ------------------------------------


def _nested_details(depth: int) -> bytes:
    """A small valid report whose details nest ``depth`` levels deep (2 KB at 1,000)."""
    head = report("deep").removesuffix(b"}")
    return head + b',"details":{"a":' + b"[" * depth + b"]" * depth + b"}}"


def _hostile() -> list[tuple[str, bytes | None, str, list[tuple[str, bytes]]]]:
    """(name, value, expected error.code, extra headers)."""
    big = report("big", details={"blob": "x" * 3_000_000})
    assert len(big) > 3_000_000
    return [
        ("3mb", big, "oversized", []),
        ("nested-1000-in-details", _nested_details(1000), "unparseable", []),
        ("nested-100-in-details", _nested_details(100), "too_deep", []),
        ("nested-1000-top", b'{"a":' * 1000 + b"1" + b"}" * 1000, "unknown_field", []),
        ("array-1000-top", b"[" * 1000 + b"]" * 1000, "not_an_object", []),
        ("raw-nul", report("nul").replace(b'"nul"', b'"n\x00ul"'), "not_json", []),
        ("nul-in-details", report("nul2", details={"note": "a\u0000b"}), "control_character", []),
        ("nul-in-details-key", report("nul3", details={"k\u0000": 1}), "control_character", []),
        ("invalid-utf8", report("utf").replace(b'"utf"', b'"u\xc3\x28tf"'), "not_utf8", []),
        ("none", None, "not_json", []),
        ("empty", b"", "not_json", []),
        (
            "huge-float",
            report("f").replace(b'"medium"', b'"medium","details":{"x":1e400}'),
            "out_of_range",
            [],
        ),
        (
            "huge-int",
            report("i").replace(b'"medium"', b'"medium","details":{"x":' + b"9" * 400 + b"}"),
            "out_of_range",
            [],
        ),
        ("10000-keys", report("keys", details={f"k{i}": i for i in range(10_000)}), "oversized", []),
        ("big-headers", report("hdr", severity="urgent"), "bad_enum", [("trace", b"h" * 300_000)]),
    ]


async def test_hostile_messages_are_dead_lettered_and_the_reports_after_them_stored(
    harness: Harness, store_url: str
) -> None:
    """Each message that broke ingest (or would) goes to the dead-letter topic with a code,
    in one partition between two good reports; the good ones are stored; the loop lives on."""
    k = harness.settings.kafka
    big_producer = AIOKafkaProducer(
        bootstrap_servers=harness.bootstrap, acks="all", max_request_size=8_000_000
    )
    await big_producer.start()
    hostile = _hostile()
    try:
        await big_producer.send_and_wait(k.reports_topic, report("before"), key=b"one-partition")
        for name, value, _, extra in hostile:
            await big_producer.send_and_wait(
                k.reports_topic, value, key=b"one-partition", headers=[("name", name.encode()), *extra]
            )
        await big_producer.send_and_wait(k.reports_topic, report("after"), key=b"one-partition")
    finally:
        await big_producer.stop()

    async with harness.ingestor() as (ing, task):
        await wait_until(lambda: _count(harness, 2), "the reports before and after stored", limit=30)
        await wait_until(lambda: settled(harness, len(hostile) + 2), "every message settled")
        assert not task.done()  # the loop never stopped
        assert ing.stall() is None
    stored = {r.report.report_id for r in await harness.store.list_reports(None, limit=100)}
    assert stored == {"before", "after"}

    dead = await read_topic(harness.bootstrap, k.dead_letter_topic, len(hostile))
    assert len(dead) == len(hostile)  # each once
    # One partition: the dead letters' origins come in the order they were sent.
    dead.sort(key=lambda m: int(dict(m.headers)["original.offset"]))
    for (name, value, code, _), msg in zip(hostile, dead, strict=True):
        headers = dict(msg.headers)
        assert headers["error.code"].decode() == code, (name, headers["error.message"])
        if name == "3mb":
            # Cut to fit the topic, with the size and hash of the whole.
            assert value is not None
            assert len(msg.value) < 1_000_000 and value.startswith(msg.value)
            assert int(headers["original.size"]) == len(value)
            assert headers["original.sha256"].decode() == hashlib.sha256(value).hexdigest()
        elif name == "big-headers":
            # Its own headers were too big to carry: ours are there, and say theirs were dropped.
            assert msg.value == value
            assert headers["original.headers_dropped"] == b"2" and "trace" not in headers
        else:
            assert msg.value == value and headers["name"] == name.encode()
            assert "original.sha256" not in headers
        if name == "nested-1000-in-details":
            assert b"RecursionError" in headers["error.message"]


# --- retries, stalls and the dead-letter topic ----------------------------------------------


def _with_stall_after(harness: Harness, seconds: float) -> Harness:
    k = msgspec.structs.replace(harness.settings.kafka, stall_after_s=seconds)
    return Harness(msgspec.structs.replace(harness.settings, kafka=k), harness.store, harness.bootstrap)


def _stalled_gauge(harness: Harness) -> float | None:
    return harness.metrics.registry.get_sample_value("incident_ingest_stalled")


async def test_a_batch_retried_after_a_passing_failure_dead_letters_its_bad_messages_once(
    harness: Harness, producer: AIOKafkaProducer
) -> None:
    """Before: every retry of the batch copied its bad messages to the dead-letter topic again
    (unbounded copies). While the batch keeps failing, ingest says it is stalled; after, not."""
    harness = _with_stall_after(harness, 0.3)
    topic = harness.settings.kafka.reports_topic
    await producer.send(topic, report("good-1"), key=b"p")
    await producer.send(topic, b"not json", key=b"p")
    await producer.send(topic, report("bad", severity="urgent"), key=b"p")
    await producer.send(topic, report("good-2"), key=b"p")
    await producer.flush()

    failures = 0
    seen_stalled: list[str | None] = []

    async def flaky(batch: Batch) -> None:
        nonlocal failures
        if failures < 4:
            failures += 1
            seen_stalled.append(ing.stall())
            raise RuntimeError("a passing fault after the store had the batch")

    async with harness.ingestor(after_store=flaky) as (ing, _):
        await wait_until(lambda: _flaky_done(lambda: failures), "the batch failed four times")
        await wait_until(lambda: settled(harness, 4), "the batch committed at last")
        await wait_until(lambda: _not_stalled(ing), "no longer stalled after progress")
        assert _stalled_gauge(harness) == 0.0
    # Retries 0.2 + 0.4 + 0.8 s apart: by the last ones, no progress for longer than 0.3 s.
    assert seen_stalled[0] is None and seen_stalled[-1] is not None
    assert "no progress" in seen_stalled[-1] and "RuntimeError" in seen_stalled[-1]
    await asyncio.sleep(0.5)  # a copy made by a retry would have arrived by now
    dead = await read_topic(harness.bootstrap, harness.settings.kafka.dead_letter_topic, 2)
    assert len(dead) == 2, [dict(m.headers)["error.code"] for m in dead]
    assert await harness.stored() == 2


async def _flaky_done(failures: Callable[[], int]) -> bool:
    return failures() >= 4


async def _not_stalled(ing: Ingestor) -> bool:
    return ing.stall() is None


async def test_a_dead_letter_topic_that_refuses_is_retried_and_ingest_says_it_is_stalled(
    harness: Harness, producer: AIOKafkaProducer
) -> None:
    """Before: the batch failed and was retried forever, silently. Now the one dead letter is
    retried with backoff, the report behind it waits (nothing skipped), the loop lives, and
    ingest reports itself stalled, naming the dead-letter topic, with the gauge at 1."""
    harness = _with_stall_after(harness, 0.5)
    # This broker refuses to produce to a topic of that name that nobody created.
    k = msgspec.structs.replace(harness.settings.kafka, dead_letter_topic="not a valid topic!")
    harness = Harness(msgspec.structs.replace(harness.settings, kafka=k), harness.store, harness.bootstrap)
    await producer.send(k.reports_topic, b"not json", key=b"p")
    await producer.send(k.reports_topic, report("waits"), key=b"p")
    await producer.flush()
    async with harness.ingestor() as (ing, task):
        await wait_until(
            lambda: _stalled_on_dead_letters(harness, ing), "stalled on the dead-letter topic", 30
        )
        assert _stalled_gauge(harness) == 1.0
        assert not task.done()
        assert await harness.store.get_report("waits") is None  # not skipped: waits its turn
    assert total(harness.metrics.reports_dead_lettered) == 0


async def _stalled_on_dead_letters(harness: Harness, ing: Ingestor) -> bool:
    stall = ing.stall()
    return stall is not None and "dead-letter topic" in stall


@pytest.mark.postgres
async def test_healthz_names_ingest_while_it_is_stalled_and_recovers(
    broker: Broker, postgres_schema_url: str, tokens: Tokens, aiohttp_client: Any
) -> None:
    """The whole service: another session holds the reports table, so a batch waits in hand
    with no progress; /healthz answers 503 naming ingest (the store still answers), and 200
    again once the batch goes through."""
    env = {
        "INCIDENT_STORE__URL": postgres_schema_url,
        "INCIDENT_AUTH__TOKENS_FILE": str(tokens.path),
        **kafka_env(broker, consume=True),
        "INCIDENT_KAFKA__STALL_AFTER_S": "0.5",
    }
    settings = await asyncio.to_thread(load_settings, None, env)
    client = await serve(aiohttp_client, settings)
    assert await _health(client) == (200, {"store": "ok", "broker": "ok", "ingest": "ok", "fanout": "ok"})

    locker = await asyncpg.connect(postgres_schema_url)
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE reports IN ACCESS EXCLUSIVE MODE")
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await p.start()
        try:
            await p.send_and_wait(settings.kafka.reports_topic, report("held"), key=b"p")
        finally:
            await p.stop()

        async def ingest_named() -> bool:
            status, checks = await _health(client)
            return status == 503 and checks["ingest"].startswith("stalled")

        await wait_until(ingest_named, "/healthz names ingest as stalled", limit=30)
        _, checks = await _health(client)
        assert checks["store"] == "ok" and checks["broker"] == "ok"
        async with client.get("/metrics") as resp:
            assert "incident_ingest_stalled 1.0" in await resp.text()
        await lock.rollback()
    finally:
        await locker.close()
    await wait_until(lambda: _healthy(client), "/healthz 200 again once the batch went through", limit=30)
    assert await client.app[STORE].get_report("held") is not None


async def _health(client: Any) -> tuple[int, dict[str, str]]:
    async with client.get("/healthz") as resp:
        return resp.status, (await resp.json())["checks"]


async def _healthy(client: Any) -> bool:
    return (await _health(client))[0] == 200
