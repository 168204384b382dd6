"""WebSocket ``/api/live``: every new timeline event, optionally for chosen incidents only.

Authenticate with ``Authorization: Bearer`` on the upgrade request, or (browsers cannot set
headers on a WebSocket) with ``{"type": "auth", "token": "..."}`` as the first message.
Filter with ``?incident=INC-...`` (repeatable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from incident.api.endpoint import Endpoint
from incident.api.middleware import authorize, bearer_token
from incident.core.errors import AuthError, MalformedRequest
from incident.incidents.live import Subscriber
from incident.keys import ENDPOINTS, HUB, LIVE_SOCKETS, METRICS, TOKENS

log = logging.getLogger(__name__)

AUTH_TIMEOUT = 5.0
#: Close code for "you fell behind": the client should reconnect and catch up.
CLOSE_TOO_SLOW = WSCloseCode.TRY_AGAIN_LATER


class _AuthMessage(msgspec.Struct, frozen=True):
    type: str
    token: str


async def _first_message_token(ws: web.WebSocketResponse) -> str | None:
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT)
    except TimeoutError:
        return None
    if msg.type != WSMsgType.TEXT:
        return None
    try:
        auth = msgspec.json.decode(msg.data, type=_AuthMessage)
    except msgspec.MsgspecError:
        return None
    return auth.token if auth.type == "auth" else None


async def _pump(ws: web.WebSocketResponse, sub: Subscriber) -> None:
    while True:
        message = await sub.queue.get()
        await ws.send_str(message)


async def _watch_drop(
    request: web.Request, ws: web.WebSocketResponse, sub: Subscriber, pump: asyncio.Task[None]
) -> None:
    await sub.dropped.wait()
    pump.cancel()
    # A client that stopped reading may never take the close frame: give it a moment, then cut.
    try:
        async with asyncio.timeout(1.0):
            await ws.close(code=CLOSE_TOO_SLOW, message=b"fell behind; reconnect")
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()


async def live(request: web.Request) -> web.WebSocketResponse:
    endpoint: Endpoint = request.app[ENDPOINTS][request.match_info.route]
    header_token = bearer_token(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    upgrade = ws.can_prepare(request).ok
    if header_token is not None or "Authorization" in request.headers or not upgrade:
        # A client that can send headers is checked before the upgrade: a plain 401/403.
        principal = authorize(request.app[TOKENS], header_token, endpoint)
    if not upgrade:
        raise MalformedRequest("/api/live is a WebSocket: send an upgrade request", code="not_websocket")
    await ws.prepare(request)
    try:
        if header_token is None:
            principal = authorize(request.app[TOKENS], await _first_message_token(ws), endpoint)
    except AuthError as err:
        await ws.send_json({"type": "error", "error": {"code": err.code, "message": err.message}})
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=err.code.encode())
        return ws
    incidents = request.query.getall("incident", [])
    hub = request.app[HUB]
    sub = hub.subscribe(incidents or None)
    sockets = request.app[LIVE_SOCKETS]
    sockets.add(ws)
    hello = {"type": "hello", "name": principal.name, "role": principal.role.value}
    await ws.send_json({**hello, "incidents": incidents or None})
    pump = asyncio.create_task(_pump(ws, sub))
    watcher = asyncio.create_task(_watch_drop(request, ws, sub, pump))
    try:
        # Reading is required even though clients only listen: it is how close frames arrive.
        async for _ in ws:
            pass
    finally:
        hub.unsubscribe(sub)
        sockets.discard(ws)
        for task in (pump, watcher):
            task.cancel()
        for task in (pump, watcher):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        request.app[METRICS].live_clients.set(len(hub))
    return ws
