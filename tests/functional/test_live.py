"""The live feed over a real WebSocket."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import aiohttp
import pytest

from incident.keys import HUB
from tests.support.app import Api, Client


async def _next_event(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive_json(timeout=timeout)
    assert msg["type"] == "event", msg
    return dict(msg)


async def test_live_feed_sends_every_new_event(api: Api) -> None:
    async with api.client.ws_connect("/api/live", headers=api.tokens.header("carol")) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello == {"type": "hello", "name": "carol", "role": "command", "incidents": None}
        inc = await api.declare()
        declared = await _next_event(ws)
        assert declared["event"]["type"] == "declared" and declared["incident"]["id"] == inc["id"]
        await api.call("POST", f"/api/incidents/{inc['id']}/status", json={"status": "active"})
        changed = await _next_event(ws)
        assert changed["event"]["seq"] == 2 and changed["incident"]["status"] == "active"


async def test_live_feed_filtered_by_incident(api: Api) -> None:
    first = await api.declare()
    second = await api.declare()
    path = f"/api/live?incident={second['id']}"
    async with api.client.ws_connect(path, headers=api.tokens.header("rita")) as ws:
        await ws.receive_json(timeout=5)
        await api.call("POST", f"/api/incidents/{first['id']}/notes", json={"text": "not for you"})
        await api.call("POST", f"/api/incidents/{second['id']}/notes", json={"text": "for you"})
        got = await _next_event(ws)
        assert got["event"]["incident_id"] == second["id"]
        assert got["event"]["data"] == {"text": "for you"}


async def test_browser_style_auth_in_the_first_message(api: Api) -> None:
    async with api.client.ws_connect("/api/live") as ws:
        await ws.send_json({"type": "auth", "token": api.tokens.by_name["rita"]})
        hello = await ws.receive_json(timeout=5)
        assert hello["name"] == "rita"
        await api.declare()
        assert (await _next_event(ws))["event"]["type"] == "declared"


async def test_a_bad_header_token_is_refused_before_the_upgrade(api: Api) -> None:
    async with api.client.get(
        "/api/live",
        headers={
            "Authorization": "Bearer wrong",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthenticated"
    assert len(api.client.app[HUB]) == 0


async def test_live_feed_refuses_a_bad_token(api: Api) -> None:
    async with api.client.ws_connect("/api/live") as ws:
        await ws.send_json({"type": "auth", "token": "wrong"})
        msg = await ws.receive_json(timeout=5)
        assert msg["type"] == "error" and msg["error"]["code"] == "unauthenticated"
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert len(api.client.app[HUB]) == 0


async def _raw_websocket(client: Client, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that completes the handshake and then never reads: a stuck display."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.host, client.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /api/live HTTP/1.1\r\n"
            f"Host: {client.host}:{client.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    assert b"101" in status_line
    return reader, writer


async def test_a_client_that_stops_reading_is_dropped_and_others_still_get_events(api: Api) -> None:
    hub = api.client.app[HUB]
    _reader, writer = await _raw_websocket(api.client, api.tokens.by_name["carol"])
    try:
        async with api.client.ws_connect("/api/live", headers=api.tokens.header("rita")) as healthy:
            await healthy.receive_json(timeout=5)
            for _ in range(100):
                if len(hub) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(hub) == 2
            inc = await api.declare()
            big = "x" * 3000  # big notes fill the stuck client's socket buffers quickly
            for i in range(3000):
                status, _ = await api.call(
                    "POST", f"/api/incidents/{inc['id']}/notes", json={"text": f"{i} {big}"}
                )
                assert status == 201
                if len(hub) == 1:
                    break
            assert len(hub) == 1, "the stuck client should have been dropped"
            # The healthy client got everything in order, without gaps.
            seqs = []
            while True:
                msg = await healthy.receive_json(timeout=5)
                seqs.append(msg["event"]["seq"])
                if msg["event"]["seq"] == i + 2:
                    break
            assert seqs == list(range(1, i + 3))
    finally:
        writer.close()
    status, text = await api.call("GET", "/metrics", who=None)
    assert "incident_live_clients_dropped_total 1.0" in text


@pytest.mark.parametrize("who", ["alice", "carol", "rita", "root"])
async def test_every_role_may_watch(api: Api, who: str) -> None:
    async with api.client.ws_connect("/api/live", headers=api.tokens.header(who)) as ws:
        assert (await ws.receive_json(timeout=5))["role"] in ("dispatcher", "command", "reviewer", "admin")
