"""PostgreSQL store (asyncpg): the production store, shared by several service instances.

Appends are group-committed: one task takes every append queued while the previous
transaction ran, locks the incidents involved (SELECT ... FOR UPDATE, in id order so two
instances never deadlock), runs each ``decide`` against the current state, and writes all
events and projections in one transaction. The row locks keep each incident's sequence
gapless and its chain linear whichever instance appends; a refused command is simply left
out of the batch, so it writes nothing.

Database faults. :func:`transient_error` says which errors may pass (the connection or the
server went away, PostgreSQL rolled back a serialization failure or a deadlock); every store
call retries those with backoff for ``[store] retry_budget_s`` and only then raises
``StoreError(retryable=True)``. Everything else is permanent (``retryable=False``) at once.
A retry never doubles a write and never answers wrongly:

- reads, and writes whose repetition changes nothing and answers the same (upserts that
  keep the newest, ON CONFLICT DO NOTHING without a count, lease take/give-back), are
  simply run again (``verify=False``);
- every other write transaction (appends, plans, ingest, counters, delivery and timer
  compare-and-set changes, inserts that count what was new) learns its transaction id first.
  If the connection dies while its COMMIT is in flight, the outcome is asked of the server
  (``pg_xact_status``) on another connection: committed -> the answer computed in that
  transaction is returned; aborted -> run again. A compare-and-set retried after it had
  committed would find "no row changed" and read as a refusal; this is why it is verified,
  not blindly retried. When the outcome cannot be learnt within the budget the error says so
  (code ``store_outcome_unknown``) instead of claiming a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar, cast

import asyncpg
import msgspec
import orjson

from incident.core.clock import Clock, isoformat
from incident.core.domain import Incident, Status, TimelineEvent, incident_id
from incident.core.errors import OUTCOME_UNKNOWN, Conflict, NotFound, StoreError
from incident.core.timeline import seal
from incident.deliveries.records import Delivery, DeliveryChange, Notice
from incident.deliveries.states import SENDABLE, DeliveryState, sql_list
from incident.deliveries.states import DeliveryState as S
from incident.households.model import Household
from incident.reports.model import ReportStatus, StoredReport
from incident.store.common import (
    AWAITING_FINAL_WHERE,
    CLAIMED,
    COUNTS_SQL,
    CURRENT_ENROLMENT,
    DELIVERY_COLUMNS,
    DUE_SQL,
    ENROLMENT_COLUMNS,
    ENROLMENT_COUNT,
    ENROLMENT_COUNT_ALL,
    HOUSEHOLD_COLUMNS,
    HOUSEHOLD_UPSERT,
    HOUSEHOLD_WIDTH,
    IDEMPOTENCY_COLUMNS,
    INBOUND_FORGET,
    INBOUND_RECORD,
    LAST_TAKEN,
    LOCK_TAKE,
    NOTICE_UPSERT,
    OLDEST_DUE,
    OPEN,
    ORPHANED_SENDING_WHERE,
    PENDING_BY_NOTICE,
    RELEASABLE_WHERE,
    RELEASED,
    REPLACE_ENROLMENTS,
    REPORT_COLUMNS,
    SELF_ENROLLED,
    SENDER_RENEW,
    SENDERS_FORGET,
    SIGHTINGS_SQL,
    TIMER_CLAIMABLE,
    TIMER_COLUMNS,
    TIMER_INSERT,
    TIMER_REARM,
    Backoff,
    ChangeGroup,
    Retry,
    admission,
    candidates,
    change_groups,
    day_before,
    delivery_of,
    delivery_row,
    enrolment_of,
    enrolment_values,
    household_of,
    idempotency_of,
    idempotency_values,
    notice_of,
    notice_row,
    report_row,
    self_update,
    self_update_values,
    stored_report,
    timer_of,
    timer_values,
    upsert_rows,
)
from incident.store.migrations import MIGRATIONS
from incident.store.ports import (
    Admission,
    Appended,
    AppendTo,
    Decider,
    DueTimer,
    Enrolment,
    EnrolmentLimits,
    HouseholdUpsert,
    IdempotencyChange,
    IdempotencyRecord,
    IncomingReport,
    IngestResult,
    NewIncident,
    Opener,
    Planner,
    PlanResult,
    PlanStep,
    PutNotice,
    SetReport,
    incident_counter,
)

T = TypeVar("T")
_decode_incident = msgspec.json.Decoder(Incident).decode
_encode = msgspec.json.Encoder().encode
_EVENT_COLUMNS = "incident_id, seq, type, actor, at, data, prev_hash, hash"
# Any constants work; they keep instances from migrating (or ingesting) at the same time.
_MIGRATION_LOCK = 7_311_042_118
_INGEST_LOCK = 7_311_042_119


def _event(row: Any) -> TimelineEvent:
    return TimelineEvent(
        incident_id=row[0],
        seq=row[1],
        type=row[2],
        actor=row[3],
        at=row[4],
        data=orjson.loads(row[5]),
        prev_hash=row[6],
        hash=row[7],
    )


#: What the driver and the network raise; converted to StoreError at this boundary.
_VENDOR = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
#: PostgreSQL rolled the transaction back itself: trying again is safe and may succeed.
_ROLLED_BACK = (asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError)
_GONE = (
    OSError,  # refused, reset (ConnectionResetError), unreachable
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,  # class 08: connection lost / does not exist
    asyncpg.exceptions.AdminShutdownError,  # pg_terminate_backend, server shutting down
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,  # starting up, recovering
    # Class 53 (too many connections, disk full, out of memory) passes, and is not the data's
    # fault: a report must wait for it, never be dead-lettered because of it.
    asyncpg.exceptions.InsufficientResourcesError,
)


def _connection_lost(err: BaseException) -> bool:
    """The connection (or the server) went away: a COMMIT in flight may or may not have landed."""
    if isinstance(err, _GONE):
        return True
    if isinstance(err, asyncpg.InternalClientError):
        # "cannot switch to state 15; another operation (2) is in progress": the server's
        # goodbye arrived while the protocol was idle. Other internal errors are bugs.
        return "another operation" in str(err)
    if isinstance(err, asyncpg.InterfaceError):
        # "connection is closed", "the underlying connection is closed"; not misuse such as
        # "another operation is in progress" on a shared connection, or "pool is closed".
        return "connection is closed" in str(err)
    return False


def transient_error(err: BaseException) -> bool:
    """True when the same call may succeed if tried again (the SQLite store has its twin)."""
    return isinstance(err, _ROLLED_BACK) or _connection_lost(err)


def _store_error(err: BaseException) -> StoreError:
    return StoreError(f"PostgreSQL: {type(err).__name__}: {err}", retryable=transient_error(err))


class _CommitUnknown(Exception):
    """The connection died during COMMIT; ``xid`` tells whether it landed."""

    def __init__(self, xid: str, result: Any) -> None:
        super().__init__(xid)
        self.xid = xid
        self.result = result


#: /healthz must answer promptly: a ping gets this long, and no backoff.
_PING_TIMEOUT_S = 2.0


_MAX_BATCH = 256
_RELEASE_DRAFTS = (
    f"UPDATE deliveries SET state = {sql_list(S.planned)}, not_before = $1, updated_at = $3"  # noqa: S608
    f" WHERE notice_id = $2 AND state = {sql_list(S.draft)}"
)


_DUE = DUE_SQL.format(*(["$1", "$1", "$2::text", "$2", "$3"] * 2), "$3")


class _Job:
    __slots__ = ("decide", "future", "incident_id")

    def __init__(self, incident_id: str, decide: Decider, future: asyncio.Future[Appended]) -> None:
        self.incident_id = incident_id
        self.decide = decide
        self.future = future


#: The delivery's columns, named through the table (``unnest`` has columns of its own).
_RETURNED = ", ".join(f"deliveries.{c.strip()}" for c in DELIVERY_COLUMNS.split(","))


def _change_statement(group: ChangeGroup, at: str) -> tuple[str, list[Any]]:
    """One UPDATE ... FROM unnest(...) for a group of changes, returning the changed rows."""
    n = len(group.columns)
    sets = ["state = $1", "updated_at = $2"]
    sets += [f"{column} = v.c{i}" for i, column in enumerate(group.columns)]
    if group.count_attempt:
        sets.append("attempts = attempts + 1")
    arrays = ", ".join(f"${i}::text[]" for i in range(3, n + 4))
    names = ", ".join(["id", *(f"c{i}" for i in range(n))])
    sql = (
        f"UPDATE deliveries SET {', '.join(sets)} FROM unnest({arrays}) AS v({names})"  # noqa: S608
        f" WHERE deliveries.delivery_id = v.id AND deliveries.state = ANY(${n + 4}::text[])"
        f" RETURNING {_RETURNED}"
    )
    columns: list[list[Any]] = [[d for _, d, _ in group.items]]
    columns += [[values[i] for _, _, values in group.items] for i in range(n)]
    return sql, [group.to, at, *columns, list(group.expect)]


async def _add_events(conn: Any, at: str, state: str, detail: str, delivery_ids: list[str]) -> None:
    """One delivery event each, in one statement."""
    if delivery_ids:
        await conn.execute(
            "INSERT INTO delivery_events (delivery_id, at, state, detail)"
            " SELECT d, $2, $3, $4 FROM unnest($1::text[]) AS d",
            delivery_ids, at, state, detail,
        )  # fmt: skip


class PostgresStore:
    def __init__(
        self,
        url: str,
        clock: Clock,
        pool_size: int = 10,
        *,
        backoff: Backoff | None = None,
        application_name: str = "incident",
    ) -> None:
        self._url = url
        self._clock = clock
        self._pool_size = pool_size
        self._backoff = backoff or Backoff()
        #: Names the pool's sessions in pg_stat_activity (an application_name in the URL wins).
        self._application_name = application_name
        self._pool: asyncpg.Pool | None = None
        self._pending: list[_Job] = []
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        settings = {} if "application_name=" in self._url else {"application_name": self._application_name}
        retry = Retry(self._backoff)
        while self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self._url,
                    min_size=1,
                    max_size=self._pool_size,
                    command_timeout=30,
                    # A black-holed server must not hold a retrying call far past its budget.
                    timeout=min(max(self._backoff.budget_s, 1.0), 10.0),
                    server_settings=settings,
                )
            except _VENDOR as err:
                pause = retry.pause() if transient_error(err) else None
                if pause is None:
                    raise _store_error(err) from err
                await asyncio.sleep(pause)
        await self._run(self._migrate, verify=False)
        self._committer = asyncio.create_task(self._commit_loop(), name="postgres-group-commit")

    async def close(self) -> None:
        if self._committer is not None:
            # Appends already queued are committed before the pool goes.
            self._closing = True
            self._wakeup.set()
            await self._committer
            self._committer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _run(
        self, fn: Callable[[Any], Awaitable[T]], *, transaction: bool = True, verify: bool = True
    ) -> T:
        """Run ``fn`` on a pooled connection (in a transaction unless told otherwise), retrying
        transient errors within the budget. ``fn`` must be safe to run again: it is, whenever
        its transaction did not commit. ``verify``: see the module's notes."""
        retry = Retry(self._backoff)
        while True:
            try:
                return await self._once(fn, transaction=transaction, verify=transaction and verify)
            except _CommitUnknown as unknown:
                if await self._committed(unknown.xid, retry):
                    return cast(T, unknown.result)
                err: BaseException = unknown.__cause__ or unknown
            except _VENDOR as vendor:
                err = vendor
                if not transient_error(err):
                    raise _store_error(err) from err
            if _connection_lost(err):
                # A lost server takes every pooled connection with it: start afresh rather
                # than meet each dead one in turn.
                await self._expire_connections()
            pause = retry.pause()
            if pause is None:
                raise _store_error(err) from err
            await asyncio.sleep(pause)

    async def _once(self, fn: Callable[[Any], Awaitable[T]], *, transaction: bool, verify: bool) -> T:
        if self._pool is None:
            raise StoreError("the store is not open", retryable=False)
        pool = self._pool
        conn = await pool.acquire()
        try:
            return await self._on(conn, fn, transaction=transaction, verify=verify)
        finally:
            # Giving the connection back resets it, which fails if the backend has died since:
            # the outcome is known by now (it must not turn a commit into a retry) and the
            # pool replaces the connection.
            with contextlib.suppress(*_VENDOR):
                await pool.release(conn)

    @staticmethod
    async def _on(conn: Any, fn: Callable[[Any], Awaitable[T]], *, transaction: bool, verify: bool) -> T:
        """``fn`` on ``conn``; with ``verify`` a COMMIT cut off raises :class:`_CommitUnknown`."""
        if not transaction:
            return await fn(conn)
        tx = conn.transaction()
        await tx.start()
        try:
            xid = str(await conn.fetchval("SELECT pg_current_xact_id()")) if verify else None
            result = await fn(conn)
        except BaseException:
            # On a dead connection the server has rolled back already.
            with contextlib.suppress(*_VENDOR):
                await tx.rollback()
            raise
        try:
            await tx.commit()
        except _VENDOR as err:
            if xid is not None and _connection_lost(err):
                raise _CommitUnknown(xid, result) from err
            raise
        return result

    async def _committed(self, xid: str, retry: Retry) -> bool:
        """Whether transaction ``xid``, whose COMMIT was cut off, committed (asked on another
        connection). Raises StoreError(store_outcome_unknown) if the server cannot say in time."""
        unknown = StoreError(
            "PostgreSQL: the connection was lost during COMMIT and whether the write took effect"
            " could not be learnt; read before writing again",
            code=OUTCOME_UNKNOWN,
        )
        while True:
            status: str | None = None
            try:
                if self._pool is not None:
                    status = await self._pool.fetchval("SELECT pg_xact_status($1::text::xid8)", xid)
            except _VENDOR as err:
                if not transient_error(err):
                    raise unknown from err
            if status == "committed":
                return True
            if status == "aborted":
                return False
            # Unreachable yet, or "in progress": the cut-off backend has not finished.
            pause = retry.pause()
            if pause is None:
                raise unknown
            await asyncio.sleep(pause)

    async def _expire_connections(self) -> None:
        if self._pool is not None:
            # Connections in use are replaced when given back; idle ones at the next acquire.
            await self._pool.expire_connections()

    @staticmethod
    async def _migrate(conn: Any) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
        )
        done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            await conn.execute(migration.postgres)
            await conn.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2, now())", migration.version, migration.name
            )

    async def ping(self) -> None:
        # No backoff: /healthz must say "down" promptly.
        try:
            async with asyncio.timeout(_PING_TIMEOUT_S):
                await self._ping()
        except TimeoutError as err:  # asyncio.timeout's own: the driver's are StoreErrors by now
            raise StoreError(f"PostgreSQL: no answer within {_PING_TIMEOUT_S:g} s") from err

    async def _ping(self) -> None:
        async def select_1(conn: Any) -> None:
            await conn.fetchval("SELECT 1")

        try:
            await self._once(select_1, transaction=False, verify=False)
        except _VENDOR as err:
            if not _connection_lost(err):
                raise _store_error(err) from err
            # A second try at once: a pooled connection killed by an earlier blip is not an
            # outage of the server.
            await self._expire_connections()
            try:
                await self._once(select_1, transaction=False, verify=False)
            except _VENDOR as again:
                raise _store_error(again) from again

    async def schema_version(self) -> int:
        value = await self._run(
            lambda c: c.fetchval("SELECT max(version) FROM schema_migrations"), transaction=False
        )
        return int(value or 0)

    @staticmethod
    async def _write_events(conn: Any, events: list[TimelineEvent]) -> None:
        await conn.executemany(
            f"INSERT INTO timeline_events ({_EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",  # noqa: S608
            [
                (
                    e.incident_id,
                    e.seq,
                    e.type,
                    e.actor,
                    e.at,
                    orjson.dumps(e.data).decode(),
                    e.prev_hash,
                    e.hash,
                )
                for e in events
            ],
        )

    @staticmethod
    async def _update_incidents(conn: Any, states: list[Incident]) -> None:
        await conn.executemany(
            "UPDATE incidents SET status = $1, updated_at = $2, last_seq = $3, head_hash = $4,"
            " state = $5 WHERE id = $6",
            [
                (s.status.value, s.updated_at, s.last_seq, s.head_hash, _encode(s).decode(), s.id)
                for s in states
            ],
        )

    async def create_incident(self, opener: Opener) -> Appended:
        return await self._run(lambda conn: self._create(conn, opener))

    async def _create(self, conn: Any, opener: Opener) -> Appended:
        now = self._clock.now()
        number = await conn.fetchval(
            "INSERT INTO counters (name, value) VALUES ($1, 1)"
            " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            incident_counter(now.year),
        )
        new_id = incident_id(now.year, number)
        state, events = seal(new_id, None, opener(new_id), now)
        await conn.execute(
            "INSERT INTO incidents (id, status, declared_at, updated_at, last_seq, head_hash, state)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            state.id,
            state.status.value,
            state.declared_at,
            state.updated_at,
            state.last_seq,
            state.head_hash,
            _encode(state).decode(),
        )
        await self._write_events(conn, events)
        return Appended(state, events)

    async def _apply(self, conn: Any, steps: Sequence[PlanStep]) -> PlanResult:
        # Lock every existing incident the plan touches, in id order, before changing any.
        existing = sorted({s.ref for s in steps if isinstance(s, AppendTo) and not s.ref.startswith("new:")})
        rows = await conn.fetch(
            "SELECT id, state FROM incidents WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", existing
        )
        states = {r[0]: _decode_incident(r[1]) for r in rows}
        ids: dict[str, str] = {}
        appended: list[Appended] = []
        for step in steps:
            match step:
                case NewIncident(ref=ref, opener=opener):
                    created = await self._create(conn, opener)
                    ids[ref] = created.incident.id
                    states[created.incident.id] = created.incident
                    appended.append(created)
                case AppendTo(ref=ref, decide=decide):
                    target = ids.get(ref, ref)
                    state = states.get(target)
                    if state is None:
                        raise NotFound(f"no incident {target}")
                    drafts = decide(state)
                    if drafts:
                        new_state, events = seal(target, state, drafts, self._clock.now())
                        await self._write_events(conn, events)
                        await self._update_incidents(conn, [new_state])
                        states[target] = new_state
                        appended.append(Appended(new_state, events))
                case PutNotice(notice=notice):
                    marks = ", ".join(f"${n}" for n in range(1, 9))
                    now = isoformat(self._clock.now())
                    await conn.execute(NOTICE_UPSERT.format(marks), *notice_row(notice, now))
                    if step.release_drafts:
                        await conn.execute(_RELEASE_DRAFTS, notice.send_after, notice.notice_id, now)
                case SetReport():
                    status = await conn.fetchval(
                        "SELECT status FROM reports WHERE report_id = $1 FOR UPDATE", step.report_id
                    )
                    if status is None:
                        raise NotFound(f"no report {step.report_id}")
                    if step.expect is not None and status not in step.expect:
                        raise Conflict(f"report {step.report_id} is {status}")
                    await conn.execute(
                        "UPDATE reports SET status = $1, incident_id = $2, note = $3, triaged_by = $4"
                        " WHERE report_id = $5",
                        step.status.value, ids.get(step.incident_ref or "", step.incident_ref),
                        step.note, step.triaged_by, step.report_id,
                    )  # fmt: skip
        return PlanResult(appended, ids)

    async def apply_plan(self, steps: Sequence[PlanStep]) -> PlanResult:
        return await self._run(lambda conn: self._apply(conn, steps))

    async def ingest_reports(self, reports: Sequence[IncomingReport], planner: Planner) -> IngestResult:
        async def run(conn: Any) -> IngestResult:
            # One ingest transaction at a time across instances: correlation must see the
            # incidents an earlier batch opened, or two nearby gas leaks open two incidents.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _INGEST_LOCK)
            received = isoformat(self._clock.now())
            inserted = await conn.fetch(
                f"INSERT INTO reports ({REPORT_COLUMNS})"  # noqa: S608
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::text[], $7::float8[], $8::float8[], $9::text[], $10::text[], $11::text[], $12::text[],"
                " $13::text[], $14::text[], $15::text[], $16::text[])"
                " ON CONFLICT (report_id) DO NOTHING RETURNING report_id",
                *zip(*(report_row(i.report, i.origin, received) for i in reports), strict=True),
            )
            fresh = {r[0] for r in inserted}
            # The same report twice in one batch: the first counts, the second is a duplicate.
            seen: set[str] = set()
            unique_new: list[IncomingReport] = []
            duplicates: list[str] = []
            for item in reports:
                rid = item.report.report_id
                if rid in fresh and rid not in seen:
                    unique_new.append(item)
                else:
                    duplicates.append(rid)
                seen.add(rid)
            new = unique_new
            if not new:
                return IngestResult([], duplicates, [])
            incidents = [
                _decode_incident(r[0])
                for r in await conn.fetch("SELECT state FROM incidents WHERE status = ANY($1::text[])", OPEN)
            ]
            marks = ", ".join(f"${n}" for n in range(1, len(OPEN) + 1))
            sightings = await conn.fetch(SIGHTINGS_SQL.format(open=marks), *OPEN)
            steps = planner([i.report for i in new], candidates(incidents, sightings))
            result = await self._apply(conn, steps)
            rows = await conn.fetch(
                f"SELECT {REPORT_COLUMNS} FROM reports WHERE report_id = ANY($1::text[])",  # noqa: S608
                [i.report.report_id for i in new],
            )
            by_id = {r[0]: stored_report(r) for r in rows}
            return IngestResult([by_id[i.report.report_id] for i in new], duplicates, result.appended)

        return await self._run(run)

    async def upsert_households(self, households: Sequence[Household]) -> HouseholdUpsert:
        async def run(conn: Any) -> HouseholdUpsert:
            now = isoformat(self._clock.now())
            known = {
                r[0]: (r[1], r[2])
                for r in await conn.fetch(
                    "SELECT account_id, digest, source FROM households WHERE account_id = ANY($1::text[])",
                    [h.account_id for h in households],
                )
            }
            rows, counts = upsert_rows(households, known, now)
            marks = ", ".join(f"${n}" for n in range(1, HOUSEHOLD_WIDTH + 1))
            await conn.executemany(HOUSEHOLD_UPSERT.format(marks), rows)
            return counts

        return await self._run(run)

    async def households_page(self, after: str, limit: int) -> list[Household]:
        rows = await self._run(
            lambda c: c.fetch(
                f"SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE account_id > $1"  # noqa: S608
                " ORDER BY account_id LIMIT $2",
                after,
                limit,
            ),
            transaction=False,
        )
        return [household_of(r) for r in rows]

    async def count_households(self) -> int:
        return int(
            await self._run(lambda c: c.fetchval("SELECT count(*) FROM households"), transaction=False)
        )

    async def get_meta(self, key: str) -> str | None:
        value = await self._run(
            lambda c: c.fetchval("SELECT value FROM meta WHERE key = $1", key), transaction=False
        )
        return None if value is None else str(value)

    async def set_meta(self, key: str, value: str) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                key,
                value,
            ),
            verify=False,  # the same value again: repeating changes nothing
        )

    async def next_value(self, name: str) -> int:
        value = await self._run(
            lambda c: c.fetchval(
                "INSERT INTO counters (name, value) VALUES ($1, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
                name,
            )
        )
        return int(value)

    async def release_deliveries(self, notice_id: str, not_before: str | None) -> int:
        status = await self._run(
            lambda c: c.execute(_RELEASE_DRAFTS, not_before, notice_id, isoformat(self._clock.now()))
        )
        return int(str(status).rsplit(" ", 1)[-1])

    async def get_notice(self, notice_id: str) -> Notice | None:
        body = await self._run(
            lambda c: c.fetchval("SELECT body FROM notices WHERE notice_id = $1", notice_id),
            transaction=False,
        )
        return notice_of(body) if body is not None else None

    async def list_notices(self, incident_id: str) -> list[Notice]:
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT body FROM notices WHERE incident_id = $1 ORDER BY created_at, notice_id", incident_id
            ),
            transaction=False,
        )
        return [notice_of(r[0]) for r in rows]

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        columns = list(zip(*(delivery_row(d) for d in deliveries), strict=True)) if deliveries else []
        if not columns:
            return 0
        types = ["text"] * 17
        types[3], types[8], types[10] = "int8", "int4", "int4"  # seq, priority_rank, attempts
        unnest = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, 1))
        inserted = await self._run(
            lambda c: c.fetch(
                f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) SELECT * FROM unnest({unnest})"  # noqa: S608
                " ON CONFLICT DO NOTHING RETURNING 1",
                *[list(col) for col in columns],
            )
        )
        return len(inserted)

    async def change_delivery(self, change: DeliveryChange, at: str) -> Delivery | None:
        return (await self.change_deliveries([change], at))[0]

    async def change_deliveries(self, changes: Sequence[DeliveryChange], at: str) -> list[Delivery | None]:
        async def run(conn: Any) -> list[Delivery | None]:
            done: list[Delivery | None] = [None] * len(changes)
            events: list[tuple[str, str, str, str]] = []
            for group in change_groups(changes, at):
                sql, args = _change_statement(group, at)
                found = {row[0]: row for row in await conn.fetch(sql, *args)}
                for i, delivery_id, _ in group.items:
                    row = found.get(delivery_id)
                    if row is not None:
                        done[i] = delivery_of(row)
                        events.append((delivery_id, at, group.to, changes[i].detail))
            await conn.executemany(
                "INSERT INTO delivery_events (delivery_id, at, state, detail) VALUES ($1, $2, $3, $4)", events
            )
            return done

        return await self._run(run)

    async def queue_deliveries(self, delivery_ids: Sequence[str], at: str) -> list[tuple[str, str]]:
        async def run(conn: Any) -> list[tuple[str, str]]:
            rows = await conn.fetch(
                f"UPDATE deliveries SET state = {sql_list(S.queued)}, updated_at = $1"  # noqa: S608
                f" WHERE delivery_id = ANY($2::text[]) AND state IN ({sql_list(*SENDABLE)})"
                " RETURNING delivery_id, account_id",
                at,
                list(delivery_ids),
            )
            moved = [(r[0], r[1]) for r in rows]
            await conn.executemany(
                "INSERT INTO delivery_events (delivery_id, at, state, detail)"  # noqa: S608
                f" VALUES ($1, $2, {sql_list(S.queued)}, 'job published')",
                [(d, at) for d, _ in moved],
            )
            return moved

        return await self._run(run)

    async def take_deliveries(self, delivery_ids: Sequence[str], at: str) -> list[Delivery]:
        async def run(conn: Any) -> list[Delivery]:
            rows = await conn.fetch(
                f"UPDATE deliveries SET state = {sql_list(S.sending)}, attempts = attempts + 1,"  # noqa: S608
                f" updated_at = $1 WHERE delivery_id = ANY($2::text[]) AND state = {sql_list(S.queued)}"
                f" RETURNING {DELIVERY_COLUMNS}",
                at,
                list(delivery_ids),
            )
            taken = [delivery_of(r) for r in rows]
            await conn.executemany(
                "INSERT INTO delivery_events (delivery_id, at, state, detail)"  # noqa: S608
                f" VALUES ($1, $2, {sql_list(S.sending)}, 'sending')",
                [(d.delivery_id, at) for d in taken],
            )
            return taken

        return await self._run(run)

    async def claim_deliveries(self, delivery_ids: Sequence[str], owner: str, at: str) -> list[Delivery]:
        async def run(conn: Any) -> list[Delivery]:
            rows = await conn.fetch(
                f"UPDATE deliveries SET state = '{CLAIMED}', claimed_by = $3, updated_at = $1"  # noqa: S608
                f" WHERE delivery_id = ANY($2::text[]) AND state = {sql_list(S.queued)}"
                f" RETURNING {DELIVERY_COLUMNS}",
                at, list(delivery_ids), owner,
            )  # fmt: skip
            claimed = [delivery_of(r) for r in rows]
            await _add_events(conn, at, CLAIMED, "claimed by a sender", [d.delivery_id for d in claimed])
            return claimed

        return await self._run(run)

    async def start_deliveries(
        self, delivery_ids: Sequence[str], at: str, owner: str | None = None
    ) -> list[str]:
        async def run(conn: Any) -> list[str]:
            rows = await conn.fetch(
                f"UPDATE deliveries SET state = {sql_list(S.sending)}, attempts = attempts + 1,"  # noqa: S608
                f" updated_at = $1 WHERE delivery_id = ANY($2::text[]) AND state = '{CLAIMED}'"
                " AND ($3::text IS NULL OR claimed_by = $3) RETURNING delivery_id",
                at, list(delivery_ids), owner,
            )  # fmt: skip
            started = [r[0] for r in rows]
            await _add_events(conn, at, S.sending, "carrier call started", started)
            return started

        return await self._run(run)

    async def renew_sender(self, owner: str, alive_until: str, taken_at: str | None) -> None:
        async def run(conn: Any) -> None:
            await conn.execute(SENDER_RENEW.format("$1", "$2", "$3"), owner, alive_until, taken_at)
            await conn.execute(SENDERS_FORGET.format("$1"), day_before(alive_until))

        await self._run(run)

    async def release_claims(
        self, alive_at: str, claimed_before: str, stale_before: str, at: str, owner: str | None = None
    ) -> int:
        async def run(conn: Any) -> int:
            rows = await conn.fetch(
                f"UPDATE deliveries SET state = {sql_list(S.planned)}, claimed_by = NULL, updated_at = $5"  # noqa: S608
                f" WHERE {RELEASABLE_WHERE.format('$1', '$2', '$3', '$4::text')} RETURNING delivery_id",
                claimed_before, alive_at, stale_before, owner, at,
            )  # fmt: skip
            ids = [r[0] for r in rows]
            await _add_events(conn, at, S.planned, RELEASED, ids)
            return len(ids)

        return await self._run(run)

    async def fanout_progress(self, now: str) -> tuple[str | None, str | None]:
        async def run(conn: Any) -> tuple[str | None, str | None]:
            return await conn.fetchval(OLDEST_DUE.format("$1"), now), await conn.fetchval(LAST_TAKEN)

        return await self._run(run, transaction=False)

    async def awaiting_final(self, before: str, limit: int) -> list[Delivery]:
        return await self._deliveries(AWAITING_FINAL_WHERE.format("$1", "$2"), before, limit)

    async def record_inbound(self, message_sid: str, at: str) -> bool:
        row = await self._run(lambda c: c.fetchval(INBOUND_RECORD.format("$1", "$2"), message_sid, at))
        return row is not None

    async def forget_inbound(self, message_sid: str) -> None:
        await self._run(lambda c: c.execute(INBOUND_FORGET.format("$1"), message_sid))

    async def _deliveries(self, where: str, *args: Any) -> list[Delivery]:
        sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {where}"  # noqa: S608
        rows = await self._run(lambda c: c.fetch(sql, *args), transaction=False)
        return [delivery_of(r) for r in rows]

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        found = await self._deliveries("delivery_id = $1", delivery_id)
        return found[0] if found else None

    async def pending_by_notice(self, incident_id: str) -> dict[str, tuple[int, str | None]]:
        sql = PENDING_BY_NOTICE.format("$1")
        rows = await self._run(lambda c: c.fetch(sql, incident_id), transaction=False)
        return {str(r[0]): (int(r[1]), r[2]) for r in rows}

    async def deliveries_by_id(self, delivery_ids: Sequence[str]) -> list[Delivery]:
        return await self._deliveries("delivery_id = ANY($1::text[])", list(delivery_ids))

    async def delivery_by_sid(self, carrier_sid: str) -> Delivery | None:
        found = await self._deliveries("carrier_sid = $1 LIMIT 1", carrier_sid)
        return found[0] if found else None

    async def due_deliveries(self, now: str, limit: int, notice_id: str | None = None) -> list[Delivery]:
        rows = await self._run(lambda c: c.fetch(_DUE, now, notice_id, limit), transaction=False)
        return [delivery_of(r) for r in rows]

    async def orphaned_sending(self, alive_at: str, limit: int) -> list[Delivery]:
        return await self._deliveries(
            f"{ORPHANED_SENDING_WHERE.format('$1')} ORDER BY updated_at LIMIT $2", alive_at, limit
        )

    async def deliveries_in(self, states: Collection[DeliveryState], limit: int) -> list[Delivery]:
        return await self._deliveries(
            "state = ANY($1::text[]) ORDER BY updated_at LIMIT $2", [s.value for s in states], limit
        )

    async def count_deliveries_in(self, states: Collection[DeliveryState]) -> int:
        sql = "SELECT count(*) FROM deliveries WHERE state = ANY($1::text[])"
        row = await self._run(lambda c: c.fetchrow(sql, [s.value for s in states]), transaction=False)
        return int(row[0])

    async def delivery_counts(self, incident_id: str) -> dict[str, dict[str, int]]:
        rows = await self._run(lambda c: c.fetch(COUNTS_SQL.format("$1"), incident_id), transaction=False)
        counts: dict[str, dict[str, int]] = {}
        for channel, state, n in rows:
            counts.setdefault(channel, {})[state] = n
        return counts

    async def list_deliveries(self, incident_id: str, after: str, limit: int) -> list[Delivery]:
        return await self._deliveries(
            "incident_id = $1 AND delivery_id > $2 ORDER BY delivery_id LIMIT $3", incident_id, after, limit
        )

    async def delivery_events(self, delivery_id: str) -> list[tuple[str, str, str]]:
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT at, state, detail FROM delivery_events WHERE delivery_id = $1 ORDER BY at, ctid",
                delivery_id,
            ),
            transaction=False,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def get_report(self, report_id: str) -> StoredReport | None:
        row = await self._run(
            lambda c: c.fetchrow(f"SELECT {REPORT_COLUMNS} FROM reports WHERE report_id = $1", report_id),  # noqa: S608
            transaction=False,
        )
        return stored_report(row) if row else None

    async def list_reports(
        self,
        statuses: Collection[ReportStatus] | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[StoredReport]:
        values = None if statuses is None else [s.value for s in statuses]
        at, rid = after if after is not None else (None, None)
        rows = await self._run(
            lambda c: c.fetch(
                f"SELECT {REPORT_COLUMNS} FROM reports"  # noqa: S608
                " WHERE ($1::text[] IS NULL OR status = ANY($1::text[]))"
                " AND ($3::text IS NULL OR received_at < $3 OR (received_at = $3 AND report_id > $4))"
                " ORDER BY received_at DESC, report_id LIMIT $2",
                values, limit, at, rid,
            ),
            transaction=False,
        )  # fmt: skip
        return [stored_report(r) for r in rows]

    async def append(self, incident_id: str, decide: Decider) -> Appended:
        if self._committer is None or self._closing:
            raise StoreError("the store is not open", retryable=False)
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(incident_id, decide, future))
        self._wakeup.set()
        return await future

    async def _commit_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = [job for job in self._pending[:_MAX_BATCH] if not job.future.cancelled()]
                del self._pending[:_MAX_BATCH]
                if batch:
                    await self._commit_batch(batch)
            if self._closing:
                return

    async def _commit_batch(self, batch: list[_Job]) -> None:
        outcomes: list[Appended | BaseException] = []

        async def run(conn: Any) -> list[Appended | BaseException]:
            # Each try decides afresh against the state it locked.
            nonlocal outcomes
            outcomes = []
            ids = sorted({job.incident_id for job in batch})
            rows = await conn.fetch(
                "SELECT id, state FROM incidents WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", ids
            )
            states = {row[0]: _decode_incident(row[1]) for row in rows}
            changed: dict[str, Incident] = {}
            events: list[TimelineEvent] = []
            now = self._clock.now()
            for job in batch:
                state = states.get(job.incident_id)
                if state is None:
                    outcomes.append(NotFound(f"no incident {job.incident_id}"))
                    continue
                try:
                    drafts = job.decide(state)
                    new_state, new_events = (
                        seal(job.incident_id, state, drafts, now) if drafts else (state, [])
                    )
                except Exception as err:  # this command alone is refused
                    outcomes.append(err)
                    continue
                states[job.incident_id] = changed[job.incident_id] = new_state
                events += new_events
                outcomes.append(Appended(new_state, new_events))
            if events:
                await self._write_events(conn, events)
                await self._update_incidents(conn, list(changed.values()))
            return outcomes

        try:
            # Verified: after a COMMIT cut off, the outcomes of the try that committed count.
            outcomes = await self._run(run)
        except Exception as err:  # the committer must outlive any failure: fail this batch only
            failure = (
                err if isinstance(err, StoreError) else StoreError(f"PostgreSQL: {err}", retryable=False)
            )
            outcomes = [o if not isinstance(o, Appended) else failure for o in outcomes]
            outcomes += [failure] * (len(batch) - len(outcomes))
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.future.cancelled():
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    async def get_incident(self, incident_id: str) -> Incident | None:
        raw = await self._run(
            lambda c: c.fetchval("SELECT state FROM incidents WHERE id = $1", incident_id),
            transaction=False,
        )
        return _decode_incident(raw) if raw is not None else None

    async def list_incidents(
        self,
        statuses: Collection[Status] | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[Incident]:
        values = None if statuses is None else [s.value for s in statuses]
        at, iid = after if after is not None else (None, None)
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT state FROM incidents WHERE ($1::text[] IS NULL OR status = ANY($1::text[]))"
                " AND ($3::text IS NULL OR declared_at < $3 OR (declared_at = $3 AND id < $4))"
                " ORDER BY declared_at DESC, id DESC LIMIT $2",
                values, limit, at, iid,
            ),
            transaction=False,
        )  # fmt: skip
        return [_decode_incident(r[0]) for r in rows]

    async def timeline(
        self, incident_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEvent]:
        rows = await self._run(
            lambda c: c.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM timeline_events"  # noqa: S608
                " WHERE incident_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                incident_id,
                after_seq,
                limit,
            ),
            transaction=False,
        )
        return [_event(r) for r in rows]

    # --- opt-outs by reply and inbound replies --------------------------------------------

    async def set_opt_out(self, address: str, channel: str, opted_out: bool, at: str) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO opt_outs (address, channel, opted_out, updated_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (address, channel) DO UPDATE SET opted_out = excluded.opted_out,"
                " updated_at = excluded.updated_at WHERE excluded.updated_at >= opt_outs.updated_at",
                address, channel, opted_out, at,
            ),
            verify=False,  # newest wins: repeating changes nothing
        )  # fmt: skip

    async def opted_out_addresses(self, channel: str) -> set[str]:
        rows = await self._run(
            lambda c: c.fetch("SELECT address FROM opt_outs WHERE channel = $1 AND opted_out", channel),
            transaction=False,
        )
        return {r[0] for r in rows}

    async def opt_out_state(self, address: str, channel: str) -> bool | None:
        value = await self._run(
            lambda c: c.fetchval(
                "SELECT opted_out FROM opt_outs WHERE address = $1 AND channel = $2", address, channel
            ),
            transaction=False,
        )
        return None if value is None else bool(value)

    async def latest_delivery_to(self, address: str) -> Delivery | None:
        found = await self._deliveries(
            f"address = $1 AND state <> {sql_list(S.draft)}"  # noqa: S608
            " ORDER BY (SELECT n.created_at FROM notices n WHERE n.notice_id = deliveries.notice_id) DESC,"
            " seq DESC, delivery_id DESC LIMIT 1",
            address,
        )
        return found[0] if found else None

    # --- durable timers ------------------------------------------------------------------------

    async def schedule_timers(self, timers: Sequence[DueTimer], *, rearm: bool = False) -> None:
        marks = ", ".join(f"${i}" for i in range(1, 9))
        sql = TIMER_INSERT.format(marks) + (TIMER_REARM if rearm else "NOTHING")
        rows = [timer_values(t) for t in timers]
        await self._run(lambda c: c.executemany(sql, rows))

    async def claim_timers(self, now: str, owner: str, lease_until: str, limit: int) -> list[DueTimer]:
        # SKIP LOCKED: instances claiming at once each take other rows, none waits or doubles.
        sql = (
            "UPDATE timers SET state = 'claimed', claimed_by = $1, claimed_until = $2"  # noqa: S608
            f" WHERE timer_id IN ({TIMER_CLAIMABLE.format('$3', '$4')} FOR UPDATE SKIP LOCKED)"
            f" RETURNING {TIMER_COLUMNS}"
        )
        rows = await self._run(lambda c: c.fetch(sql, owner, lease_until, now, limit))
        return sorted((timer_of(r) for r in rows), key=lambda t: (t.due_at, t.timer_id))

    async def finish_timer(self, timer_id: str, owner: str, at: str) -> bool:
        status = await self._run(
            lambda c: c.execute(
                "UPDATE timers SET state = 'done', fired_at = $1"
                " WHERE timer_id = $2 AND state = 'claimed' AND claimed_by = $3",
                at, timer_id, owner,
            )
        )  # fmt: skip
        return str(status).endswith(" 1")

    async def cancel_timers(self, incident_id: str, prefix: str) -> int:
        status = await self._run(
            lambda c: c.execute(
                "UPDATE timers SET state = 'cancelled' WHERE incident_id = $1"
                " AND substr(timer_id, 1, $2) = $3 AND state IN ('pending', 'claimed')",
                incident_id, len(prefix), prefix,
            )
        )  # fmt: skip
        return int(str(status).rsplit(" ", 1)[-1])

    async def list_timers(self, incident_id: str) -> list[DueTimer]:
        sql = (
            f"SELECT {TIMER_COLUMNS} FROM timers WHERE incident_id = $1"  # noqa: S608
            " AND state <> 'lock' ORDER BY due_at, timer_id"
        )
        rows = await self._run(lambda c: c.fetch(sql, incident_id), transaction=False)
        return [timer_of(r) for r in rows]

    async def lock_incident(self, incident_id: str, owner: str, now: str, until: str) -> bool:
        sql = LOCK_TAKE.format("$1", "$2", "$3", "$4", "$5")
        # Taken again by its owner it is extended: a repeat answers True as the first did.
        row = await self._run(
            lambda c: c.fetchrow(sql, f"{incident_id}:lock", incident_id, now, owner, until), verify=False
        )
        return row is not None

    async def unlock_incident(self, incident_id: str, owner: str, now: str) -> None:
        await self._run(
            lambda c: c.execute(
                "UPDATE timers SET claimed_until = $1 WHERE timer_id = $2 AND claimed_by = $3",
                now,
                f"{incident_id}:lock",
                owner,
            ),
            verify=False,  # only its owner's lease is ended: repeating changes nothing
        )

    # --- idempotency keys of the HTTP API ----------------------------------------------------

    async def claim_idempotency_key(
        self, record: IdempotencyRecord, expired_before: str
    ) -> IdempotencyRecord | None:
        async def run(conn: Any) -> IdempotencyRecord | None:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_at < $3",
                record.scope, record.key, expired_before,
            )  # fmt: skip
            # A concurrent claim of the same key waits here for the first one's commit, then
            # inserts nothing and reads the row below.
            inserted = await conn.fetchval(
                f"INSERT INTO idempotency_keys ({IDEMPOTENCY_COLUMNS})"  # noqa: S608
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (scope, key) DO NOTHING RETURNING 1",
                *idempotency_values(record),
            )
            if inserted is not None:
                return None
            row = await conn.fetchrow(
                f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE scope = $1 AND key = $2",  # noqa: S608
                record.scope, record.key,
            )  # fmt: skip
            return idempotency_of(row)

        return await self._run(run)

    async def update_idempotency_key(
        self, scope: str, key: str, expect_updated_at: str, change: IdempotencyChange
    ) -> bool:
        status = await self._run(
            lambda c: c.execute(
                "UPDATE idempotency_keys SET state = $1, status = $2, response = $3,"
                " guard = coalesce($4, guard), updated_at = $5"
                " WHERE scope = $6 AND key = $7 AND updated_at = $8",
                change.state, change.status, change.response, change.guard, change.updated_at,
                scope, key, expect_updated_at,
            )
        )  # fmt: skip
        return str(status).endswith(" 1")

    async def get_idempotency_key(self, scope: str, key: str) -> IdempotencyRecord | None:
        row = await self._run(
            lambda c: c.fetchrow(
                f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE scope = $1 AND key = $2",  # noqa: S608
                scope, key,
            ),
            transaction=False,
        )  # fmt: skip
        return None if row is None else idempotency_of(row)

    async def purge_idempotency_keys(self, created_before: str) -> int:
        status = await self._run(
            lambda c: c.execute("DELETE FROM idempotency_keys WHERE created_at < $1", created_before)
        )
        return int(str(status).rsplit(" ", 1)[-1])

    async def counter_value(self, name: str) -> int:
        value = await self._run(
            lambda c: c.fetchval("SELECT value FROM counters WHERE name = $1", name), transaction=False
        )
        return int(value or 0)

    # --- self-enrolments -----------------------------------------------------------------------

    async def meta_default(self, key: str, value: str) -> str:
        async def run(conn: Any) -> str:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, value
            )
            return str(await conn.fetchval("SELECT value FROM meta WHERE key = $1", key))

        return await self._run(run, verify=False)  # repeating changes nothing and answers the same

    async def admit_enrolment(
        self, enrolment: Enrolment, limits: EnrolmentLimits, purge_before: str
    ) -> Admission:
        async def count(conn: Any, column: str, key: str) -> tuple[int, str | None]:
            row = await conn.fetchrow(ENROLMENT_COUNT.format(column, "$1", "$2"), key, limits.since)
            return int(row[0]), row[1]

        async def run(conn: Any) -> Admission:
            # Instances serialise on the client and the contact (transaction-scoped advisory
            # locks, taken in a fixed order), and on the whole service when it has a cap per
            # hour (taken first): two cannot both take the last place.
            keys = sorted((enrolment.client_key, enrolment.contact_key))
            for key in (["enrolment.service"] if limits.per_hour else []) + keys:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 15))", key)
            await conn.execute(
                "DELETE FROM enrolments WHERE created_at < $1 AND status <> 'confirmed'", purge_before
            )
            in_all: tuple[int, str | None] = (0, None)
            if limits.per_hour:
                row = await conn.fetchrow(ENROLMENT_COUNT_ALL.format("$1"), limits.hour_since)
                in_all = (int(row[0]), row[1])
            answer = admission(
                await count(conn, "client_key", enrolment.client_key),
                await count(conn, "contact_key", enrolment.contact_key),
                limits,
                in_all,
            )
            if answer.admitted:
                marks = ", ".join(f"${n}" for n in range(1, 11))
                await conn.execute(
                    f"INSERT INTO enrolments ({ENROLMENT_COLUMNS}) VALUES ({marks})",  # noqa: S608
                    *enrolment_values(enrolment),
                )
            return answer

        return await self._run(run)

    async def get_enrolment(self, enrolment_id: str) -> Enrolment | None:
        row = await self._run(
            lambda c: c.fetchrow(
                f"SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE enrolment_id = $1",  # noqa: S608
                enrolment_id,
            ),
            transaction=False,
        )
        return None if row is None else enrolment_of(row)

    async def try_enrolment(self, enrolment_id: str, now: str, max_tries: int) -> Enrolment | None:
        row = await self._run(
            lambda c: c.fetchrow(
                "UPDATE enrolments SET tries = tries + 1 WHERE enrolment_id = $1 AND status = 'pending'"  # noqa: S608
                f" AND expires_at > $2 AND tries < $3 RETURNING {ENROLMENT_COLUMNS}",
                enrolment_id, now, max_tries,
            )
        )  # fmt: skip
        return None if row is None else enrolment_of(row)

    async def finish_enrolment(self, enrolment_id: str, household: Household | None) -> bool:
        async def run(conn: Any) -> bool:
            status = "dead" if household is None else "confirmed"
            account = None if household is None else household.account_id
            if account is not None:  # this sign-up's link replaces the household's older ones
                await conn.execute(REPLACE_ENROLMENTS.format("$1", "$2"), account, enrolment_id)
            done = await conn.execute(
                "UPDATE enrolments SET status = $1, account_id = $2, pending = '{}'"
                " WHERE enrolment_id = $3 AND status = 'pending'",
                status, account, enrolment_id,
            )  # fmt: skip
            if not str(done).endswith(" 1"):
                return False
            if household is not None:
                rows, _ = upsert_rows([household], {}, isoformat(self._clock.now()))
                marks = ", ".join(f"${n}" for n in range(1, HOUSEHOLD_WIDTH + 1))
                await conn.executemany(HOUSEHOLD_UPSERT.format(marks), rows)
            return True

        return bool(await self._run(run))

    async def enrolled_household(self, contact_key: str) -> str | None:
        value = await self._run(
            lambda c: c.fetchval(
                "SELECT e.account_id FROM enrolments e JOIN households h ON h.account_id = e.account_id"
                " WHERE e.contact_key = $1 AND e.status = 'confirmed' ORDER BY e.created_at DESC LIMIT 1",
                contact_key,
            ),
            transaction=False,
        )
        return None if value is None else str(value)

    async def current_enrolment(self, account_id: str) -> str | None:
        value = await self._run(
            lambda c: c.fetchval(CURRENT_ENROLMENT.format("$1"), account_id), transaction=False
        )
        return None if value is None else str(value)

    async def get_household(self, account_id: str) -> Household | None:
        row = await self._run(
            lambda c: c.fetchrow(
                f"SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE account_id = $1",  # noqa: S608
                account_id,
            ),
            transaction=False,
        )
        return None if row is None else household_of(row)

    async def update_self_household(self, household: Household) -> bool:
        values = self_update_values(household, isoformat(self._clock.now()))
        sql = self_update([f"${n}" for n in range(1, HOUSEHOLD_WIDTH + 1)])
        status = await self._run(lambda c: c.execute(sql, *values))
        return str(status).endswith(" 1")

    async def remove_household(self, account_id: str) -> bool:
        status = await self._run(
            lambda c: c.execute(
                f"DELETE FROM households WHERE account_id = $1 AND {SELF_ENROLLED}",  # noqa: S608
                account_id,
            )
        )
        return str(status).endswith(" 1")
