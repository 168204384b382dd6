"""Ingest under SIGKILL, poison messages and a broker restart (both stores).

What this proves: reports keep arriving while the service is killed with SIGKILL five times
at random moments; at the end every good report is stored exactly once (no report linked or
declared twice), not one good report is dead-lettered, and every poison message is
dead-lettered with its code (copies made again after a kill carry the same origin).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict

import orjson
from aiokafka import AIOKafkaProducer

from incident.store import Store
from tests.support.env import Broker
from tests.support.processes import Faults, read_dead_letters, report
from tests.support.wait import wait_until

GOOD = 1500  # at least; more while the kills go on
KILLS = 5


def gas_leak(rid: str, k: int) -> bytes:
    """A report that declares an incident of its own (gas leaks are declared at once), far
    enough from the other gas leaks (a ~900 m grid) to be correlated with none of them."""
    return orjson.dumps(
        {
            "report_id": rid, "kind": "gas_leak", "utility": "gas", "source": "call_centre",
            "observed_at": "2026-11-22T08:15:00+00:00", "severity": "high",
            "location": {"lon": -85.595 + (k % 10) * 0.01, "lat": 38.005 + (k // 10) * 0.01},
            "summary": f"smell of gas, call {k}",
        }
    )  # fmt: skip


def poison() -> dict[str, bytes | None]:
    """Messages a broken or hostile upstream sends, with the code each must be dead-lettered
    under."""
    return {
        "not_json": b"{not json",
        # RecursionError in the decoder (1,000 objects deep), not a validation error
        "unparseable": b'{"details": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1001,
        "not_an_object": b"[" * 1000 + b"]" * 1000,
        "oversized": b'{"report_id": "' + b"x" * 1_500_000 + b'"}',  # over the dead-letter topic's limit
        "not_utf8": b'{"report_id": "\xff\xfe"}',
        "control_character": orjson.dumps({**orjson.loads(report("nul", 0)), "report_id": "with\x00nul"}),
        "wrong_type": b'{"report_id": 5}',
    }


async def produce_with_kills(faults: Faults, producer: AIOKafkaProducer) -> tuple[set[str], dict[int, str]]:
    """Produce the good reports (gas leaks among them) and the poison at a steady pace while
    the service is killed and restarted; returns the good ids and the poison by message index."""
    service = await faults.service()
    await service.start()
    good: set[str] = set()
    poison_at: dict[int, str] = {}
    bad = list(poison().items())
    stop_killing = asyncio.Event()

    async def kill_now_and_then() -> None:
        rng = random.Random(11)
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.7, 1.5))
            await service.kill()
            await service.start()
        stop_killing.set()

    killer = asyncio.create_task(kill_now_and_then())
    sent: list[asyncio.Future[object]] = []
    n = i = 0
    # Reports keep coming until the last kill, so every kill lands in the middle of the stream.
    while i < GOOD or not stop_killing.is_set():
        if i % 200 == 100 and bad:
            code, value = bad.pop()
            poison_at[n] = code
            sent.append(await producer.send(faults.reports_topic, value=value, key=f"p{n}".encode()))
            n += 1
        rid = f"r-{faults.suffix}-{i}"
        value = gas_leak(rid, i // 75 % 100) if i % 75 == 0 else report(rid, i)
        sent.append(await producer.send(faults.reports_topic, value=value, key=rid.encode()))
        good.add(rid)
        n += 1
        i += 1
        if i % 25 == 0:
            await asyncio.sleep(0.05)  # ~500 reports a second
    await asyncio.gather(*sent)
    await killer
    assert not bad
    await wait_until(
        lambda: stored_all(faults, good), f"{len(good)} good reports stored after {KILLS} kills", limit=60
    )
    assert await service.stop() == 0, service.log_tail()
    return good, poison_at


async def stored_all(faults: Faults, good: set[str]) -> bool:
    store = faults.store()
    await store.open()
    try:
        return len(await store.list_reports(limit=10 * GOOD)) >= len(good)
    finally:
        await store.close()


async def linked_once(store: Store, gas_ids: set[str]) -> dict[str, set[str]]:
    """Each gas-leak report: the incidents whose timelines name it; no event names it twice."""
    where: dict[str, set[str]] = defaultdict(set)
    mentions: Counter[tuple[str, str, str]] = Counter()
    for incident in await store.list_incidents(None, limit=10_000):
        for event in await store.timeline(incident.id):
            text = orjson.dumps(event.data).decode()
            for rid in gas_ids:
                if f'"{rid}"' in text:
                    where[rid].add(incident.id)
                    mentions[(rid, incident.id, event.type)] += 1
    twice = [key for key, count in mentions.items() if count > 1]
    assert not twice, f"events repeated after a kill: {twice[:5]}"
    return where


async def test_sigkill_during_ingest_loses_nothing_and_doubles_nothing(
    faults: Faults, producer: AIOKafkaProducer, broker: Broker
) -> None:
    good, poison_at = await produce_with_kills(faults, producer)

    store = faults.store()
    await store.open()
    try:
        stored = {s.report.report_id for s in await store.list_reports(limit=10 * GOOD)}
        assert stored == good  # zero lost; the poison never reached the store
        gas = {rid for rid in good if int(rid.rsplit("-", 1)[1]) % 75 == 0}
        where = await linked_once(store, gas)
        assert {rid: len(ids) for rid, ids in where.items()} == dict.fromkeys(gas, 1)
    finally:
        await store.close()

    letters = await read_dead_letters(broker.bootstrap, faults.dead_letter_topic)
    by_origin: dict[tuple[int, int], set[str]] = defaultdict(set)
    for letter in letters:
        by_origin[letter.original].add(letter.code)
        assert letter.value is None or len(letter.value) <= 1_000_000
    # Zero good reports dead-lettered: every copy is one of the poison messages, each under
    # its own code (a copy made again after a kill names the same origin and code).
    assert sorted(code for codes in by_origin.values() for code in codes) == sorted(poison_at.values())
    assert all(len(codes) == 1 for codes in by_origin.values())
    cut = [letter for letter in letters if letter.code == "oversized"]
    assert cut and all(int(c.headers["original.size"]) > 1_000_000 for c in cut)
    assert all(len(c.headers["original.sha256"]) == 64 for c in cut)
