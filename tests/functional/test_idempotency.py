"""Retries and hostile bodies through the real app, on both stores: ``Idempotency-Key`` gives the
first answer again and creates nothing; a deeply nested body is 400 ``too_deep``, never 500."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.web import Application

from incident.core.clock import ManualClock, isoformat
from incident.keys import CLOCK, STORE
from incident.settings import Settings
from incident.store.ports import IdempotencyChange, IdempotencyRecord
from tests.support.app import Api, Client, serve
from tests.support.env import Tokens
from tests.support.sample import BOX


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for a 10,000-deep body (the suite's limit is 4 KB)."""
    return msgspec.structs.replace(
        settings, http=msgspec.structs.replace(settings.http, max_body_bytes=1 << 20)
    )


DECLARATION = {"kind": "main_break", "utility": "water", "title": "Main break on Elm St", "severity": "high"}


async def keyed(
    api: Api,
    method: str,
    path: str,
    key: str,
    who: str = "alice",
    json: Any = None,
    data: bytes | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    headers = {**api.tokens.header(who), "Idempotency-Key": key}
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with api.client.request(method, path, headers=headers, json=json, data=data) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def incident_count(api: Api) -> int:
    _, listed = await api.call("GET", "/api/incidents?status=all")
    return len(listed["incidents"])


async def note_count(api: Api, incident_id: str) -> int:
    _, timeline = await api.call("GET", f"/api/incidents/{incident_id}/timeline")
    return sum(e["type"] == "note_added" for e in timeline["events"])


async def test_the_same_key_twice_declares_one_incident_with_one_answer(api: Api) -> None:
    status, first, headers = await keyed(api, "POST", "/api/incidents", "declare-1", json=DECLARATION)
    assert status == 201 and "Idempotent-Replayed" not in headers
    status2, second, headers2 = await keyed(api, "POST", "/api/incidents", "declare-1", json=DECLARATION)
    assert (status2, second) == (201, first)  # the same bytes: the same id
    assert headers2["Idempotent-Replayed"] == "true"
    assert await incident_count(api) == 1
    # Without a key nothing changes: each POST declares.
    await api.declare()
    assert await incident_count(api) == 2


async def test_the_same_key_with_another_body_is_refused(api: Api) -> None:
    await keyed(api, "POST", "/api/incidents", "k", json=DECLARATION)
    status, body, _ = await keyed(api, "POST", "/api/incidents", "k", json={**DECLARATION, "title": "Other"})
    assert status == 422 and b"idempotency_key_reused" in body
    assert await incident_count(api) == 1


async def test_concurrent_requests_with_one_key_create_one_incident(api: Api) -> None:
    answers = await asyncio.gather(
        *(keyed(api, "POST", "/api/incidents", "burst", json=DECLARATION) for _ in range(6))
    )
    created = {body for status, body, _ in answers if status == 201}
    assert len(created) == 1  # every 201 is the one first answer
    for status, body, _ in answers:
        assert status == 201 or (status == 409 and b"idempotency_key_in_progress" in body), body
    assert await incident_count(api) == 1


async def test_another_caller_with_the_same_key_has_a_key_of_their_own(api: Api) -> None:
    _, alice, _ = await keyed(api, "POST", "/api/incidents", "shared", json=DECLARATION)
    status, bob, headers = await keyed(api, "POST", "/api/incidents", "shared", "bob", json=DECLARATION)
    assert status == 201 and bob != alice and "Idempotent-Replayed" not in headers
    assert await incident_count(api) == 2


async def test_a_note_with_a_key_is_added_once(api: Api) -> None:
    incident = await api.declare()
    path = f"/api/incidents/{incident['id']}/notes"
    first = await keyed(api, "POST", path, "note-1", json={"text": "crew on site"})
    again = await keyed(api, "POST", path, "note-1", json={"text": "crew on site"})
    assert first[0] == 201 and again[:2] == first[:2]
    assert await note_count(api, incident["id"]) == 1
    # The same key on another incident's notes is another route: a note there.
    other = await api.declare()
    status, _, _ = await keyed(api, "POST", f"/api/incidents/{other['id']}/notes", "note-1",
                               json={"text": "crew on site"})  # fmt: skip
    assert status == 201 and await note_count(api, other["id"]) == 1


async def test_a_notice_is_planned_and_approved_once_per_key(api: Api) -> None:
    incident = await api.declare(area=BOX)
    path = f"/api/incidents/{incident['id']}/notices"
    body = {"template": "boil_water", "channels": ["sms"], "facts": {"area": "Maple St"}}
    planned = await keyed(api, "POST", path, "plan-1", json=body)
    assert planned[0] == 201
    assert (await keyed(api, "POST", path, "plan-1", json=body))[:2] == planned[:2]
    _, notices = await api.call("GET", path)
    [notice] = notices["notices"]
    approve = f"{path}/{notice['notice_id']}/approve"
    approved = await keyed(api, "POST", approve, "approve-1")
    assert approved[0] == 200
    assert (await keyed(api, "POST", approve, "approve-1"))[:2] == approved[:2]  # not 409: the first answer
    _, timeline = await api.call("GET", f"/api/incidents/{incident['id']}/timeline")
    types = [e["type"] for e in timeline["events"]]
    assert types.count("notice_planned") == 1 and types.count("notice_approved") == 1


async def test_a_refusal_is_the_first_answer_too(api: Api) -> None:
    incident = await api.declare()
    path = f"/api/incidents/{incident['id']}/status"
    refused = await keyed(api, "POST", path, "s-1", json={"status": "closed"})
    assert refused[0] == 409
    # The incident moves on; the key still answers what it answered.
    assert (await api.call("POST", path, json={"status": "active"}))[0] == 200
    again = await keyed(api, "POST", path, "s-1", json={"status": "closed"})
    assert again[:2] == refused[:2] and again[2]["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", "x" * 201, "tab\there", "naïve"])
async def test_a_malformed_key_is_refused(api: Api, key: str) -> None:
    headers = {**api.tokens.header("alice"), "Idempotency-Key": key}
    async with api.client.post("/api/incidents", headers=headers, json=DECLARATION) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_idempotency_key"
    assert await incident_count(api) == 0


async def test_after_a_failure_a_retry_runs_again_only_when_nothing_was_written(api: Api) -> None:
    """A 5xx leaves the key ``unknown`` with the guard read before the request ran: a retry runs
    again when the guard shows no write, else answers 409 ``idempotency_outcome_unknown``."""
    app = api.client.app
    store, clock = app[STORE], app[CLOCK]
    incident = await api.declare()
    path = f"/api/incidents/{incident['id']}/notes"
    body = b'{"text":"crew on site"}'

    async def failed(key: str, guard: str) -> None:
        now = isoformat(clock.now())
        record = IdempotencyRecord(
            scope=f"alice POST {path}", key=key, body_sha256=hashlib.sha256(body).hexdigest(),
            guard=guard, created_at=now, updated_at=now,
        )  # fmt: skip
        assert await store.claim_idempotency_key(record, now) is None
        assert await store.update_idempotency_key(record.scope, key, now, IdempotencyChange(state="unknown",
                                                                                            updated_at=now))  # fmt: skip

    seq = f"seq={incident['last_seq']}"
    await failed("nothing-written", seq)
    status, _, _ = await keyed(api, "POST", path, "nothing-written", data=body)
    assert status == 201 and await note_count(api, incident["id"]) == 1
    await failed("maybe-written", f"seq={incident['last_seq'] - 1}")  # the incident moved since
    status, answer, _ = await keyed(api, "POST", path, "maybe-written", data=body)
    assert status == 409 and b"idempotency_outcome_unknown" in answer
    assert await note_count(api, incident["id"]) == 1


DEEP = 10_000


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/incidents"),
        ("POST", "/api/incidents/{id}/notes"),
        ("POST", "/api/incidents/{id}/status"),
        ("POST", "/api/incidents/{id}/notices"),
        ("PUT", "/api/incidents/{id}/area"),
    ],
)
async def test_a_deeply_nested_body_is_400_too_deep(api: Api, method: str, path: str) -> None:
    incident = await api.declare()
    url = path.format(id=incident["id"])
    for raw in ("[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP, "[" * DEEP):
        async with api.client.request(
            method, url, headers={**api.tokens.header("alice"), "Content-Type": "application/json"}, data=raw
        ) as resp:
            assert resp.status == 400, await resp.text()
            assert (await resp.json())["error"]["code"] == "too_deep"


async def test_a_deep_value_inside_a_valid_body_is_400_too_deep(api: Api) -> None:
    incident = await api.declare()
    deep = "[" * 1000 + "]" * 1000
    note = '{"text": ' + deep + "}"
    area = '{"geometry": {"type": "Polygon", "coordinates": ' + deep + "}}"
    for method, url, raw in (
        ("POST", f"/api/incidents/{incident['id']}/notes", note),
        ("PUT", f"/api/incidents/{incident['id']}/area", area),
        ("POST", "/api/incidents", '{"kind": "main_break", "area": ' + deep + "}"),
    ):
        headers = {**api.tokens.header("alice"), "Content-Type": "application/json"}
        async with api.client.request(method, url, headers=headers, data=raw) as resp:
            assert resp.status == 400, await resp.text()
            assert (await resp.json())["error"]["code"] == "too_deep"


async def test_brackets_inside_strings_do_not_count(api: Api) -> None:
    incident = await api.declare()
    text = '[{"' * 300 + '\\"[['
    status, event = await api.call("POST", f"/api/incidents/{incident['id']}/notes", json={"text": text})
    assert status == 201 and event["data"]["text"] == text


async def test_an_answer_is_kept_when_the_request_ends_during_a_refresh_of_its_hold(
    settings: Settings,
    aiohttp_client: Callable[[Application], Awaitable[Client]],
    tokens: Tokens,
    clock: ManualClock,
) -> None:
    """A request refreshes the hold on its key while it runs. When it ends with a refresh
    under way, that refresh may still land (SQLite's writer runs a write handed to it even if
    its caller is cancelled); the answer must be stored with the key all the same, so that a
    retry gets it rather than a 409. Holds refreshed every millisecond, with time moving,
    make a request end during a refresh nearly every time."""
    quick = msgspec.structs.replace(
        settings, http=msgspec.structs.replace(settings.http, idempotency_lease_s=0.004)
    )
    api = Api(await serve(aiohttp_client, quick, clock=clock), tokens)
    incident = await api.declare()
    path = f"/api/incidents/{incident['id']}/notes"

    async def tick() -> None:
        while True:
            clock.advance(timedelta(milliseconds=1))
            await asyncio.sleep(0.001)

    ticking = asyncio.create_task(tick())
    try:
        for n in range(100):
            status, body, _ = await keyed(api, "POST", path, f"note-{n}", json={"text": f"crew {n}"})
            assert status == 201, body
            again = await keyed(api, "POST", path, f"note-{n}", json={"text": f"crew {n}"})
            assert again[:2] == (201, body), (n, again)
    finally:
        ticking.cancel()
    assert await note_count(api, incident["id"]) == 100


async def _refuse_releases(url: str, refuse: bool) -> None:
    """A database fault that hits only the release of a notice's draft deliveries."""
    if url.startswith("sqlite:///"):

        def run() -> None:
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            try:
                conn.execute(
                    "CREATE TRIGGER refuse_release BEFORE UPDATE OF state ON deliveries WHEN old.state = 'draft'"
                    " BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                    if refuse
                    else "DROP TRIGGER refuse_release"
                )
            finally:
                conn.close()

        await asyncio.to_thread(run)
        return
    conn = await asyncpg.connect(url)
    try:
        if refuse:
            await conn.execute(
                "CREATE FUNCTION refuse_release() RETURNS trigger AS"
                " $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$ LANGUAGE plpgsql;"
                " CREATE TRIGGER refuse_release BEFORE UPDATE ON deliveries FOR EACH ROW"
                " WHEN (OLD.state = 'draft') EXECUTE FUNCTION refuse_release()"
            )
        else:
            await conn.execute("DROP TRIGGER refuse_release ON deliveries")
    finally:
        await conn.close()


async def test_an_approval_the_store_fails_part_way_is_not_left_approved_with_nothing_to_send(
    api: Api, settings: Settings
) -> None:
    """The approval's writes fail after the notice is marked approved but before its deliveries
    are released: nothing may stay half done (an approved notice whose households are never
    sent to, and whose approval cannot be repeated). Once the store takes writes again, the
    retry approves it and its deliveries go out."""
    incident = await api.declare(area=BOX)
    path = f"/api/incidents/{incident['id']}/notices"
    body = {"template": "boil_water", "channels": ["sms"], "facts": {"area": "Maple St"}}
    status, planned = await api.call("POST", path, json=body)
    assert status == 201
    notice_id = planned["notice"]["notice_id"]
    await _refuse_releases(settings.store.url, True)
    failed = await keyed(api, "POST", f"{path}/{notice_id}/approve", "approve-1")
    assert failed[0] >= 500
    await _refuse_releases(settings.store.url, False)
    retried = await keyed(api, "POST", f"{path}/{notice_id}/approve", "approve-1")
    assert retried[0] == 200, retried[1]
    store = api.client.app[STORE]
    rows = await store.list_deliveries(incident["id"], "", 10_000)
    assert rows and {r.state.value for r in rows} == {"planned"}
    _, timeline = await api.call("GET", f"/api/incidents/{incident['id']}/timeline")
    assert [e["type"] for e in timeline["events"]].count("notice_approved") == 1
