"""Tokens and households changed from the command line take effect in the running service
without a restart (issue 17, item 9): the service looks at the tokens file and at the
registry's version every [auth]/[area] reload_s, and swaps the new ones in whole."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from aiohttp.web import Application

from incident.core.clock import ManualClock
from incident.core.domain import Role
from incident.intake.households import import_households
from incident.keys import METRICS, SERVICE_AREA
from incident.settings import Settings
from incident.store import Store
from tests.support.app import Client, serve
from tests.support.env import Tokens
from tests.support.wait import wait_until

HEADER = "account_id,lon,lat,address,language,sms,voice,app_token,priority,opt_out\n"


@pytest.fixture
async def client(
    settings: Settings, aiohttp_client: Callable[[Application], Awaitable[Client]], clock: ManualClock
) -> Client:
    fast = msgspec.structs.replace(
        settings,
        auth=msgspec.structs.replace(settings.auth, reload_s=0.1),
        area=msgspec.structs.replace(settings.area, reload_s=0.1),
    )
    return await serve(aiohttp_client, fast, clock=clock)


async def status(client: Client, token: str) -> int:
    async with client.get("/api/incidents", headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status


def reloads(client: Client, what: str, outcome: str) -> float:
    value = client.app[METRICS].registry.get_sample_value(
        "incident_reloads_total", {"what": what, "outcome": outcome}
    )
    return value or 0.0


async def test_a_token_added_while_running_works_and_a_broken_file_keeps_the_old_ones(
    client: Client, tokens: Tokens
) -> None:
    assert await status(client, tokens.by_name["alice"]) == 200
    dave = await asyncio.to_thread(tokens.add, "dave", Role.dispatcher)
    assert await status(client, dave) == 401  # not yet looked at
    await wait_until(lambda: _is(status(client, dave), 200), "dave's token", limit=20)

    good = await asyncio.to_thread(tokens.path.read_text)
    await asyncio.to_thread(tokens.path.write_text, good + "[[tokens]]\nname = 'half written")
    await wait_until(lambda: _true(reloads(client, "tokens", "failed") == 1), "the failed reload", limit=20)
    assert await status(client, dave) == 200  # the previous tokens stay in force

    await asyncio.to_thread(tokens.path.write_text, good.replace(_block(good, "dave"), ""))
    await wait_until(lambda: _is(status(client, dave), 401), "dave's token revoked", limit=20)
    assert await status(client, tokens.by_name["alice"]) == 200


async def test_households_imported_while_running_are_in_the_service_area(
    client: Client, make_store: Callable[[], Store], tmp_path: Path
) -> None:
    before = len(client.app[SERVICE_AREA].value.households)
    path = tmp_path / "more.csv"
    await asyncio.to_thread(path.write_text, HEADER + "LIVE-1,-85.55,38.03,1 New St,en,+15025550101,,,,\n")
    store = make_store()  # what `incident households import` does: its own connection
    await store.open()
    try:
        await import_households(store, path)
        await wait_until(
            lambda: _true("LIVE-1" in client.app[SERVICE_AREA].value.households.by_account),
            "the imported household",
            limit=20,
        )
        assert len(client.app[SERVICE_AREA].value.households) == before + 1
        assert reloads(client, "households", "ok") == 1
        # An import that changes nothing makes no new version: nothing is rebuilt.
        await import_households(store, path)
        await asyncio.sleep(0.5)
        assert reloads(client, "households", "ok") == 1
    finally:
        await store.close()


def _block(text: str, name: str) -> str:
    start = text.index(f'[[tokens]]\nname = "{name}"')
    end = text.find("[[tokens]]", start + 1)
    return text[start : end if end >= 0 else len(text)]


async def _is(value: Awaitable[int], want: int) -> bool:
    return await value == want


async def _true(value: bool) -> bool:
    return value


async def test_a_changed_tokens_file_is_read_once_it_has_settled(tmp_path: Path) -> None:
    """A file caught half-way through an edit (here: emptied) is not read: that would revoke
    every token. A change is read at the look after it was first seen, if it stayed."""
    from incident.core.auth import TokenRegistry, read_tokens
    from incident.core.metrics import Metrics
    from incident.reload import TokenReloader, file_stamp

    path = tmp_path / "tokens.toml"
    file = Tokens(path)
    token = await asyncio.to_thread(file.add, "alice", Role.dispatcher)
    registry = TokenRegistry(await asyncio.to_thread(read_tokens, path))
    reloader = TokenReloader(path, registry, Metrics(), await asyncio.to_thread(file_stamp, path))
    full = await asyncio.to_thread(path.read_text)
    await asyncio.to_thread(path.write_text, "")  # an editor truncates, then writes
    await reloader.check()
    assert registry.authenticate(token) is not None  # the empty file was not read
    await asyncio.to_thread(path.write_text, full)
    await reloader.check()
    await reloader.check()
    assert registry.authenticate(token) is not None
    bob = await asyncio.to_thread(file.add, "bob", Role.command)
    await reloader.check()
    assert registry.authenticate(bob) is None  # seen, not yet read
    await reloader.check()
    assert registry.authenticate(bob) is not None
