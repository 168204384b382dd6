"""SQLite store: WAL, one writer thread with group commit, one reader thread.

Blocking sqlite3 calls never run on the event loop. The writer takes every job queued
while it was busy, runs each in its own savepoint (one failing job rolls back alone) and
commits them together: under load many appends share one commit.

Database faults (see :func:`transient_error`): another process holding the write lock is
waited for by SQLite's busy handler for ``[store] retry_budget_s``; a busy, locked or disk
I/O error that still comes up rolls the whole batch back and the writer runs it again after a
pause, until the budget is spent (then ``StoreError(retryable=True)``). Such a rollback is
clean and the jobs are functions of the connection, so running them again doubles nothing.
A COMMIT that fails and leaves no transaction open is the one case whose outcome is not
known: it is answered ``store_outcome_unknown``, not retried.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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
_MAX_BATCH = 512
_decode_incident = msgspec.json.Decoder(Incident).decode
_encode = msgspec.json.Encoder().encode


def _connect(path: Path, *, readonly: bool, busy_s: float) -> sqlite3.Connection:
    # ``timeout``: how long SQLite's busy handler waits for another connection's lock.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_s)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode is durable against a process crash; an OS crash may lose the last
    # transactions but never corrupts the file or the chain.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


#: Primary result codes that pass: another connection's lock (BUSY, LOCKED), a disk I/O
#: error, a full disk (not the data's fault: a report waits for space, never dead-letters).
_TRANSIENT_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL}
)
_TRANSIENT_WORDS = ("database is locked", "database table is locked", "busy", "disk i/o error")


def transient_error(err: BaseException) -> bool:
    """True when the same call may succeed if tried again (the PostgreSQL store has its twin)."""
    if not isinstance(err, sqlite3.OperationalError):
        return False  # IntegrityError, ProgrammingError, ...: the same again fails the same
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _TRANSIENT_CODES  # extended codes keep the primary in the low byte
    return any(word in str(err).lower() for word in _TRANSIENT_WORDS)


def _store_error(err: sqlite3.Error) -> StoreError:
    return StoreError(f"SQLite: {err}", retryable=transient_error(err))


#: JSON functions built in (3.38), UPDATE ... FROM (3.33).
MIN_SQLITE = (3, 38, 0)
_DUE = DUE_SQL.format(*["?"] * 11)
_ROW_JSON = f"json_group_array(json_array({DELIVERY_COLUMNS}))"
_DUE_JSON = f"SELECT {_ROW_JSON} FROM ({_DUE})"  # noqa: S608


# The fan-out's statements take and give lists as one JSON value and give rows back as one
# JSON array: the sqlite3 module releases the GIL around every step of a statement (each row
# fetched, each parameter set of an executemany) and must win it back from a busy event loop
# each time, up to a switch interval (5 ms) per row; a 1,000-row RETURNING then took
# hundreds of milliseconds. These statements take a handful of steps whatever their size.
# ``+state`` keeps the planner on the primary key: by the state index it would walk every
# delivery in that state (thousands, mid fan-out) for each one named.
_IDS = "SELECT value FROM json_each(?)"
_ROWS_JSON = f"SELECT {_ROW_JSON} FROM deliveries"  # noqa: S608
_QUEUE_PICK = (
    "SELECT json_group_array(json_array(delivery_id, account_id)) FROM deliveries"  # noqa: S608
    f" WHERE delivery_id IN (SELECT value FROM json_each(?)) AND +state IN ({sql_list(*SENDABLE)})"
)
_QUEUE = (
    f"UPDATE deliveries SET state = {sql_list(S.queued)}, updated_at = ?"  # noqa: S608
    f" WHERE delivery_id IN (SELECT value FROM json_each(?)) AND +state IN ({sql_list(*SENDABLE)})"
)
_EVENTS_JSON = (
    "INSERT INTO delivery_events (delivery_id, at, state, detail) SELECT json_extract(value, '$[0]'), ?,"
    " json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?)"
)


def _json(value: object) -> str:
    """JSON as text: SQLite reads a BLOB argument as its own binary JSON (3.45 and later)."""
    return orjson.dumps(value).decode()


def _json_list(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[Any]:
    """The one JSON array a ``json_group_array`` statement answers, parsed."""
    row = conn.execute(sql, args).fetchone()
    return orjson.loads(row[0]) if row and row[0] else []


def _deliveries_in(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Delivery]:
    rows = _json_list(conn, f"{_ROWS_JSON} WHERE delivery_id IN ({_IDS})", [_json(list(ids))])
    return [delivery_of(r) for r in rows]


def _add_events(conn: sqlite3.Connection, at: str, events: Sequence[tuple[str, str, str]]) -> None:
    """(delivery id, state, detail) of each change, in order."""
    if events:
        conn.execute(_EVENTS_JSON, [at, _json(events)])


def _change_sql(group: ChangeGroup) -> tuple[str, str]:
    """For a group of changes: the statement that picks the deliveries the changes still
    hold for, and the UPDATE (parameters: state, at, the changes as JSON, expected states)."""
    expect = ", ".join("?" * len(group.expect))
    pick = (
        f"SELECT json_group_array(delivery_id) FROM deliveries WHERE delivery_id IN ({_IDS})"  # noqa: S608
        f" AND +state IN ({expect})"
    )
    sets = ["state = ?", "updated_at = ?"]
    sets += [f"{column} = v.c{n}" for n, column in enumerate(group.columns)]
    if group.count_attempt:
        sets.append("attempts = attempts + 1")
    values = ", ".join(
        ["json_extract(value, '$[0]') AS id"]
        + [f"json_extract(value, '$[{n + 1}]') AS c{n}" for n in range(len(group.columns))]
    )
    update = (
        f"UPDATE deliveries SET {', '.join(sets)} FROM (SELECT {values} FROM json_each(?)) AS v"  # noqa: S608
        f" WHERE deliveries.delivery_id = v.id AND +deliveries.state IN ({expect})"
    )
    return pick, update


def _apply_group(conn: sqlite3.Connection, group: ChangeGroup, at: str) -> list[str]:
    """Apply a group of changes of one shape; the ids of the deliveries they changed."""
    pick, update = _change_sql(group)
    ids = _json([delivery_id for _, delivery_id, _ in group.items])
    # The writer's transaction is exclusive: what holds now still holds for the UPDATE.
    holding: list[str] = _json_list(conn, pick, [ids, *group.expect])
    if holding:
        rows = _json([[delivery_id, *values] for _, delivery_id, values in group.items])
        conn.execute(update, [group.to, at, rows, *group.expect])
    return holding


def _change_group(conn: sqlite3.Connection, group: ChangeGroup, at: str) -> list[Delivery]:
    """Apply a group of changes of one shape; the deliveries they changed."""
    holding = _apply_group(conn, group, at)
    return _deliveries_in(conn, holding) if holding else []


_RELEASE_DRAFTS = (
    f"UPDATE deliveries SET state = {sql_list(S.planned)}, not_before = ?, updated_at = ?"  # noqa: S608
    f" WHERE notice_id = ? AND state = {sql_list(S.draft)}"
)
_HELD_BY = (
    "SELECT json_group_array(delivery_id) FROM deliveries"
    " WHERE delivery_id IN (SELECT value FROM json_each(?)) AND claimed_by = ?"
)
_RELEASABLE = RELEASABLE_WHERE.format("?1", "?2", "?3", "?4")
_RELEASE_PICK = f"SELECT json_group_array(delivery_id) FROM deliveries WHERE {_RELEASABLE}"  # noqa: S608
_RELEASE = (
    f"UPDATE deliveries SET state = {sql_list(S.planned)}, claimed_by = NULL, updated_at = ?"  # noqa: S608
    f" WHERE delivery_id IN (SELECT value FROM json_each(?)) AND state = '{CLAIMED}'"
)


class _Job:
    __slots__ = ("fn", "future", "loop")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future
        self.loop = future.get_loop()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class _Writer(threading.Thread):
    def __init__(self, path: Path, backoff: Backoff) -> None:
        super().__init__(name="sqlite-writer", daemon=True)
        self._path = path
        self._backoff = backoff
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Job(fn, future))
        return future

    def stop(self) -> None:
        self._jobs.put(None)

    def run(self) -> None:
        conn = _connect(self._path, readonly=False, busy_s=self._backoff.budget_s)
        try:
            while (first := self._jobs.get()) is not None:
                batch = [first]
                stopping = False
                while len(batch) < _MAX_BATCH:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stopping = True
                        break
                    batch.append(job)
                self._run_batch(conn, batch)
                if stopping:
                    break
        finally:
            conn.close()
            # Anything queued after the stop is answered, never left waiting forever.
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    closed = StoreError("the store is closing", retryable=True)
                    job.loop.call_soon_threadsafe(_settle, job.future, False, closed)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        retry = Retry(self._backoff)
        while True:
            try:
                outcomes = self._try_batch(conn, batch)
                break
            except sqlite3.Error as err:
                pause = retry.pause() if transient_error(err) else None
                if pause is None:
                    outcomes = [(False, _store_error(err))] * len(batch)
                    break
                time.sleep(pause)  # the writer's own thread: nothing else can write meanwhile
            except StoreError as unknown:
                outcomes = [(False, unknown)] * len(batch)
                break
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, ok, value)

    @staticmethod
    def _try_batch(conn: sqlite3.Connection, batch: list[_Job]) -> list[tuple[bool, Any]]:
        """Run the batch in one transaction; a transient error rolls all of it back and is raised."""
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, job.fn(conn)))
                    conn.execute("RELEASE job")
                except Exception as err:  # one job's failure must not sink the batch
                    if isinstance(err, sqlite3.Error) and transient_error(err):
                        raise  # not this job's fault: the whole batch goes again
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    if isinstance(err, sqlite3.Error):
                        err = _store_error(err)
                    outcomes.append((False, err))
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:  # the COMMIT did not happen (SQLite keeps the transaction)
                conn.execute("ROLLBACK")
                raise
            raise StoreError(
                f"SQLite: COMMIT failed ({err}) and whether the write took effect is not known",
                code=OUTCOME_UNKNOWN,
            ) from err
        return outcomes


_EVENT_COLUMNS = "incident_id, seq, type, actor, at, data, prev_hash, hash"


def _event(row: tuple[Any, ...]) -> TimelineEvent:
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


def _write(conn: sqlite3.Connection, state: Incident, events: list[TimelineEvent], *, new: bool) -> None:
    if new:
        conn.execute(
            "INSERT INTO incidents (id, status, declared_at, updated_at, last_seq, head_hash, state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                state.id,
                state.status.value,
                state.declared_at,
                state.updated_at,
                state.last_seq,
                state.head_hash,
                _encode(state),
            ),
        )
    else:
        conn.execute(
            "UPDATE incidents SET status = ?, updated_at = ?, last_seq = ?, head_hash = ?, state = ?"
            " WHERE id = ?",
            (state.status.value, state.updated_at, state.last_seq, state.head_hash, _encode(state), state.id),
        )
    conn.executemany(
        f"INSERT INTO timeline_events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        [
            (e.incident_id, e.seq, e.type, e.actor, e.at, orjson.dumps(e.data).decode(), e.prev_hash, e.hash)
            for e in events
        ],
    )


class SqliteStore:
    def __init__(self, path: Path, clock: Clock, *, backoff: Backoff | None = None) -> None:
        self.path = path
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._writer: _Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_pool: ThreadPoolExecutor | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old: {'.'.join(map(str, MIN_SQLITE))} or newer is"
                " needed (JSON functions, UPDATE ... FROM)",
                retryable=False,
            )
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        self._writer = _Writer(self.path, self._backoff)
        self._writer.start()
        await self._write(self._migrate)
        self._read_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._reader = await asyncio.get_running_loop().run_in_executor(
            self._read_pool, lambda: _connect(self.path, readonly=True, busy_s=self._backoff.budget_s)
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._read_pool is not None:
            reader = self._reader
            if reader is not None:
                await asyncio.get_running_loop().run_in_executor(self._read_pool, reader.close)
            self._read_pool.shutdown(wait=False)
            self._read_pool = None
            self._reader = None

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in _split_sql(migration.sqlite):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, datetime('now'))",
                (migration.version, migration.name),
            )

    # --- plumbing ----------------------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreError("the store is not open", retryable=False)
        return await self._writer.submit(fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T], *, retry: bool = True) -> T:
        if self._read_pool is None or self._reader is None:
            raise StoreError("the store is not open", retryable=False)
        reader, pool = self._reader, self._read_pool
        tries = Retry(self._backoff)
        while True:
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, fn, reader)
            except sqlite3.Error as err:
                pause = tries.pause() if retry and transient_error(err) else None
                if pause is None:
                    raise _store_error(err) from err
                await asyncio.sleep(pause)

    # --- the interface -------------------------------------------------------------------

    async def ping(self) -> None:
        # No retry: /healthz must say "down" promptly.
        await self._read(lambda c: c.execute("SELECT 1").fetchone(), retry=False)

    async def schema_version(self) -> int:
        row = await self._read(lambda c: c.execute("SELECT max(version) FROM schema_migrations").fetchone())
        return int(row[0]) if row and row[0] is not None else 0

    def _create(self, conn: sqlite3.Connection, opener: Opener) -> Appended:
        now = self._clock.now()
        (number,) = conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1)"
            " ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
            (incident_counter(now.year),),
        ).fetchone()
        new_id = incident_id(now.year, number)
        state, events = seal(new_id, None, opener(new_id), now)
        _write(conn, state, events, new=True)
        return Appended(state, events)

    async def create_incident(self, opener: Opener) -> Appended:
        return await self._write(lambda conn: self._create(conn, opener))

    def _apply(self, conn: sqlite3.Connection, steps: Sequence[PlanStep]) -> PlanResult:
        ids: dict[str, str] = {}
        appended: list[Appended] = []
        for step in steps:
            match step:
                case NewIncident(ref=ref, opener=opener):
                    created = self._create(conn, opener)
                    ids[ref] = created.incident.id
                    appended.append(created)
                case AppendTo(ref=ref, decide=decide):
                    more = self._append(conn, ids.get(ref, ref), decide)
                    if more.events:
                        appended.append(more)
                case PutNotice(notice=notice):
                    now = isoformat(self._clock.now())
                    conn.execute(NOTICE_UPSERT.format(", ".join("?" * 8)), notice_row(notice, now))
                    if step.release_drafts:
                        conn.execute(_RELEASE_DRAFTS, (notice.send_after, now, notice.notice_id))
                case SetReport():
                    row = conn.execute(
                        "SELECT status FROM reports WHERE report_id = ?", (step.report_id,)
                    ).fetchone()
                    if row is None:
                        raise NotFound(f"no report {step.report_id}")
                    if step.expect is not None and row[0] not in step.expect:
                        raise Conflict(f"report {step.report_id} is {row[0]}")
                    conn.execute(
                        "UPDATE reports SET status = ?, incident_id = ?, note = ?, triaged_by = ?"
                        " WHERE report_id = ?",
                        (step.status.value, ids.get(step.incident_ref or "", step.incident_ref),
                         step.note, step.triaged_by, step.report_id),
                    )  # fmt: skip
        return PlanResult(appended, ids)

    async def apply_plan(self, steps: Sequence[PlanStep]) -> PlanResult:
        return await self._write(lambda conn: self._apply(conn, steps))

    async def ingest_reports(self, reports: Sequence[IncomingReport], planner: Planner) -> IngestResult:
        def run(conn: sqlite3.Connection) -> IngestResult:
            received = isoformat(self._clock.now())
            new: list[IncomingReport] = []
            duplicates: list[str] = []
            for item in reports:
                cur = conn.execute(
                    f"INSERT INTO reports ({REPORT_COLUMNS}) VALUES ({', '.join('?' * 16)})"  # noqa: S608
                    " ON CONFLICT (report_id) DO NOTHING",
                    report_row(item.report, item.origin, received),
                )
                if cur.rowcount == 1:
                    new.append(item)
                else:
                    duplicates.append(item.report.report_id)
            if not new:
                return IngestResult([], duplicates, [])
            open_marks = ", ".join("?" * len(OPEN))
            incidents = [
                _decode_incident(r[0])
                for r in conn.execute(f"SELECT state FROM incidents WHERE status IN ({open_marks})", OPEN)  # noqa: S608
            ]
            sightings = conn.execute(SIGHTINGS_SQL.format(open=open_marks), OPEN).fetchall()
            steps = planner([i.report for i in new], candidates(incidents, sightings))
            result = self._apply(conn, steps)
            marks = ", ".join("?" * len(new))
            rows = conn.execute(
                f"SELECT {REPORT_COLUMNS} FROM reports WHERE report_id IN ({marks})",  # noqa: S608
                [i.report.report_id for i in new],
            ).fetchall()
            by_id = {r[0]: stored_report(r) for r in rows}
            return IngestResult([by_id[i.report.report_id] for i in new], duplicates, result.appended)

        return await self._write(run)

    async def upsert_households(self, households: Sequence[Household]) -> HouseholdUpsert:
        def run(conn: sqlite3.Connection) -> HouseholdUpsert:
            now = isoformat(self._clock.now())
            known: dict[str, tuple[str, str]] = {}
            ids = [h.account_id for h in households]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT account_id, digest, source FROM households WHERE account_id IN ({marks})"  # noqa: S608
                known.update((r[0], (r[1], r[2])) for r in conn.execute(sql, chunk))
            rows, counts = upsert_rows(households, known, now)
            conn.executemany(HOUSEHOLD_UPSERT.format(", ".join("?" * HOUSEHOLD_WIDTH)), rows)
            return counts

        return await self._write(run)

    async def households_page(self, after: str, limit: int) -> list[Household]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE account_id > ?"  # noqa: S608
                " ORDER BY account_id LIMIT ?",
                (after, limit),
            ).fetchall()
        )
        return [household_of(r) for r in rows]

    async def count_households(self) -> int:
        row = await self._read(lambda c: c.execute("SELECT count(*) FROM households").fetchone())
        return int(row[0])

    async def get_meta(self, key: str) -> str | None:
        row = await self._read(lambda c: c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone())
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )

    async def next_value(self, name: str) -> int:
        row = await self._write(
            lambda c: c.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                (name,),
            ).fetchone()
        )
        return int(row[0])

    async def release_deliveries(self, notice_id: str, not_before: str | None) -> int:
        def run(conn: sqlite3.Connection) -> int:
            now = isoformat(self._clock.now())
            return conn.execute(_RELEASE_DRAFTS, (not_before, now, notice_id)).rowcount

        return await self._write(run)

    async def get_notice(self, notice_id: str) -> Notice | None:
        row = await self._read(
            lambda c: c.execute("SELECT body FROM notices WHERE notice_id = ?", (notice_id,)).fetchone()
        )
        return notice_of(row[0]) if row else None

    async def list_notices(self, incident_id: str) -> list[Notice]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT body FROM notices WHERE incident_id = ? ORDER BY created_at, notice_id",
                (incident_id,),
            ).fetchall()
        )
        return [notice_of(r[0]) for r in rows]

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        def run(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(
                f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES ({', '.join('?' * 17)})"  # noqa: S608
                " ON CONFLICT DO NOTHING",
                [delivery_row(d) for d in deliveries],
            )
            return conn.total_changes - before

        return await self._write(run)

    async def change_delivery(self, change: DeliveryChange, at: str) -> Delivery | None:
        return (await self.change_deliveries([change], at))[0]

    async def change_deliveries(self, changes: Sequence[DeliveryChange], at: str) -> list[Delivery | None]:
        def run(conn: sqlite3.Connection) -> list[Delivery | None]:
            done: list[Delivery | None] = [None] * len(changes)
            events: list[tuple[str, str, str]] = []
            for group in change_groups(changes, at):
                changed = {d.delivery_id: d for d in _change_group(conn, group, at)}
                for i, delivery_id, _ in group.items:
                    if delivery_id in changed:
                        done[i] = changed[delivery_id]
                        events.append((delivery_id, group.to, changes[i].detail))
            _add_events(conn, at, events)
            return done

        return await self._write(run)

    async def queue_deliveries(self, delivery_ids: Sequence[str], at: str) -> list[tuple[str, str]]:
        def run(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            ids = _json(list(delivery_ids))
            moved = _json_list(conn, _QUEUE_PICK, [ids])
            if moved:
                conn.execute(_QUEUE, [at, ids])
                _add_events(conn, at, [(d, S.queued, "job published") for d, _ in moved])
            return [(d, a) for d, a in moved]

        return await self._write(run)

    async def take_deliveries(self, delivery_ids: Sequence[str], at: str) -> list[Delivery]:
        def run(conn: sqlite3.Connection) -> list[Delivery]:
            # Taking is a change like the carrier's answers: queued -> sending, counted.
            take = ChangeGroup(to="sending", expect=("queued",), count_attempt=True, columns=(),
                               items=[(i, d, ()) for i, d in enumerate(delivery_ids)])  # fmt: skip
            taken = _change_group(conn, take, at)
            _add_events(conn, at, [(d.delivery_id, S.sending, "sending") for d in taken])
            return taken

        return await self._write(run)

    async def claim_deliveries(self, delivery_ids: Sequence[str], owner: str, at: str) -> list[Delivery]:
        def run(conn: sqlite3.Connection) -> list[Delivery]:
            claim = ChangeGroup(to=CLAIMED, expect=("queued",), count_attempt=False, columns=("claimed_by",),
                                items=[(i, d, (owner,)) for i, d in enumerate(delivery_ids)])  # fmt: skip
            claimed = _change_group(conn, claim, at)
            _add_events(conn, at, [(d.delivery_id, CLAIMED, "claimed by a sender") for d in claimed])
            return claimed

        return await self._write(run)

    async def start_deliveries(
        self, delivery_ids: Sequence[str], at: str, owner: str | None = None
    ) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            # The writer's transaction is exclusive: who holds each claim still holds it below.
            ids = (
                list(delivery_ids)
                if owner is None
                else _json_list(conn, _HELD_BY, [_json(list(delivery_ids)), owner])
            )
            start = ChangeGroup(to="sending", expect=(CLAIMED,), count_attempt=True, columns=(),
                                items=[(i, d, ()) for i, d in enumerate(ids)])  # fmt: skip
            started = _apply_group(conn, start, at)
            _add_events(conn, at, [(d, S.sending, "carrier call started") for d in started])
            return started

        return await self._write(run)

    async def renew_sender(self, owner: str, alive_until: str, taken_at: str | None) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(SENDER_RENEW.format("?", "?", "?"), (owner, alive_until, taken_at))
            conn.execute(SENDERS_FORGET.format("?"), (day_before(alive_until),))

        await self._write(run)

    async def release_claims(
        self, alive_at: str, claimed_before: str, stale_before: str, at: str, owner: str | None = None
    ) -> int:
        def run(conn: sqlite3.Connection) -> int:
            ids = _json_list(conn, _RELEASE_PICK, [claimed_before, alive_at, stale_before, owner])
            if ids:
                conn.execute(_RELEASE, [at, _json(ids)])
                _add_events(conn, at, [(d, S.planned, RELEASED) for d in ids])
            return len(ids)

        return await self._write(run)

    async def fanout_progress(self, now: str) -> tuple[str | None, str | None]:
        def run(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
            due = conn.execute(OLDEST_DUE.format("?1"), (now,)).fetchone()
            taken = conn.execute(LAST_TAKEN).fetchone()
            return (due[0] if due else None), (taken[0] if taken else None)

        return await self._read(run)

    async def awaiting_final(self, before: str, limit: int) -> list[Delivery]:
        return await self._deliveries(AWAITING_FINAL_WHERE.format("?", "?"), [before, limit])

    async def record_inbound(self, message_sid: str, at: str) -> bool:
        sql = INBOUND_RECORD.format("?", "?")
        row = await self._write(lambda c: c.execute(sql, (message_sid, at)).fetchone())
        return row is not None

    async def forget_inbound(self, message_sid: str) -> None:
        await self._write(lambda c: c.execute(INBOUND_FORGET.format("?"), (message_sid,)))

    async def _deliveries(self, where: str, args: Sequence[Any], tail: str = "") -> list[Delivery]:
        sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {where} {tail}"  # noqa: S608
        rows = await self._read(lambda c: c.execute(sql, list(args)).fetchall())
        return [delivery_of(r) for r in rows]

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        found = await self._deliveries("delivery_id = ?", [delivery_id])
        return found[0] if found else None

    async def pending_by_notice(self, incident_id: str) -> dict[str, tuple[int, str | None]]:
        sql = PENDING_BY_NOTICE.format("?")
        rows = await self._read(lambda c: c.execute(sql, (incident_id,)).fetchall())
        return {str(r[0]): (int(r[1]), r[2]) for r in rows}

    async def deliveries_by_id(self, delivery_ids: Sequence[str]) -> list[Delivery]:
        return await self._read(lambda c: _deliveries_in(c, delivery_ids))

    async def delivery_by_sid(self, carrier_sid: str) -> Delivery | None:
        found = await self._deliveries("carrier_sid = ?", [carrier_sid], "LIMIT 1")
        return found[0] if found else None

    async def due_deliveries(self, now: str, limit: int, notice_id: str | None = None) -> list[Delivery]:
        args: list[Any] = [now, now, notice_id, notice_id, limit]
        rows = await self._read(lambda c: _json_list(c, _DUE_JSON, [*args, *args, limit]))
        # The order is the query's, but an aggregate's input order is not promised: sort here.
        return sorted((delivery_of(r) for r in rows), key=lambda d: (d.priority_rank, d.seq))

    async def orphaned_sending(self, alive_at: str, limit: int) -> list[Delivery]:
        return await self._deliveries(
            ORPHANED_SENDING_WHERE.format("?"), [alive_at, limit], "ORDER BY updated_at LIMIT ?"
        )

    async def deliveries_in(self, states: Collection[DeliveryState], limit: int) -> list[Delivery]:
        marks = ", ".join("?" * len(states))
        return await self._deliveries(
            f"state IN ({marks})", [*(s.value for s in states), limit], "ORDER BY updated_at LIMIT ?"
        )

    async def count_deliveries_in(self, states: Collection[DeliveryState]) -> int:
        marks = ", ".join("?" * len(states))
        sql = f"SELECT count(*) FROM deliveries WHERE state IN ({marks})"  # noqa: S608
        row = await self._read(lambda c: c.execute(sql, [s.value for s in states]).fetchone())
        return int(row[0])

    async def delivery_counts(self, incident_id: str) -> dict[str, dict[str, int]]:
        rows = await self._read(lambda c: c.execute(COUNTS_SQL.format("?"), (incident_id,)).fetchall())
        counts: dict[str, dict[str, int]] = {}
        for channel, state, n in rows:
            counts.setdefault(channel, {})[state] = n
        return counts

    async def list_deliveries(self, incident_id: str, after: str, limit: int) -> list[Delivery]:
        return await self._deliveries(
            "incident_id = ? AND delivery_id > ?", [incident_id, after, limit], "ORDER BY delivery_id LIMIT ?"
        )

    async def delivery_events(self, delivery_id: str) -> list[tuple[str, str, str]]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT at, state, detail FROM delivery_events WHERE delivery_id = ? ORDER BY at, rowid",
                (delivery_id,),
            ).fetchall()
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def get_report(self, report_id: str) -> StoredReport | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {REPORT_COLUMNS} FROM reports WHERE report_id = ?",  # noqa: S608
                (report_id,),
            ).fetchone()
        )
        return stored_report(row) if row else None

    async def list_reports(
        self,
        statuses: Collection[ReportStatus] | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[StoredReport]:
        def run(conn: sqlite3.Connection) -> list[Any]:
            where, args = ["1 = 1"], []
            if statuses is not None:
                where.append(f"status IN ({', '.join('?' * len(statuses))})")
                args += [s.value for s in statuses]
            if after is not None:
                where.append("(received_at < ? OR (received_at = ? AND report_id > ?))")
                args += [after[0], after[0], after[1]]
            sql = f"SELECT {REPORT_COLUMNS} FROM reports WHERE {' AND '.join(where)}"  # noqa: S608
            sql += " ORDER BY received_at DESC, report_id LIMIT ?"
            return conn.execute(sql, [*args, limit]).fetchall()

        return [stored_report(r) for r in await self._read(run)]

    def _append(self, conn: sqlite3.Connection, incident_id: str, decide: Decider) -> Appended:
        row = conn.execute("SELECT state FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        state = _decode_incident(row[0])
        drafts = decide(state)
        if not drafts:
            return Appended(state, [])
        new_state, events = seal(incident_id, state, drafts, self._clock.now())
        _write(conn, new_state, events, new=False)
        return Appended(new_state, events)

    async def append(self, incident_id: str, decide: Decider) -> Appended:
        return await self._write(lambda conn: self._append(conn, incident_id, decide))

    async def get_incident(self, incident_id: str) -> Incident | None:
        row = await self._read(
            lambda c: c.execute("SELECT state FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        )
        return _decode_incident(row[0]) if row else None

    async def list_incidents(
        self,
        statuses: Collection[Status] | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[Incident]:
        def run(conn: sqlite3.Connection) -> list[Any]:
            where, args = ["1 = 1"], []
            if statuses is not None:
                where.append(f"status IN ({', '.join('?' for _ in statuses)})")
                args += [s.value for s in statuses]
            if after is not None:
                where.append("(declared_at < ? OR (declared_at = ? AND id < ?))")
                args += [after[0], after[0], after[1]]
            sql = f"SELECT state FROM incidents WHERE {' AND '.join(where)}"  # noqa: S608
            sql += " ORDER BY declared_at DESC, id DESC LIMIT ?"
            return conn.execute(sql, [*args, limit]).fetchall()

        return [_decode_incident(row[0]) for row in await self._read(run)]

    async def timeline(
        self, incident_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEvent]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {_EVENT_COLUMNS} FROM timeline_events"  # noqa: S608
                " WHERE incident_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (incident_id, after_seq, -1 if limit is None else limit),
            ).fetchall()
        )
        return [_event(row) for row in rows]

    # --- opt-outs by reply and inbound replies --------------------------------------------

    async def set_opt_out(self, address: str, channel: str, opted_out: bool, at: str) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO opt_outs (address, channel, opted_out, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (address, channel) DO UPDATE SET opted_out = excluded.opted_out,"
                " updated_at = excluded.updated_at WHERE excluded.updated_at >= opt_outs.updated_at",
                (address, channel, opted_out, at),
            )
        )

    async def opted_out_addresses(self, channel: str) -> set[str]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT address FROM opt_outs WHERE channel = ? AND opted_out", (channel,)
            ).fetchall()
        )
        return {r[0] for r in rows}

    async def opt_out_state(self, address: str, channel: str) -> bool | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT opted_out FROM opt_outs WHERE address = ? AND channel = ?", (address, channel)
            ).fetchone()
        )
        return None if row is None else bool(row[0])

    async def latest_delivery_to(self, address: str) -> Delivery | None:
        found = await self._deliveries(
            f"address = ? AND state <> {sql_list(S.draft)}",
            [address],
            "ORDER BY (SELECT n.created_at FROM notices n WHERE n.notice_id = deliveries.notice_id) DESC,"
            " seq DESC, delivery_id DESC LIMIT 1",
        )
        return found[0] if found else None

    # --- durable timers ------------------------------------------------------------------------

    async def schedule_timers(self, timers: Sequence[DueTimer], *, rearm: bool = False) -> None:
        sql = TIMER_INSERT.format(", ".join("?" * 8)) + (TIMER_REARM if rearm else "NOTHING")
        await self._write(lambda c: c.executemany(sql, [timer_values(t) for t in timers]))

    async def claim_timers(self, now: str, owner: str, lease_until: str, limit: int) -> list[DueTimer]:
        # One writer: no two callers can claim the same row.
        sql = (
            "UPDATE timers SET state = 'claimed', claimed_by = ?, claimed_until = ?"  # noqa: S608
            f" WHERE timer_id IN ({TIMER_CLAIMABLE.format('?', '?')}) RETURNING {TIMER_COLUMNS}"
        )
        rows = await self._write(lambda c: c.execute(sql, (owner, lease_until, now, now, limit)).fetchall())
        return sorted((timer_of(r) for r in rows), key=lambda t: (t.due_at, t.timer_id))

    async def finish_timer(self, timer_id: str, owner: str, at: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE timers SET state = 'done', fired_at = ?"
                " WHERE timer_id = ? AND state = 'claimed' AND claimed_by = ?",
                (at, timer_id, owner),
            )
            return cur.rowcount == 1

        return await self._write(run)

    async def cancel_timers(self, incident_id: str, prefix: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE timers SET state = 'cancelled' WHERE incident_id = ?"
                " AND substr(timer_id, 1, ?) = ? AND state IN ('pending', 'claimed')",
                (incident_id, len(prefix), prefix),
            )
            return cur.rowcount

        return await self._write(run)

    async def list_timers(self, incident_id: str) -> list[DueTimer]:
        sql = (
            f"SELECT {TIMER_COLUMNS} FROM timers WHERE incident_id = ?"  # noqa: S608
            " AND state <> 'lock' ORDER BY due_at, timer_id"
        )
        rows = await self._read(lambda c: c.execute(sql, (incident_id,)).fetchall())
        return [timer_of(r) for r in rows]

    async def lock_incident(self, incident_id: str, owner: str, now: str, until: str) -> bool:
        sql = LOCK_TAKE.format(*"?????")
        row = await self._write(
            lambda c: c.execute(sql, (f"{incident_id}:lock", incident_id, now, owner, until)).fetchone()
        )
        return row is not None

    async def unlock_incident(self, incident_id: str, owner: str, now: str) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE timers SET claimed_until = ? WHERE timer_id = ? AND claimed_by = ?",
                (now, f"{incident_id}:lock", owner),
            )
        )

    # --- idempotency keys of the HTTP API ----------------------------------------------------

    async def claim_idempotency_key(
        self, record: IdempotencyRecord, expired_before: str
    ) -> IdempotencyRecord | None:
        def run(conn: sqlite3.Connection) -> IdempotencyRecord | None:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND created_at < ?",
                (record.scope, record.key, expired_before),
            )
            cur = conn.execute(
                f"INSERT INTO idempotency_keys ({IDEMPOTENCY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
                " ON CONFLICT (scope, key) DO NOTHING",
                idempotency_values(record),
            )
            if cur.rowcount == 1:
                return None
            row = conn.execute(
                f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE scope = ? AND key = ?",  # noqa: S608
                (record.scope, record.key),
            ).fetchone()
            return idempotency_of(row)

        return await self._write(run)

    async def update_idempotency_key(
        self, scope: str, key: str, expect_updated_at: str, change: IdempotencyChange
    ) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE idempotency_keys SET state = ?, status = ?, response = ?,"
                " guard = coalesce(?, guard), updated_at = ? WHERE scope = ? AND key = ? AND updated_at = ?",
                (change.state, change.status, change.response, change.guard, change.updated_at,
                 scope, key, expect_updated_at),
            )  # fmt: skip
            return cur.rowcount == 1

        return await self._write(run)

    async def get_idempotency_key(self, scope: str, key: str) -> IdempotencyRecord | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE scope = ? AND key = ?",  # noqa: S608
                (scope, key),
            ).fetchone()
        )
        return None if row is None else idempotency_of(row)

    async def purge_idempotency_keys(self, created_before: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM idempotency_keys WHERE created_at < ?", (created_before,)
            ).rowcount

        return await self._write(run)

    async def counter_value(self, name: str) -> int:
        row = await self._read(
            lambda c: c.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        )
        return 0 if row is None else int(row[0])

    # --- self-enrolments -----------------------------------------------------------------------

    async def meta_default(self, key: str, value: str) -> str:
        def run(conn: sqlite3.Connection) -> str:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value)
            )
            return str(conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

        return await self._write(run)

    async def admit_enrolment(
        self, enrolment: Enrolment, limits: EnrolmentLimits, purge_before: str
    ) -> Admission:
        def count(conn: sqlite3.Connection, column: str, key: str) -> tuple[int, str | None]:
            row = conn.execute(ENROLMENT_COUNT.format(column, "?", "?"), (key, limits.since)).fetchone()
            return int(row[0]), row[1]

        def run(conn: sqlite3.Connection) -> Admission:
            # One writer: counting and adding cannot interleave with another sign-up.
            conn.execute(
                "DELETE FROM enrolments WHERE created_at < ? AND status <> 'confirmed'", (purge_before,)
            )
            in_all = (0, None)
            if limits.per_hour:
                row = conn.execute(ENROLMENT_COUNT_ALL.format("?"), (limits.hour_since,)).fetchone()
                in_all = (int(row[0]), row[1])
            answer = admission(
                count(conn, "client_key", enrolment.client_key),
                count(conn, "contact_key", enrolment.contact_key),
                limits,
                in_all,
            )
            if answer.admitted:
                conn.execute(
                    f"INSERT INTO enrolments ({ENROLMENT_COLUMNS}) VALUES ({', '.join('?' * 10)})",  # noqa: S608
                    enrolment_values(enrolment),
                )
            return answer

        return await self._write(run)

    async def get_enrolment(self, enrolment_id: str) -> Enrolment | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE enrolment_id = ?",  # noqa: S608
                (enrolment_id,),
            ).fetchone()
        )
        return None if row is None else enrolment_of(row)

    async def try_enrolment(self, enrolment_id: str, now: str, max_tries: int) -> Enrolment | None:
        row = await self._write(
            lambda c: c.execute(
                "UPDATE enrolments SET tries = tries + 1 WHERE enrolment_id = ? AND status = 'pending'"  # noqa: S608
                f" AND expires_at > ? AND tries < ? RETURNING {ENROLMENT_COLUMNS}",
                (enrolment_id, now, max_tries),
            ).fetchone()
        )
        return None if row is None else enrolment_of(row)

    async def finish_enrolment(self, enrolment_id: str, household: Household | None) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            status = "dead" if household is None else "confirmed"
            account = None if household is None else household.account_id
            if account is not None:  # this sign-up's link replaces the household's older ones
                conn.execute(REPLACE_ENROLMENTS.format("?", "?"), (account, enrolment_id))
            cur = conn.execute(
                "UPDATE enrolments SET status = ?, account_id = ?, pending = '{}'"
                " WHERE enrolment_id = ? AND status = 'pending'",
                (status, account, enrolment_id),
            )
            if cur.rowcount != 1:
                return False
            if household is not None:
                rows, _ = upsert_rows([household], {}, isoformat(self._clock.now()))
                conn.executemany(HOUSEHOLD_UPSERT.format(", ".join("?" * HOUSEHOLD_WIDTH)), rows)
            return True

        return await self._write(run)

    async def enrolled_household(self, contact_key: str) -> str | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT e.account_id FROM enrolments e JOIN households h ON h.account_id = e.account_id"
                " WHERE e.contact_key = ? AND e.status = 'confirmed' ORDER BY e.created_at DESC LIMIT 1",
                (contact_key,),
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def current_enrolment(self, account_id: str) -> str | None:
        row = await self._read(lambda c: c.execute(CURRENT_ENROLMENT.format("?"), (account_id,)).fetchone())
        return None if row is None else str(row[0])

    async def get_household(self, account_id: str) -> Household | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE account_id = ?",  # noqa: S608
                (account_id,),
            ).fetchone()
        )
        return None if row is None else household_of(row)

    async def update_self_household(self, household: Household) -> bool:
        values = self_update_values(household, isoformat(self._clock.now()))
        sql = self_update(["?"] * HOUSEHOLD_WIDTH)
        return bool(await self._write(lambda c: c.execute(sql, values).rowcount == 1))

    async def remove_household(self, account_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"DELETE FROM households WHERE account_id = ? AND {SELF_ENROLLED}",  # noqa: S608
                (account_id,),
            )
            return cur.rowcount == 1

        return await self._write(run)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; trigger bodies keep their inner semicolons."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        current.append(line)
        joined = "\n".join(current).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined):
            statements.append(joined)
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements
