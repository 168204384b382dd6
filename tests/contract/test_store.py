"""The store contract: every implementation (SQLite, PostgreSQL) passes these."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import pytest

from incident.core import domain
from incident.core.clock import ManualClock
from incident.core.domain import Declaration, Incident, Kind, Severity, Status, Utility
from incident.core.errors import IllegalTransition, NotFound
from incident.incidents.service import verify_incident
from incident.settings import sqlite_path
from incident.store import Store
from incident.store.migrations import LATEST

DECL = Declaration(
    kind=Kind.main_break, utility=Utility.water, title="Main break on Elm St", severity=Severity.high
)


async def _declare(store: Store, actor: str = "alice") -> Incident:
    appended = await store.create_incident(lambda _id: domain.declare(DECL, actor, owner=actor))
    return appended.incident


async def test_migrations_are_applied_at_open(store: Store) -> None:
    assert await store.schema_version() == LATEST


async def test_opening_twice_does_not_reapply_migrations(
    make_store: Callable[[], Store], store: Store
) -> None:
    again = make_store()
    await again.open()
    try:
        assert await again.schema_version() == LATEST
    finally:
        await again.close()


async def test_declare_gives_readable_sequential_ids(store: Store, clock: ManualClock) -> None:
    first = await _declare(store)
    second = await _declare(store)
    assert first.id == "INC-2026-000001"
    assert second.id == "INC-2026-000002"
    assert first.status == Status.declared and first.owner == "alice"
    assert first.last_seq == 1
    clock.advance(timedelta(days=60))  # into 2027: numbering restarts per year
    assert (await _declare(store)).id == "INC-2027-000001"


async def test_get_and_list(store: Store) -> None:
    a = await _declare(store)
    b = await _declare(store)
    await store.append(b.id, lambda s: domain.change_status(s, Status.cancelled, "alice", "false alarm"))
    assert await store.get_incident(a.id) == a
    assert await store.get_incident("INC-2026-999999") is None
    open_ids = [i.id for i in await store.list_incidents(domain.OPEN_STATUSES)]
    assert open_ids == [a.id]
    assert {i.id for i in await store.list_incidents(None)} == {a.id, b.id}
    assert len(await store.list_incidents(None, limit=1)) == 1


async def test_append_folds_state_and_numbers_events(store: Store, clock: ManualClock) -> None:
    inc = await _declare(store)
    clock.advance(timedelta(minutes=5))
    appended = await store.append(inc.id, lambda s: domain.change_status(s, Status.active, "alice", None))
    assert appended.incident.status == Status.active
    assert [e.seq for e in appended.events] == [2]
    assert appended.events[0].at == "2026-11-22T08:20:00.000000+00:00"
    assert appended.events[0].prev_hash == inc.head_hash
    assert await store.get_incident(inc.id) == appended.incident
    events = await store.timeline(inc.id)
    assert [(e.seq, e.type) for e in events] == [(1, "declared"), (2, "status_changed")]
    assert [e.seq for e in await store.timeline(inc.id, after_seq=1)] == [2]
    assert domain.fold(events) == appended.incident


async def test_a_refused_command_writes_nothing(store: Store) -> None:
    inc = await _declare(store)
    with pytest.raises(IllegalTransition):
        await store.append(inc.id, lambda s: domain.change_status(s, Status.closed, "alice", None))
    assert await store.get_incident(inc.id) == inc
    assert len(await store.timeline(inc.id)) == 1


async def test_a_command_failing_midway_writes_nothing(store: Store) -> None:
    inc = await _declare(store)

    def half(state: Incident) -> list[domain.EventDraft]:
        # A draft that cannot be sealed (not JSON-serialisable) after a good one.
        return [
            domain.EventDraft(type="note_added", actor="alice", data={"text": "ok"}),
            domain.EventDraft(type="note_added", actor="alice", data={"text": object()}),
        ]

    with pytest.raises(TypeError):
        await store.append(inc.id, half)
    assert len(await store.timeline(inc.id)) == 1
    assert (await verify_incident(store, inc.id)).ok


async def test_append_to_unknown_incident_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.append("INC-2026-424242", lambda s: domain.add_note(s, "x", "alice"))


async def test_200_concurrent_appends_give_a_gapless_valid_chain(store: Store) -> None:
    inc = await _declare(store)
    results = await asyncio.gather(
        *(store.append(inc.id, lambda s, i=i: domain.add_note(s, f"note {i}", "alice")) for i in range(200))
    )
    seqs = sorted(r.events[0].seq for r in results)
    assert seqs == list(range(2, 202))
    events = await store.timeline(inc.id)
    assert [e.seq for e in events] == list(range(1, 202))
    assert {e.data["text"] for e in events[1:]} == {f"note {i}" for i in range(200)}
    integrity = await verify_incident(store, inc.id)
    assert integrity.ok, integrity.problems
    assert integrity.events == 201


async def test_concurrent_declarations_get_distinct_ids(store: Store) -> None:
    incidents = await asyncio.gather(*(_declare(store) for _ in range(30)))
    assert len({i.id for i in incidents}) == 30


async def test_state_survives_a_restart(make_store: Callable[[], Store]) -> None:
    first = make_store()
    await first.open()
    inc = await _declare(first)
    await first.append(inc.id, lambda s: domain.change_status(s, Status.active, "alice", None))
    await first.close()

    second = make_store()
    await second.open()
    try:
        again = await second.get_incident(inc.id)
        assert again is not None and again.status == Status.active
        assert len(await second.timeline(inc.id)) == 2
        assert (await verify_incident(second, inc.id)).ok
        assert (await _declare(second)).id == "INC-2026-000002"
    finally:
        await second.close()


# --- tampering, done the way an insider would: straight on the database ------------------


async def _tamper(store_url: str, sql: str, *args: object) -> None:
    """Run ``sql`` directly on the store's database, with the append-only guard removed."""
    if store_url.startswith("sqlite:///"):
        import sqlite3

        def run() -> None:
            conn = sqlite3.connect(sqlite_path(store_url), isolation_level=None)
            try:
                conn.execute("DROP TRIGGER IF EXISTS timeline_events_no_update")
                conn.execute("DROP TRIGGER IF EXISTS timeline_events_no_delete")
                conn.execute(sql.replace("$1", "?").replace("$2", "?"), args)
            finally:
                conn.close()

        await asyncio.to_thread(run)
    else:
        conn = await asyncpg.connect(store_url)
        try:
            await conn.execute("ALTER TABLE timeline_events DISABLE TRIGGER USER")
            await conn.execute(sql, *args)
        finally:
            await conn.close()


async def _three_events(store: Store) -> Incident:
    inc = await _declare(store)
    await store.append(inc.id, lambda s: domain.add_note(s, "crew dispatched", "alice"))
    await store.append(inc.id, lambda s: domain.add_note(s, "valve V-12 closed", "alice"))
    return inc


async def test_direct_updates_and_deletes_are_refused(store: Store, store_url: str) -> None:
    inc = await _three_events(store)
    if store_url.startswith("sqlite:///"):
        import sqlite3

        def run() -> None:
            conn = sqlite3.connect(sqlite_path(store_url), isolation_level=None)
            try:
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    conn.execute("UPDATE timeline_events SET actor = 'mallory'")
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    conn.execute("DELETE FROM timeline_events")
            finally:
                conn.close()

        await asyncio.to_thread(run)
    else:
        conn = await asyncpg.connect(store_url)
        try:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("UPDATE timeline_events SET actor = 'mallory'")
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("DELETE FROM timeline_events")
        finally:
            await conn.close()
    assert len(await store.timeline(inc.id)) == 3


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        (
            'UPDATE timeline_events SET data = \'{"text":"nothing happened"}\' WHERE incident_id = $1 AND seq = 2',
            "event 2: content does not match its hash",
        ),
        (
            "UPDATE timeline_events SET actor = 'mallory' WHERE incident_id = $1 AND seq = 1",
            "event 1: content",
        ),
        ("DELETE FROM timeline_events WHERE incident_id = $1 AND seq = 2", "expected sequence number 2"),
        ("DELETE FROM timeline_events WHERE incident_id = $1 AND seq = 3", "incident record ends at event 3"),
    ],
    ids=["edit-data", "edit-actor", "delete-middle", "delete-newest"],
)
async def test_tampering_is_detected(store: Store, store_url: str, sql: str, problem: str) -> None:
    inc = await _three_events(store)
    assert (await verify_incident(store, inc.id)).ok
    await _tamper(store_url, sql, inc.id)
    result = await verify_incident(store, inc.id)
    assert not result.ok
    assert any(problem in p for p in result.problems), result.problems


async def test_two_instances_on_one_database_keep_one_chain(
    make_store: Callable[[], Store], store: Store
) -> None:
    """Two service instances append to the same incidents at once (scale-out)."""
    other = make_store()
    await other.open()
    try:
        a, b = await _declare(store), await _declare(other)
        jobs = [
            s.append(inc.id, lambda st, i=i: domain.add_note(st, f"n{i}", "alice"))
            for i in range(60)
            for s, inc in ((store, a), (other, a), (store, b), (other, b))
        ]
        await asyncio.gather(*jobs)
        for inc in (a, b):
            result = await verify_incident(store, inc.id)
            assert result.ok, result.problems
            assert result.events == 121
    finally:
        await other.close()


async def test_a_closed_store_refuses_work(make_store: Callable[[], Store]) -> None:
    s = make_store()
    await s.open()
    inc = await _declare(s)
    await s.close()
    from incident.core.errors import StoreError

    with pytest.raises(StoreError, match="not open"):
        await s.append(inc.id, lambda st: domain.add_note(st, "late", "alice"))
