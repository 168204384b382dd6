"""The real app under test: one factory (:class:`Apps`) for every kind the tests need — the
plain API, an app that sends through the drill carrier or a Twilio-compatible server it did
not start, one that consumes reports — all on the session's prebuilt sample area."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from incident.app import create_app
from incident.core.clock import Clock, ManualClock
from incident.keys import PUBLIC_URL, SETTINGS
from incident.notices.ratelimit import WALL, RateClock
from incident.settings import Settings, load_settings
from tests.support.env import FAST, SENDING, Broker, Tokens, app_env, external_carrier_env, kafka_env
from tests.support.sample import built_sample

Client = TestClient[Any, Application]
AiohttpClient = Callable[[Application], Awaitable[Client]]


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

    @property
    def reports_topic(self) -> str:
        return self.client.app[SETTINGS].kafka.reports_topic


async def serve(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    *,
    clock: Clock | None = None,
    rate_clock: RateClock = WALL,
    sending: bool = False,
) -> Client:
    """The app of ``settings`` on a test server (closed with the test), on the prebuilt sample
    area when the settings are the sample's. A sending app's callbacks come to its own address."""
    prebuilt = built_sample()
    fits = prebuilt is not None and prebuilt.fits(settings)
    app = create_app(settings, clock=clock, rate_clock=rate_clock, prebuilt=prebuilt if fits else None)
    client = await aiohttp_client(app)
    if sending:
        client.app[PUBLIC_URL].value = str(client.make_url("")).rstrip("/")
    return client


@dataclass
class Apps:
    """Makes apps on one test's store, tokens, broker and manual clock."""

    aiohttp_client: AiohttpClient
    store_url: str
    tokens: Tokens
    broker: Broker
    clock: ManualClock

    async def settings(
        self, *, send: bool = False, consume: bool = False, kafka: dict[str, str] | None = None,
        carrier_url: str | None = None, **overrides: str,
    ) -> Settings:  # fmt: skip
        """Settings of an app of this test. ``send``: the fan-out runs, fast, through the drill
        carrier, or through the Twilio-compatible server at ``carrier_url`` (at the default
        rates); ``kafka`` shares topics with another instance; ``overrides`` are environment
        variables (INCIDENT_...), last."""
        env = {
            **app_env(self.store_url, self.tokens),
            **(kafka if kafka is not None else kafka_env(self.broker, send=send, consume=consume)),
            **(SENDING if send or carrier_url else {}),
            **(external_carrier_env(carrier_url) if carrier_url else FAST if send else {}),
            **overrides,
        }
        return await asyncio.to_thread(load_settings, None, env)  # reads time-zone files

    async def make(
        self, *, send: bool = False, consume: bool = False, kafka: dict[str, str] | None = None,
        carrier_url: str | None = None, system_clock: bool = False, rate_clock: RateClock = WALL,
        own_url: bool | None = None, **overrides: str,
    ) -> Api:  # fmt: skip
        """An app (see :meth:`settings`); on the test's manual clock unless ``system_clock``;
        the carrier's callbacks (and pages) come to its own address if it sends, or ``own_url``."""
        settings = await self.settings(
            send=send, consume=consume, kafka=kafka, carrier_url=carrier_url, **overrides
        )
        sending = send or carrier_url is not None or (kafka or {}).get("INCIDENT_NOTIFY__SEND") == "true"
        if own_url is not None:
            sending = own_url
        client = await serve(
            self.aiohttp_client, settings, clock=None if system_clock else self.clock,
            rate_clock=rate_clock, sending=sending,
        )  # fmt: skip
        return Api(client, self.tokens)
