"""PostgreSQL store (asyncpg): the production store, shared by several service instances.

Appends to one incident are serialised by a row lock on the incident (SELECT ... FOR UPDATE),
which keeps its sequence gapless and its chain linear whichever instance appends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import asyncpg
import msgspec
import orjson

from incident.clock import Clock
from incident.domain import Incident, Status, TimelineEvent, incident_id
from incident.errors import IncidentError, NotFound, StoreError
from incident.store.base import Appended, Decider, Opener, incident_counter
from incident.store.migrations import MIGRATIONS
from incident.timeline import seal

T = TypeVar("T")
_decode_incident = msgspec.json.Decoder(Incident).decode
_encode = msgspec.json.Encoder().encode
_EVENT_COLUMNS = "incident_id, seq, type, actor, at, data, prev_hash, hash"
# Any constant works; it only keeps two instances from migrating at the same time.
_MIGRATION_LOCK = 7_311_042_118


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


def _store_error(err: Exception) -> StoreError:
    retryable = isinstance(
        err,
        OSError
        | TimeoutError
        | asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.SerializationError
        | asyncpg.exceptions.DeadlockDetectedError
        | asyncpg.exceptions.InterfaceError,
    )
    return StoreError(f"PostgreSQL: {err}", retryable=retryable)


class PostgresStore:
    def __init__(self, url: str, clock: Clock, pool_size: int = 10) -> None:
        self._url = url
        self._clock = clock
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._url, min_size=1, max_size=self._pool_size, command_timeout=30
            )
        except (OSError, asyncpg.PostgresError) as err:
            raise _store_error(err) from err
        await self._run(self._migrate)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _run(self, fn: Callable[[Any], Awaitable[T]], *, transaction: bool = True) -> T:
        if self._pool is None:
            raise StoreError("the store is not open", retryable=False)
        try:
            async with self._pool.acquire() as conn:
                if not transaction:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)
        except IncidentError:
            raise
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            raise _store_error(err) from err

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
        await self._run(lambda c: c.fetchval("SELECT 1"), transaction=False)

    async def schema_version(self) -> int:
        value = await self._run(
            lambda c: c.fetchval("SELECT max(version) FROM schema_migrations"), transaction=False
        )
        return int(value or 0)

    @staticmethod
    async def _write(conn: Any, state: Incident, events: list[TimelineEvent], *, new: bool) -> None:
        if new:
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
        else:
            await conn.execute(
                "UPDATE incidents SET status = $1, updated_at = $2, last_seq = $3, head_hash = $4,"
                " state = $5 WHERE id = $6",
                state.status.value,
                state.updated_at,
                state.last_seq,
                state.head_hash,
                _encode(state).decode(),
                state.id,
            )
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

    async def create_incident(self, opener: Opener) -> Appended:
        async def run(conn: Any) -> Appended:
            now = self._clock.now()
            number = await conn.fetchval(
                "INSERT INTO counters (name, value) VALUES ($1, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
                incident_counter(now.year),
            )
            new_id = incident_id(now.year, number)
            state, events = seal(new_id, None, opener(new_id), now)
            await self._write(conn, state, events, new=True)
            return Appended(state, events)

        return await self._run(run)

    async def append(self, incident_id: str, decide: Decider) -> Appended:
        async def run(conn: Any) -> Appended:
            raw = await conn.fetchval("SELECT state FROM incidents WHERE id = $1 FOR UPDATE", incident_id)
            if raw is None:
                raise NotFound(f"no incident {incident_id}")
            state = _decode_incident(raw)
            drafts = decide(state)
            if not drafts:
                return Appended(state, [])
            new_state, events = seal(incident_id, state, drafts, self._clock.now())
            await self._write(conn, new_state, events, new=False)
            return Appended(new_state, events)

        return await self._run(run)

    async def get_incident(self, incident_id: str) -> Incident | None:
        raw = await self._run(
            lambda c: c.fetchval("SELECT state FROM incidents WHERE id = $1", incident_id),
            transaction=False,
        )
        return _decode_incident(raw) if raw is not None else None

    async def list_incidents(
        self, statuses: Collection[Status] | None = None, limit: int = 100
    ) -> list[Incident]:
        if statuses is None:
            query = lambda c: c.fetch(  # noqa: E731
                "SELECT state FROM incidents ORDER BY declared_at DESC, id DESC LIMIT $1", limit
            )
        else:
            values = [s.value for s in statuses]
            query = lambda c: c.fetch(  # noqa: E731
                "SELECT state FROM incidents WHERE status = ANY($1::text[])"
                " ORDER BY declared_at DESC, id DESC LIMIT $2",
                values,
                limit,
            )
        rows = await self._run(query, transaction=False)
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
