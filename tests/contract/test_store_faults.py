"""Store calls under database faults: a transient fault is waited out inside the store, and no
call answers wrongly (a write reported failed was not written; one reported done was written
exactly once).

PostgreSQL faults are real: backends terminated with ``pg_terminate_backend`` (only this
test's own, picked by ``application_name``: other tests share the server), and a TCP relay
between the store and the server that cuts a connection just before or just after it carries
a COMMIT, or refuses to carry anything. SQLite's is another connection holding the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from incident.core import domain
from incident.core.clock import ManualClock
from incident.core.domain import Declaration, Kind, Severity, Utility
from incident.core.errors import OUTCOME_UNKNOWN, StoreError
from incident.deliveries.records import Delivery, DeliveryChange
from incident.deliveries.states import DeliveryState
from incident.incidents.service import verify_incident
from incident.intake.triage import ingest_planner
from incident.reports.model import Location, Report
from incident.settings import CorrelationSettings, StoreSettings
from incident.store import Store, open_store
from incident.store.ports import IncomingReport, PutNotice
from incident.store.postgres import transient_error as pg_transient
from incident.store.sqlite import transient_error as sqlite_transient
from tests.support.rows import AT, notice, terminate_backends

S = DeliveryState
PLAN = ingest_planner(CorrelationSettings())
DECL = Declaration(kind=Kind.main_break, utility=Utility.water, title="t", severity=Severity.high)
X = asyncpg.exceptions
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


# --- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "transient"),
    [
        (X.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
        (X.ConnectionFailureError("connection failure"), True),
        (X.AdminShutdownError("terminating connection due to administrator command"), True),
        (X.CrashShutdownError("terminating connection because of crash of another server process"), True),
        (X.CannotConnectNowError("the database system is starting up"), True),
        (X.TooManyConnectionsError("sorry, too many clients already"), True),
        (X.InternalClientError("cannot switch to state 15; another operation (2) is in progress"), True),
        (X.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed"), True),
        (X.InterfaceError("cannot perform operation: connection is closed"), True),
        (X.SerializationError("could not serialize access due to concurrent update"), True),
        (X.DeadlockDetectedError("deadlock detected"), True),
        (OSError("network is unreachable"), True),
        (ConnectionResetError("reset by peer"), True),
        (ConnectionRefusedError("refused"), True),
        (TimeoutError(), True),
        (X.UniqueViolationError("duplicate key value"), False),
        (X.UndefinedTableError('relation "x" does not exist'), False),
        (X.InvalidTextRepresentationError("invalid input syntax"), False),
        (X.InvalidPasswordError("password authentication failed"), False),
        (X.QueryCanceledError("canceling statement due to statement timeout"), False),
        (X.InterfaceError("cannot perform operation: another operation is in progress"), False),
        (X.InterfaceError("pool is closed"), False),
        (X.InternalClientError("no encoder for OID 1234"), False),
        (ValueError("not a database error"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_postgres_errors_are_classified(err: BaseException, transient: bool) -> None:
    assert pg_transient(err) is transient


def test_sqlite_errors_are_classified(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError) as locked:
            waiter.execute("BEGIN EXCLUSIVE")
        holder.execute("ROLLBACK")
        with pytest.raises(sqlite3.OperationalError) as missing:
            waiter.execute("SELECT * FROM nope")
        waiter.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError) as duplicate:
            waiter.execute("INSERT INTO t VALUES (1)")
    finally:
        holder.close()
        waiter.close()
    assert sqlite_transient(locked.value)  # "database is locked"
    assert sqlite_transient(sqlite3.OperationalError("disk I/O error"))
    assert not sqlite_transient(missing.value)  # "no such table": the same again fails the same
    assert not sqlite_transient(duplicate.value)
    assert not sqlite_transient(ValueError("database is locked"))


# --- PostgreSQL: a relay that cuts COMMITs -----------------------------------------------------

# asyncpg commits with a simple query: 'Q', length 12, "COMMIT;\0".
_COMMIT = b"Q\x00\x00\x00\x0cCOMMIT;\x00"


class Relay:
    """A TCP relay to PostgreSQL that can cut a connection around its next COMMITs."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        #: COMMITs to pass on, then cut the connection before the server's answer comes back.
        self.cut_after = 0
        #: COMMITs to drop together with their connection (the server never sees them).
        self.cut_before = 0
        #: While set, every connection is cut and new ones are refused.
        self.refuse = False
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.refuse:
            client_w.transport.abort()
            return
        server_r, server_w = await asyncio.open_connection(*self._target)
        self._writers |= {client_w, server_w}
        answers_held = asyncio.Event()

        def cut() -> None:
            client_w.transport.abort()
            server_w.transport.abort()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self.refuse:
                    break
                if _COMMIT in data and self.cut_before:
                    self.cut_before -= 1
                    self.cuts += 1
                    break
                if _COMMIT in data and self.cut_after:
                    self.cut_after -= 1
                    self.cuts += 1
                    answers_held.set()  # the answer to this COMMIT never reaches the store
                    server_w.write(data)
                    await server_w.drain()
                    await asyncio.sleep(0.1)  # the server commits meanwhile
                    break
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if answers_held.is_set() or self.refuse:
                    return
                client_w.write(data)
                await client_w.drain()

        try:
            up = asyncio.create_task(upstream())
            down = asyncio.create_task(downstream())
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            if not up.done():
                await asyncio.wait([up], timeout=0.5)
            up.cancel()
            down.cancel()
        except OSError:
            pass
        finally:
            cut()
            self._writers -= {client_w, server_w}


def _through(url: str, port: int, app: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=f"{query}sslmode=disable&application_name={app}"))


@pytest.fixture
async def relay(postgres_schema_url: str) -> AsyncIterator[Relay]:
    parts = urlsplit(postgres_schema_url)
    r = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await r.start()
    yield r
    await r.close()


class PgStores:
    """Stores on the test's schema, named ``app`` in pg_stat_activity (so a test kills only its
    own backends), through the relay unless ``direct``."""

    def __init__(self, url: str, relay: Relay, clock: ManualClock) -> None:
        self.app = f"incident-test-{uuid.uuid4().hex[:8]}"
        self._url, self._relay, self._clock = url, relay, clock

    def make(self, budget_s: float = 10.0, *, direct: bool = False) -> Store:
        port = urlsplit(self._url).port or 5432 if direct else self._relay.port
        url = _through(self._url, port, self.app)
        return open_store(StoreSettings(url=url, pool_size=8, retry_budget_s=budget_s), self._clock)

    @contextlib.asynccontextmanager
    async def opened(self, budget_s: float = 10.0, *, direct: bool = False) -> AsyncIterator[Store]:
        """A store of :meth:`make`, open until the block ends."""
        store = self.make(budget_s, direct=direct)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture
def pg(postgres_schema_url: str, relay: Relay, clock: ManualClock) -> PgStores:
    return PgStores(postgres_schema_url, relay, clock)


async def _incident(store: Store) -> str:
    return (await store.create_incident(lambda _id: domain.declare(DECL, "alice", owner="alice"))).incident.id


async def _note(store: Store, iid: str, text: str) -> None:
    await store.append(iid, lambda s: domain.add_note(s, text, "alice"))


async def _notes(store: Store, iid: str) -> list[str]:
    return [e.data["text"] for e in await store.timeline(iid) if e.type == "note_added"]


def _report(rid: str, i: int) -> IncomingReport:
    report = Report(report_id=rid, kind=Kind.low_pressure, utility=Utility.water, source="scada",
                    severity=Severity.medium, observed_at=T0,
                    location=Location(-85.0 + i * 0.5, 38.0), summary=rid)  # fmt: skip
    return IncomingReport(report, f"utility.reports/0/{rid}")


def _delivery(iid: str, seq: int) -> Delivery:
    return Delivery(delivery_id=f"{iid}-N1:{seq}", notice_id=f"{iid}-N1", incident_id=iid, seq=seq,
                    channel="sms", address=f"+1502555{seq:04d}", account_id=f"A{seq}", language="en",
                    priority_rank=0, state=S.planned, updated_at=AT)  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize("where", ["after", "before"])
async def test_a_commit_cut_off_answers_what_happened_exactly_once(
    pg: PgStores, relay: Relay, where: str
) -> None:
    """Cut after the COMMIT was sent: it landed, and the call says so (no 503 for a stored
    note, no second copy). Cut before: it did not, and the store runs it again, once."""
    async with pg.opened() as store:

        def cut() -> None:
            if where == "after":
                relay.cut_after = 1
            else:
                relay.cut_before = 1

        cut()
        iid = await _incident(store)
        cut()
        await _note(store, iid, "valve 12 closed")
        assert await _notes(store, iid) == ["valve 12 closed"]
        assert (await verify_incident(store, iid)).ok

        cut()
        counters = [await store.next_value("fault-test") for _ in range(2)]
        assert counters == [1, 2]

        cut()
        ingested = await store.ingest_reports([_report("r1", 0), _report("r2", 40)], PLAN)
        assert sorted(s.report.report_id for s in ingested.stored) == ["r1", "r2"]
        assert ingested.duplicates == []

        await store.apply_plan([PutNotice(notice(iid))])
        d = _delivery(iid, 1)
        cut()
        assert await store.add_deliveries([d]) == 1
        cut()
        assert await store.queue_deliveries([d.delivery_id], AT) == [(d.delivery_id, "A1")]
        cut()
        taken = await store.take_deliveries([d.delivery_id], AT)
        assert [t.delivery_id for t in taken] == [d.delivery_id] and taken[0].attempts == 1
        cut()
        accepted = await store.change_delivery(
            DeliveryChange(delivery_id=d.delivery_id, expect=frozenset({S.sending}), to=S.accepted), AT
        )
        # A compare-and-set retried after it committed would find "no row changed" (None).
        assert accepted is not None and accepted.state == S.accepted
        assert [e[1] for e in await store.delivery_events(d.delivery_id)] == ["queued", "sending", "accepted"]
        assert relay.cuts == 8


@pytest.mark.postgres
async def test_a_write_that_cannot_reach_the_server_fails_retryable_and_writes_nothing(
    pg: PgStores, relay: Relay
) -> None:
    async with pg.opened(budget_s=0.3) as store:
        iid = await _incident(store)
        relay.refuse = True
        relay.cut_all()
        with pytest.raises(StoreError) as failed:
            await _note(store, iid, "lost?")
        assert failed.value.retryable and failed.value.code == "store_unavailable"
        relay.refuse = False
        assert await _notes(store, iid) == []
        await _note(store, iid, "after the outage")  # the store recovers by itself
        assert await _notes(store, iid) == ["after the outage"]


@pytest.mark.postgres
async def test_a_commit_whose_fate_cannot_be_learnt_says_so(pg: PgStores, relay: Relay) -> None:
    async with pg.opened(budget_s=0.3) as store:
        iid = await _incident(store)
        relay.cut_after = 1
        note = asyncio.create_task(_note(store, iid, "landed"))
        while relay.cuts == 0:
            await asyncio.sleep(0.01)
        relay.refuse = True  # the server is gone before the store can ask
        with pytest.raises(StoreError) as unknown:
            await note
        # Not "failed": it did land, and the error must not claim otherwise.
        assert unknown.value.code == OUTCOME_UNKNOWN and unknown.value.retryable
        relay.refuse = False
        assert await _notes(store, iid) == ["landed"]


@pytest.mark.postgres
async def test_ping_reports_down_promptly_whatever_the_retry_budget(pg: PgStores, relay: Relay) -> None:
    async with pg.opened(budget_s=600) as store:
        await store.ping()
        relay.refuse = True
        relay.cut_all()
        async with asyncio.timeout(60):  # a guard only: a ping that waited out 600 s would hang here
            with pytest.raises(StoreError):
                await store.ping()
        relay.refuse = False
        await store.ping()  # a pooled connection killed by the outage is not an outage


@pytest.mark.postgres
async def test_terminated_backends_never_fail_or_double_a_write(
    pg: PgStores, postgres_schema_url: str
) -> None:
    """Backends terminated again and again while notes, report ingests and delivery changes
    run: every call succeeds (each blip is shorter than the budget), and each took effect once."""
    async with pg.opened(direct=True) as store:
        incidents = [await _incident(store) for _ in range(2)]
        await store.apply_plan([PutNotice(notice(incidents[0]))])
        deliveries = [_delivery(incidents[0], i) for i in range(1, 41)]
        assert await store.add_deliveries(deliveries) == 40
        stop = asyncio.Event()
        killer = asyncio.create_task(terminate_backends(postgres_schema_url, pg.app, stop))

        async def notes(iid: str) -> None:
            await asyncio.gather(*(_note(store, iid, f"{iid} note {n}") for n in range(30)))

        async def ingest() -> list[str]:
            stored: list[str] = []
            for b in range(12):
                batch = [_report(f"r{b}-{i}", b * 5 + i) for i in range(5)]
                result = await store.ingest_reports(batch, PLAN)
                assert result.duplicates == []
                stored += [s.report.report_id for s in result.stored]
                await asyncio.sleep(0.01)
            return stored

        async def fan_out(ids: list[str]) -> None:
            assert sorted(d for d, _ in await store.queue_deliveries(ids, AT)) == sorted(ids)
            for d in ids:
                assert [t.delivery_id for t in await store.take_deliveries([d], AT)] == [d]
                done = await store.change_delivery(
                    DeliveryChange(delivery_id=d, expect=frozenset({S.sending}), to=S.accepted), AT
                )
                assert done is not None and done.state == S.accepted

        ids = [d.delivery_id for d in deliveries]
        try:
            _, _, stored, _, _ = await asyncio.gather(
                notes(incidents[0]), notes(incidents[1]), ingest(), fan_out(ids[:20]), fan_out(ids[20:])
            )
        finally:
            stop.set()
            killed = await killer
        assert killed > 0
        assert sorted(stored) == sorted(f"r{b}-{i}" for b in range(12) for i in range(5))
        for iid in incidents:
            assert sorted(await _notes(store, iid)) == sorted(f"{iid} note {n}" for n in range(30))
            assert (await verify_incident(store, iid)).ok
        for d in ids:  # all logged at the same AT: their order on disk is not theirs
            assert sorted(e[1] for e in await store.delivery_events(d)) == ["accepted", "queued", "sending"]


# --- SQLite: another connection holds the write lock -------------------------------------------


def _hold_write_lock(path: Path, held: threading.Event, release: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(30)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'incident.db'}"


async def test_sqlite_writes_wait_for_another_connections_lock(sqlite_url: str, clock: ManualClock) -> None:
    store = open_store(StoreSettings(url=sqlite_url, retry_budget_s=30), clock)
    await store.open()
    try:
        iid = await _incident(store)
        held, release = threading.Event(), threading.Event()
        holder = asyncio.create_task(
            asyncio.to_thread(_hold_write_lock, Path(sqlite_url.removeprefix("sqlite:///")), held, release)
        )
        await asyncio.to_thread(held.wait, 10)
        note = asyncio.create_task(_note(store, iid, "written once the lock is free"))
        await asyncio.sleep(0.3)
        assert not note.done()  # waiting, not failed
        release.set()
        await holder
        await note
        assert await _notes(store, iid) == ["written once the lock is free"]
    finally:
        await store.close()


async def test_sqlite_write_fails_retryable_when_the_lock_outlasts_the_budget(
    sqlite_url: str, clock: ManualClock
) -> None:
    store = open_store(StoreSettings(url=sqlite_url, retry_budget_s=0.2), clock)
    await store.open()
    try:
        iid = await _incident(store)
        held, release = threading.Event(), threading.Event()
        holder = asyncio.create_task(
            asyncio.to_thread(_hold_write_lock, Path(sqlite_url.removeprefix("sqlite:///")), held, release)
        )
        await asyncio.to_thread(held.wait, 10)
        try:
            with pytest.raises(StoreError) as failed:
                await _note(store, iid, "not now")
            assert failed.value.retryable and failed.value.code == "store_unavailable"
        finally:
            release.set()
            await holder
        assert await _notes(store, iid) == []
        await _note(store, iid, "now")
        assert await _notes(store, iid) == ["now"]
    finally:
        await store.close()
