"""Shared fixtures: real stores (SQLite file, PostgreSQL schema), the real app, tokens.

Tests that need PostgreSQL use INCIDENT_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test) and are skipped, with the reason, when no server
answers. What the fixtures are made of lives in tests/support.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from incident.app import Prebuilt
from incident.core.clock import ManualClock
from incident.core.domain import Role
from incident.settings import Settings, StoreSettings, load_settings
from incident.store import Store, open_store
from tests.support.app import AiohttpClient, Api, Apps, Client, serve
from tests.support.env import (
    POSTGRES_URL,
    Broker,
    Tokens,
    app_env,
    kafka_env,
    postgres_answers,
    postgres_schema,
)
from tests.support.sample import prebuilt_sample


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any blocking call made on the event loop (as aiohttp's own suite does)."""
    with blockbuster_ctx() as bb:
        # asyncpg looks for ~/.pgpass and client certificates on disk while it parses
        # connection arguments: small one-off checks when a pool opens, not per query.
        for function in bb.functions.values():
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
        yield bb


@pytest.fixture(scope="session")
def postgres_url() -> str:
    reason = postgres_answers()
    if reason:
        pytest.skip(reason)
    return POSTGRES_URL


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


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    t = Tokens(tmp_path / "tokens.toml")
    t.add("alice", Role.dispatcher)
    t.add("bob", Role.dispatcher)
    t.add("carol", Role.command)
    t.add("rita", Role.reviewer)
    t.add("root", Role.admin)
    return t


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    b = Broker()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def sample_area() -> Prebuilt:
    """The sample service area, templates and playbooks, built once for every app."""
    return prebuilt_sample()


@pytest.fixture
def settings(store_url: str, tokens: Tokens, broker: Broker, sample_area: Prebuilt) -> Settings:
    """An app's settings (``sample_area``: its apps start on the prebuilt sample area)."""
    return load_settings(
        None,
        {
            **app_env(store_url, tokens),
            "INCIDENT_HTTP__MAX_BODY_BYTES": "4096",
            "INCIDENT_LIVE__CLIENT_QUEUE": "50",
            **kafka_env(broker),
        },
    )


@pytest.fixture
def apps(
    settings: Settings,  # before the apps' clients: fixtures close in reverse order, the database outlives the apps
    aiohttp_client: AiohttpClient, tokens: Tokens, broker: Broker, clock: ManualClock,
) -> Apps:  # fmt: skip
    """Makes more apps on the test's store (``apps.make(send=True)``: one that sends)."""
    return Apps(aiohttp_client, settings.store.url, tokens, broker, clock)


@pytest.fixture
async def client(settings: Settings, aiohttp_client: AiohttpClient, clock: ManualClock) -> Client:
    # ``settings`` first: fixtures close in reverse order, so the app stops before its database goes.
    return await serve(aiohttp_client, settings, clock=clock)


@pytest.fixture
def api(client: Client, tokens: Tokens) -> Api:
    return Api(client, tokens)


@pytest.fixture
async def sending_api(apps: Apps) -> Api:
    """The app with the fan-out running against its drill carrier."""
    return await apps.make(send=True, system_clock=True)
