"""Several instances as one service: what one instance does, a console on another sees."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.web import Application
from aiokafka import AIOKafkaProducer

from incident.adapters.live_bridge import OUTBOX, LiveBridge
from incident.app import create_app
from incident.core.clock import ManualClock
from incident.core.metrics import Metrics
from incident.households.model import Channel
from incident.incidents.live import LiveHub
from incident.keys import HUB, LIVE_BRIDGE, METRICS, NOTIFY, SETTINGS
from incident.settings import Settings
from tests.support.app import Api, Client
from tests.support.env import Broker, Tokens
from tests.support.wait import wait_until

Instances = tuple[Api, Api]


@pytest.fixture
async def two(
    settings: Settings, tokens: Tokens, clock: ManualClock,
    aiohttp_client: Callable[[Application], Awaitable[Client]],
) -> Instances:  # fmt: skip
    """Two instances of the service on one store and one Kafka, the live feed bridged."""
    bridged = msgspec.structs.replace(settings, live=msgspec.structs.replace(settings.live, bridge="on"))
    first = await aiohttp_client(create_app(bridged, clock=clock))
    second = await aiohttp_client(create_app(bridged, clock=clock))
    for c in (first, second):
        await asyncio.wait_for(c.app[LIVE_BRIDGE].listening.wait(), 20)
    return Api(first, tokens), Api(second, tokens)


async def _messages(
    ws: aiohttp.ClientWebSocketResponse, until: Callable[[dict[str, Any]], bool]
) -> list[Any]:
    got: list[Any] = []
    while not got or not until(got[-1]):
        got.append(await ws.receive_json(timeout=10))
    return got


async def test_a_console_on_one_instance_sees_what_another_does(two: Instances) -> None:
    a, b = two
    async with (
        b.client.ws_connect("/api/live", headers=b.tokens.header("carol")) as on_b,
        a.client.ws_connect("/api/live", headers=a.tokens.header("carol")) as on_a,
    ):
        assert (await on_b.receive_json(timeout=5))["type"] == "hello"
        assert (await on_a.receive_json(timeout=5))["type"] == "hello"
        inc = await a.declare()
        await a.call("POST", f"/api/incidents/{inc['id']}/notes", json={"text": "valve crew on site"})
        seen_b = await _messages(on_b, lambda m: m.get("event", {}).get("type") == "note_added")
        assert [m["event"]["type"] for m in seen_b] == ["declared", "note_added"]
        assert seen_b[0]["incident"]["id"] == inc["id"] and seen_b[1]["event"]["data"] == {
            "text": "valve crew on site"
        }
        # The instance that did it delivers once to its own clients (not again from the topic).
        seen_a = await _messages(on_a, lambda m: m.get("event", {}).get("type") == "note_added")
        assert [m["event"]["type"] for m in seen_a] == ["declared", "note_added"]
        await b.call("POST", f"/api/incidents/{inc['id']}/notes", json={"text": "from b"})
        (back,) = await _messages(on_a, lambda m: True)
        assert back["event"]["data"] == {"text": "from b"}
        with pytest.raises(TimeoutError):
            await on_a.receive_json(timeout=1)  # nothing twice
    assert a.client.app[METRICS].live_bridge.labels(direction="in")._value.get() >= 1


async def test_filters_hold_across_instances(two: Instances) -> None:
    a, b = two
    first = await a.declare()
    second = await a.declare()
    async with b.client.ws_connect(
        f"/api/live?incident={second['id']}", headers=b.tokens.header("rita")
    ) as ws:
        await ws.receive_json(timeout=5)
        await a.call("POST", f"/api/incidents/{first['id']}/notes", json={"text": "not for you"})
        await a.call("POST", f"/api/incidents/{second['id']}/notes", json={"text": "for you"})
        # (The second's declaration may still be on its way when the console connects.)
        got = await _messages(ws, lambda m: m["event"]["data"] == {"text": "for you"})
        assert {m["event"]["incident_id"] for m in got} == {second["id"]}


async def test_delivery_counts_and_reports_cross_too(two: Instances) -> None:
    """The fan-out runs on workers and ingest on API pods: their messages reach every console."""
    a, b = two
    async with b.client.ws_connect("/api/live", headers=b.tokens.header("carol")) as ws:
        await ws.receive_json(timeout=5)
        a.client.app[HUB].publish_deliveries("INC-X", {"sms": {"delivered": 3}})
        got = await ws.receive_json(timeout=10)
        assert got == {"type": "deliveries", "incident_id": "INC-X", "counts": {"sms": {"delivered": 3}}}
    async with b.client.ws_connect("/api/live?incident=INC-Y", headers=b.tokens.header("carol")) as filtered:
        await filtered.receive_json(timeout=5)
        a.client.app[HUB].publish_deliveries("INC-Z", {"sms": {"sent": 1}})
        a.client.app[HUB].publish_deliveries("INC-Y", {"sms": {"sent": 2}})
        got = await filtered.receive_json(timeout=10)
        assert got["incident_id"] == "INC-Y"


async def test_a_full_queue_to_kafka_drops_and_counts_never_waits(broker: Broker) -> None:
    metrics = Metrics()
    hub = LiveHub(metrics, 10)
    bridge = LiveBridge(hub.deliver, broker.bootstrap, "live-never-started", metrics)
    hub.relay = bridge.relay  # not started: nothing drains the queue
    for n in range(OUTBOX + 5):
        hub.publish_deliveries(f"INC-{n}", {})
    assert metrics.live_bridge.labels(direction="dropped")._value.get() == 5


async def test_carrier_rates_are_divided_among_the_senders_and_again_when_one_leaves(
    settings: Settings, clock: ManualClock, aiohttp_client: Callable[[Application], Awaitable[Client]]
) -> None:
    sending = msgspec.structs.replace(settings, notify=msgspec.structs.replace(settings.notify, send=True))
    first = await aiohttp_client(create_app(sending, clock=clock))
    second_app = create_app(sending, clock=clock)
    second = await aiohttp_client(second_app)
    engines = [first.app[NOTIFY].engine, second.app[NOTIFY].engine]
    partitions = sending.kafka.partitions

    def shares() -> list[float]:
        return [e.rate_share for e in engines]

    # Both joined the senders' group: the partitions, and so the rates, are split between them.
    await wait_until(
        _now(lambda: all(0 < s < 1 for s in shares()) and abs(sum(shares()) - 1) < 1e-9), "rates split"
    )
    held = [round(s * partitions) for s in shares()]
    assert sum(held) == partitions and min(held) >= 1  # whole partitions, each counted once
    rate = sending.twilio.messages_per_second
    assert sum(e._limits[Channel.sms].rate for e in engines) <= rate + 1e-9
    await second.close()  # it leaves the group: the first takes every partition and the whole rate
    await wait_until(_now(lambda: engines[0].rate_share == 1.0), "the whole rate back")


def _now(ok: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return ok()

    return check


async def test_what_no_instance_wrote_never_reaches_a_console(two: Instances, broker: Broker) -> None:
    """A broken or hostile writer on the live topic: its messages are skipped, counted, and the
    bridge goes on with the next one."""
    a, b = two
    topic = b.client.app[SETTINGS].live.topic
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for value, kind in (
            (b"\xff\xfe", b"event"),
            (b"not json", b"event"),
            (b"{}", b"\xff"),
            (b"{}", b"other"),
        ):
            await producer.send_and_wait(topic, value, key=b"INC-X", headers=[("kind", kind)])
    finally:
        await producer.stop()
    async with b.client.ws_connect("/api/live", headers=b.tokens.header("carol")) as ws:
        await ws.receive_json(timeout=5)
        a.client.app[HUB].publish_deliveries("INC-X", {"sms": {"sent": 1}})
        got = await ws.receive_json(timeout=10)
        assert got == {"type": "deliveries", "incident_id": "INC-X", "counts": {"sms": {"sent": 1}}}
    unreadable = b.client.app[METRICS].live_bridge.labels(direction="unreadable")
    assert unreadable._value.get() == 4
