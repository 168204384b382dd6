"""Timeline append throughput against a plain INSERT loop on the same database, same run.

    python -m bench.timeline_append [--events N] [--concurrency C] [--postgres URL]

Ours: ``Store.append`` (row lock or writer thread, hash chain, projection update, one
transaction per append). Baseline: a plain INSERT of a row of the same shape and size with
the same concurrency, one transaction each: aiosqlite for SQLite, an asyncpg pool for
PostgreSQL. A raw synchronous sqlite3 loop is shown too as the ceiling (it would block the
event loop, so a service cannot use it).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite
import asyncpg

from incident.core import domain
from incident.core.clock import SystemClock
from incident.core.domain import Declaration, Kind, Severity, Utility
from incident.settings import StoreSettings
from incident.store import Store, open_store

DECL = Declaration(
    kind=Kind.main_break, utility=Utility.water, title="Bench main break", severity=Severity.high
)
NOTE = "valve V-12 closed by crew 4; pressure dropping in zone PZ-3"
INCIDENTS = 8
ROW_SQL = (
    "CREATE TABLE IF NOT EXISTS plain_events (incident_id TEXT, seq BIGINT, type TEXT, actor TEXT,"
    " at TEXT, data TEXT, prev_hash TEXT, hash TEXT)"
)
ROW = (
    "INC-2026-000001",
    1,
    "note_added",
    "bench",
    "2026-11-25T00:00:00.000000+00:00",
    '{"text":"' + NOTE + '"}',
    "0" * 64,
    "f" * 64,
)


async def _run_concurrently(total: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> float:
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def ours(store: Store, total: int, concurrency: int) -> float:
    ids = [
        (await store.create_incident(lambda _id: domain.declare(DECL, "bench", owner="bench"))).incident.id
        for _ in range(INCIDENTS)
    ]
    return await _run_concurrently(
        total,
        concurrency,
        lambda i: store.append(ids[i % INCIDENTS], lambda s: domain.add_note(s, NOTE, "bench")),
    )


async def sqlite_plain_async(path: Path, total: int, concurrency: int) -> float:
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(ROW_SQL)

        async def one(_: int) -> None:
            await db.execute("BEGIN")
            await db.execute("INSERT INTO plain_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ROW)
            await db.execute("COMMIT")

        lock = asyncio.Lock()  # one connection: transactions must not interleave

        async def guarded(i: int) -> None:
            async with lock:
                await one(i)

        return await _run_concurrently(total, concurrency, guarded)


def sqlite_plain_sync(path: Path, total: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(ROW_SQL)
    started = time.perf_counter()
    for _ in range(total):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO plain_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ROW)
        conn.execute("COMMIT")
    rate = total / (time.perf_counter() - started)
    conn.close()
    return rate


async def postgres_plain(url: str, total: int, concurrency: int) -> float:
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    try:
        await pool.execute(ROW_SQL)

        async def one(_: int) -> None:
            await pool.execute("INSERT INTO plain_events VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", *ROW)

        return await _run_concurrently(total, concurrency, one)
    finally:
        await pool.close()


def _line(name: str, rate: float, base: float | None = None) -> str:
    ratio = f"  ratio {rate / base:5.2f}" if base else ""
    return f"  {name:<52} {rate:>9,.0f} events/s{ratio}"


async def bench_sqlite(total: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite (WAL, synchronous=NORMAL), {total} appends over {INCIDENTS} incidents")
        plain = await sqlite_plain_async(Path(tmp) / "plain.db", total, concurrency)
        raw = await asyncio.to_thread(sqlite_plain_sync, Path(tmp) / "raw.db", total)
        results = {}
        for c in (1, concurrency):
            store = open_store(StoreSettings(url=f"sqlite:///{tmp}/ours-{c}.db"), SystemClock())
            await store.open()
            results[c] = await ours(store, total, c)
            await store.close()
        print(_line(f"baseline: plain INSERT loop, aiosqlite, {concurrency} tasks", plain))
        print(_line("ceiling: raw sqlite3 INSERT loop (blocks the loop)", raw))
        print(_line("ours: Store.append, 1 task", results[1], plain))
        print(_line(f"ours: Store.append, {concurrency} tasks", results[concurrency], plain))
        print(f"  ours vs ceiling at {concurrency} tasks: ratio {results[concurrency] / raw:.2f}")


async def bench_postgres(url: str, total: int, concurrency: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    scoped = f"{url}{'&' if '?' in url else '?'}search_path={schema}"
    try:
        print(f"PostgreSQL ({url}), {total} appends over {INCIDENTS} incidents, pool of {concurrency}")
        plain = await postgres_plain(scoped, total, concurrency)
        store = open_store(StoreSettings(url=scoped, pool_size=concurrency), SystemClock())
        await store.open()
        rate = await ours(store, total, concurrency)
        await store.close()
        print(_line(f"baseline: plain INSERT, asyncpg pool, {concurrency} tasks", plain))
        print(_line(f"ours: Store.append, {concurrency} tasks", rate, plain))
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL URL; empty to skip",
    )
    args = parser.parse_args(argv)
    await bench_sqlite(args.events, args.concurrency)
    if args.postgres:
        try:
            await bench_postgres(args.postgres, args.events, args.concurrency)
        except (OSError, asyncpg.PostgresError) as err:
            print(f"PostgreSQL skipped: {err}")


if __name__ == "__main__":
    asyncio.run(main())
