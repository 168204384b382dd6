from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from incident.app import create_app
from incident.core.clock import ManualClock
from incident.settings import Settings
from tests.conftest import Tokens

Client = TestClient[Any, Application]


@pytest.fixture
async def client(
    settings: Settings, aiohttp_client: Callable[[Application], Awaitable[Client]], clock: ManualClock
) -> Client:
    # ``settings`` first: fixtures close in reverse order, so the app stops before its database goes.
    return await aiohttp_client(create_app(settings, clock=clock))


class Api:
    """A thin helper: the test client plus who is calling."""

    def __init__(self, client: Client, tokens: Tokens) -> None:
        self.client = client
        self.tokens = tokens

    async def call(
        self, method: str, path: str, who: str | None = "alice", json: Any = None, data: Any = None
    ) -> tuple[int, Any]:
        headers = self.tokens.header(who) if who else {}
        async with self.client.request(method, path, headers=headers, json=json, data=data) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body

    async def declare(self, who: str = "alice", **fields: Any) -> dict[str, Any]:
        body = {"kind": "main_break", "utility": "water", "title": "Main break on Elm St", "severity": "high"}
        status, incident = await self.call("POST", "/api/incidents", who, json={**body, **fields})
        assert status == 201, incident
        return dict(incident)


@pytest.fixture
def api(client: Client, tokens: Tokens) -> Api:
    return Api(client, tokens)
