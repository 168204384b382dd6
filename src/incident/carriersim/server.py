"""The drill carrier: a Twilio-compatible simulator for exercises and tests.

It answers the Twilio REST subset the service uses at Twilio's own paths, so the official
``twilio`` library works against it unchanged once pointed at its base URL, and it posts
status callbacks, Gather digits and inbound SMS signed with ``X-Twilio-Signature`` exactly as
Twilio does. Outcomes follow a seeded, configurable mix (``DrillConfig``).

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json     create an SMS     -> 201 Message
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json     list: To, From, DateSent, DateSent<, DateSent>
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
    POST /2010-04-01/Accounts/{AccountSid}/Calls.json        create a call     -> 201 Call
    GET  /2010-04-01/Accounts/{AccountSid}/Calls.json        list: To, From, Status, StartTime[<>]
    GET  /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json

    GET  /_drill/messages, /_drill/calls, /_drill/stats      inspection (with outcomes)
    GET  /_drill/idle?timeout=S                              wait until every callback is posted
    POST /_drill/inbound {from, to, body, url?}              post an inbound SMS to the webhook
    POST /_drill/fail_next {status, count}                   the next creates answer 429/500/503

Every route takes HTTP Basic auth (AccountSid:AuthToken) and answers errors in Twilio's JSON
shape. In Python, ``app[DRILL]`` is the :class:`DrillCarrier` (records, stats, ``wait_idle``,
``fail_next``, ``inbound_sms``). Module layout, leaves first:

    drill_config     DrillConfig, SmsOutcome, CallOutcome
    drill_outcome    seeded draws and the plan of one send (status timeline, callback steps)
    drill_records    bounded in-memory records; status read off the clock
    drill_twilio     Twilio's wire formats: resource/error JSON, callback fields, TwiML Gather
    drill_callbacks  the signed webhook poster and the one-heap callback scheduler
    drill_carrier    DrillCarrier: validate, accept, plan, run callbacks, inbound SMS
    drill_views      the views: parse, ask the carrier, answer in Twilio's shapes
    drill            this: the app (auth, errors, lifecycle), serve_drill()
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware

from incident.carriersim.carrier import DrillCarrier, DrillStats, InboundResult
from incident.carriersim.config import CallOutcome, DrillConfig, SmsOutcome
from incident.carriersim.records import CallRecord, MessageRecord
from incident.carriersim.views import (
    ACCOUNT_PATH,
    DRILL,
    DRILL_SESSION,
    create_call,
    create_message,
    drill_calls,
    drill_fail_next,
    drill_idle,
    drill_inbound,
    drill_messages,
    drill_stats,
    error_response,
    get_call,
    get_message,
    json_response,
    list_calls,
    list_messages,
)
from incident.carriersim.wire import TwilioError, error_body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

__all__ = [
    "DRILL",
    "DRILL_SESSION",
    "CallOutcome",
    "CallRecord",
    "DrillCarrier",
    "DrillConfig",
    "DrillServer",
    "DrillStats",
    "InboundResult",
    "MessageRecord",
    "SmsOutcome",
    "create_drill_app",
    "serve_drill",
]


def _unauthorized() -> web.Response:
    body = error_body(401, 20003, "Authenticate")
    body["detail"] = "Your AccountSid or AuthToken was incorrect."
    return json_response(body, 401, {"WWW-Authenticate": 'Basic realm="Twilio API"'})


def _credentials_match(header: str, account_sid: str, auth_token: str) -> bool:
    """HTTP Basic with any casing of the scheme and any base64 padding aiohttp accepts."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, f"{account_sid}:{auth_token}".encode())


def _auth_middleware(config: DrillConfig) -> Middleware:
    expected = "Basic " + base64.b64encode(f"{config.account_sid}:{config.auth_token}".encode()).decode()

    @web.middleware
    async def twilio_auth_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if request.path.startswith("/v1/projects/"):  # the app-push gateway: FCM HTTP v1 shape
            if header != f"Bearer {config.auth_token}":
                return web.json_response({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status=401)
            return await handler(request)
        if header != expected and not _credentials_match(header, config.account_sid, config.auth_token):
            return _unauthorized()
        account = request.match_info.get("account")
        if account is not None and account != config.account_sid:
            return _unauthorized()
        try:
            return await handler(request)
        except TwilioError as err:
            return error_response(err)
        except web.HTTPNotFound:
            return error_response(
                TwilioError(404, 20404, f"The requested resource {request.path} was not found")
            )

    return twilio_auth_and_errors


# -- the app ----------------------------------------------------------------------------------


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    carrier = app[DRILL]
    connector = aiohttp.TCPConnector(limit=carrier.config.callback_concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[DRILL_SESSION] = session
        carrier.attach(session)
        yield


async def _callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
    carrier = app[DRILL]
    carrier.start_callbacks()
    yield
    await carrier.stop_callbacks()


async def push_send(request: web.Request) -> web.Response:
    """An FCM HTTP v1 ``messages:send``: accept a notification for a device token."""
    carrier = request.app[DRILL]
    try:
        message = (await request.json())["message"]
        token = str(message["token"])
        notification = message.get("notification") or {}
    except (ValueError, KeyError, TypeError):
        body = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "message.token is required"}}
        return web.json_response(body, status=400)
    if token in carrier.config.unregistered_tokens:
        body = {"error": {"code": 404, "status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}}
        return web.json_response(body, status=404)
    carrier.pushes.append(
        {"token": token, "title": notification.get("title", ""), "body": notification.get("body", "")}
    )
    name = f"projects/{request.match_info['project']}/messages/{len(carrier.pushes)}"
    return web.json_response({"name": name})


def create_drill_app(config: DrillConfig) -> web.Application:
    """The drill carrier as an aiohttp app; ``app[DRILL]`` is its :class:`DrillCarrier`."""
    app = web.Application(middlewares=[_auth_middleware(config)])
    app[DRILL] = DrillCarrier(config)
    add = app.router.add_route
    add("POST", f"{ACCOUNT_PATH}/Messages.json", create_message)
    add("GET", f"{ACCOUNT_PATH}/Messages.json", list_messages)
    add("GET", f"{ACCOUNT_PATH}/Messages/{{sid}}.json", get_message)
    add("POST", f"{ACCOUNT_PATH}/Calls.json", create_call)
    add("GET", f"{ACCOUNT_PATH}/Calls.json", list_calls)
    add("GET", f"{ACCOUNT_PATH}/Calls/{{sid}}.json", get_call)
    add("POST", "/v1/projects/{project}/messages:send", push_send)
    add("GET", "/_drill/messages", drill_messages)
    add("GET", "/_drill/calls", drill_calls)
    add("GET", "/_drill/stats", drill_stats)
    add("GET", "/_drill/idle", drill_idle)
    add("POST", "/_drill/inbound", drill_inbound)
    add("POST", "/_drill/fail_next", drill_fail_next)
    app.cleanup_ctx.extend([_session_ctx, _callbacks_ctx])
    return app


@dataclass(frozen=True, slots=True)
class DrillServer:
    #: Base URL for the twilio client, e.g. ``http://127.0.0.1:41234`` (no trailing slash).
    url: str
    carrier: DrillCarrier
    app: web.Application


@asynccontextmanager
async def serve_drill(
    config: DrillConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[DrillServer]:
    """Run the drill carrier on ``host:port`` (0: any free port) until the block ends.
    No access log: list queries carry phone numbers."""
    app = create_drill_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        yield DrillServer(f"http://{shown}:{bound_port}", app[DRILL], app)
    finally:
        await runner.cleanup()
