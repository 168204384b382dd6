"""PostgreSQL blips: the service's database connections terminated again and again
(``pg_terminate_backend``, as a failover or an administrator does) while it ingests reports
and answers API writes.

What this proves: a short database fault never dead-letters a valid report, never loses one,
and never turns into a wrong answer: with an ``Idempotency-Key`` a client that retries until
it gets an answer creates every note exactly once, and the timeline still verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.env import Broker
from tests.support.processes import Faults, Service, read_dead_letters, report
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres

REPORTS = 3000
NOTES = 300


@pytest.fixture
def store_url(postgres_schema_url: str) -> str:
    """PostgreSQL only, its connections named so that only this test's are terminated."""
    return f"{postgres_schema_url}&application_name=fault-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def terminating(postgres_url: str, store_url: str, every_s: float = 0.3) -> AsyncIterator[list[int]]:
    """Terminate every connection of the service under test every ``every_s`` seconds."""
    name = store_url.rsplit("application_name=", 1)[1]
    killed: list[int] = []
    conn = await asyncpg.connect(postgres_url)

    async def loop() -> None:
        while True:
            await asyncio.sleep(every_s)
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name
            )
            killed.append(len(rows))

    task = asyncio.create_task(loop())
    try:
        yield killed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await conn.close()


async def test_terminated_backends_during_ingest_dead_letter_no_good_report(
    faults: Faults, producer: AIOKafkaProducer, broker: Broker, postgres_url: str, store_url: str
) -> None:
    service = await faults.service()
    await service.start()
    good = {f"r-{faults.suffix}-{i}" for i in range(REPORTS)}
    async with terminating(postgres_url, store_url, every_s=0.1) as killed:
        for i, rid in enumerate(sorted(good)):
            await producer.send(faults.reports_topic, value=report(rid, i), key=rid.encode())
            if i % 20 == 0:
                await asyncio.sleep(0.03)  # spread over several seconds: dozens of blips mid-batch
        await producer.flush()

        async def all_stored() -> bool:
            status, _ = await service.health()
            return bool(status == 200 and await _stored(faults) >= REPORTS)

        await wait_until(all_stored, f"{REPORTS} reports stored while backends are terminated", limit=60)
    assert sum(killed) >= 10, "the fault was not injected"
    assert await service.stop() == 0, service.log_tail()
    letters = await read_dead_letters(broker.bootstrap, faults.dead_letter_topic)
    assert letters == []  # zero good reports dead-lettered
    store = faults.store()
    await store.open()
    try:
        assert {s.report.report_id for s in await store.list_reports(limit=2 * REPORTS)} == good
    finally:
        await store.close()


async def _stored(faults: Faults) -> int:
    store = faults.store()
    await store.open()
    try:
        return len(await store.list_reports(limit=2 * REPORTS))
    finally:
        await store.close()


async def post_until_answered(
    service: Service, path: str, body: object, key: str, failures: Counter[int] | None = None
) -> tuple[int, object]:
    """What a careful client does: retry with the same key until an answer that is not 5xx
    and not "still running"."""
    for _ in range(300):
        try:
            status, answer = await service.call("POST", path, body, headers={"Idempotency-Key": key})
        except (aiohttp.ClientError, TimeoutError):
            status, answer = 0, None
        still_running = (
            status == 409 and isinstance(answer, dict) and answer["error"]["code"].endswith("in_progress")
        )
        if 0 < status < 500 and not still_running:
            return status, answer
        if failures is not None:
            failures[status] += 1
        await asyncio.sleep(0.1)
    raise AssertionError(f"no answer for {path} after 300 tries: {status} {answer}")


@pytest.mark.parametrize("budget", ["10", "0"], ids=["blips-absorbed", "blips-answered-503"])
async def test_terminated_backends_during_api_writes_create_every_note_once(
    faults: Faults, postgres_url: str, store_url: str, budget: str
) -> None:
    """With the store's retry budget, blips never reach the client; without it (budget 0) they
    come back as 503s, and the client's retries under the same key must still write each note
    once: a write the store says failed is run again, one whose fate is unknown is never run
    twice (409 ``idempotency_outcome_unknown``: the client is told to look first)."""
    service = await faults.service(
        INCIDENT_KAFKA__CONSUME_REPORTS="false",
        INCIDENT_NOTIFY__SEND="false",
        INCIDENT_STORE__RETRY_BUDGET_S=budget,
        # A key whose answer could not be recorded (the store was down) is free again after this.
        INCIDENT_HTTP__IDEMPOTENCY_LEASE_S="2",
    )
    await service.start()
    status, incident = await service.call(
        "POST", "/api/incidents",
        {"kind": "main_break", "utility": "water", "title": "Main break", "severity": "high"},
    )  # fmt: skip
    assert status == 201, incident
    iid = incident["id"]
    texts = [f"crew update {i}" for i in range(NOTES)]
    failures: Counter[int] = Counter()
    async with terminating(postgres_url, store_url, every_s=0.05) as killed:
        writes = asyncio.gather(
            *(
                post_until_answered(
                    service, f"/api/incidents/{iid}/notes", {"text": t}, f"note-{i}", failures
                )
                for i, t in enumerate(texts)
            )
        )
        await asyncio.sleep(2.0)  # two seconds of blips every 50 ms, then the database steadies
    answers = await writes
    assert sum(killed) >= 3, "the fault was not injected"
    status, timeline = await service.call("GET", f"/api/incidents/{iid}/timeline")
    assert status == 200, timeline
    noted = Counter(e["data"]["text"] for e in timeline["events"] if e["type"] == "note_added")
    assert max(noted.values()) == 1  # none doubled
    told = Counter((status, a["error"]["code"] if status != 201 else "") for status, a in answers)  # type: ignore[index]
    assert set(told) <= {(201, ""), (409, "idempotency_outcome_unknown")}, told
    created = {t for t, (status, _) in zip(texts, answers, strict=True) if status == 201}
    assert created <= set(noted)  # none lost that was answered 201
    if budget == "0":
        assert failures[503] > 0, "no blip reached the client: the retry path was not exercised"
    if budget == "10":
        assert told == {(201, ""): NOTES}  # blips absorbed: every note simply created, once
    assert timeline["integrity"]["ok"] is True, timeline["integrity"]
    assert await service.stop() == 0, service.log_tail()
