"""The carrier adapter (the official twilio client with our HTTP client) over real loopback
HTTP: what reaches the server is the form Twilio expects; a server that hangs up or never
answers is a carrier error whose outcome is unknown (never an escaping vendor exception),
and one that cannot be reached is a plain retryable error."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from incident.adapters.carriers import CarrierError, TwilioCarrier, _quote, form_body

SID = "AC" + "cd" * 16
TOKEN = "adapter-test-token"
MESSAGE: dict[str, Any] = {
    "sid": "SM" + "0" * 32, "status": "queued", "account_sid": SID, "to": "+15025550100",
    "from": "+15005550006", "body": "x", "date_created": "Wed, 25 Nov 2026 08:00:00 +0000",
    "date_updated": "Wed, 25 Nov 2026 08:00:00 +0000", "date_sent": None, "num_segments": "1",
    "direction": "outbound-api", "api_version": "2010-04-01", "price": None, "error_code": None,
    "error_message": None, "uri": "/x.json", "subresource_uris": {},
}  # fmt: skip


@dataclass
class Seen:
    bodies: list[bytes] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, Seen]]:
    seen = Seen()

    async def messages(request: web.Request) -> web.Response:
        seen.bodies.append(await request.read())
        seen.content_types.append(request.headers.get("Content-Type", ""))
        seen.authorizations.append(request.headers.get("Authorization", ""))
        return web.json_response(MESSAGE, status=201)

    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    async def never(request: web.Request) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_post(f"/2010-04-01/Accounts/{SID}/Messages.json", messages)
    app.router.add_post(f"/hangup/2010-04-01/Accounts/{SID}/Messages.json", hang_up)
    app.router.add_post(f"/never/2010-04-01/Accounts/{SID}/Messages.json", never)
    srv = TestServer(app)
    await srv.start_server()
    try:
        yield srv, seen
    finally:
        await srv.close()


def test_quoting_matches_quote_plus_for_any_text() -> None:
    rnd = random.Random(20261125)
    alphabet = [chr(c) for c in range(128)] + list("停水通知请煮沸后饮用é€😀")
    for _ in range(5000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60)))
        assert _quote(text) == quote_plus(text), text
        assert _quote(text.encode(), "") == quote_plus(text.encode())
    assert _quote("a/b c", "/") == quote_plus("a/b c", "/")


def test_the_form_is_what_aiohttp_would_send() -> None:
    data: dict[str, object] = {
        "To": "+15025550100", "From": "+15005550006", "Body": "停水通知: boil & drink = safe? 100%",
        "StatusCallback": "https://ops.example/hooks/twilio/status?d=INC-1-N1%3A7.sig",
        "StatusCallbackEvent": ["initiated", "completed"],
    }  # fmt: skip
    assert form_body(data) == urlencode(data, doseq=True).encode()


async def test_an_sms_reaches_the_server_as_twilios_form(server: tuple[TestServer, Seen]) -> None:
    srv, seen = server
    carrier = TwilioCarrier(SID, TOKEN, str(srv.make_url("")))
    try:
        bodies = ["Boil water before drinking. Sampletown Water", "请将自来水煮沸后饮用 & 联系 +1 555 0100"]
        for n, body in enumerate(bodies * 2):
            accepted = await carrier.send_sms(
                f"+150255501{n:02d}", "+15005550006", body, f"https://ops.example/s?d=INC-1-N1%3A{n}"
            )
            assert accepted.sid == MESSAGE["sid"] and accepted.status == "queued"
    finally:
        await carrier.close()
    forms = [dict(parse_qsl(b.decode(), strict_parsing=True)) for b in seen.bodies]
    assert [f["Body"] for f in forms] == bodies * 2
    assert [f["To"] for f in forms] == [f"+150255501{n:02d}" for n in range(4)]
    assert {f["From"] for f in forms} == {"+15005550006"}
    assert [f["StatusCallback"] for f in forms] == [
        f"https://ops.example/s?d=INC-1-N1%3A{n}" for n in range(4)
    ]
    assert set(seen.content_types) == {"application/x-www-form-urlencoded"}
    assert len(set(seen.authorizations)) == 1 and seen.authorizations[0].startswith("Basic ")


@pytest.mark.parametrize("path", ["hangup", "never"])
async def test_no_answer_after_the_request_is_an_unknown_outcome(
    server: tuple[TestServer, Seen], path: str
) -> None:
    """The carrier may have taken the message: the sender must ask before sending again."""
    srv, _ = server
    carrier = TwilioCarrier(SID, TOKEN, str(srv.make_url(f"/{path}")), timeout_s=0.3)
    try:
        with pytest.raises(CarrierError) as raised:
            await carrier.send_sms("+15025550100", "+15005550006", "x", "https://ops.example/s")
    finally:
        await carrier.close()
    assert raised.value.outcome_unknown and raised.value.retryable and raised.value.carrier_code is None


async def test_a_carrier_not_reached_is_retryable_and_certainly_not_sent() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: the connection is refused
    carrier = TwilioCarrier(SID, TOKEN, f"http://127.0.0.1:{port}", timeout_s=2)
    try:
        with pytest.raises(CarrierError) as raised:
            await carrier.send_sms("+15025550100", "+15005550006", "x", "https://ops.example/s")
    finally:
        await carrier.close()
    assert raised.value.retryable and not raised.value.outcome_unknown
