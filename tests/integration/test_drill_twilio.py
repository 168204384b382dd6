"""The drill carrier driven by the real ``twilio`` library, over real loopback HTTP.

Callbacks go to a real aiohttp receiver that checks every ``X-Twilio-Signature`` with the
twilio library's own ``RequestValidator``, as the service's webhooks will.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from incident.carriersim.server import (
    DRILL,
    CallOutcome,
    DrillCarrier,
    DrillConfig,
    SmsOutcome,
    create_drill_app,
    serve_drill,
)

# AsyncTwilioHttpClient passes aiohttp.BasicAuth as `auth=`, both deprecated in aiohttp 3.14.
pytestmark = [
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]

SID = "AC" + "ab" * 16
TOKEN = "drill-test-token"
FROM = "+15550000100"
TO = "+15551230001"
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


# -- a webhook receiver -----------------------------------------------------------------------


@dataclass
class Hit:
    method: str
    path: str
    url: str
    form: dict[str, str]
    headers: dict[str, str]
    valid: bool


@dataclass
class Receiver:
    """Collects every webhook; checks its signature as the service will."""

    base: str = ""
    hits: list[Hit] = field(default_factory=list)
    twiml: str = ""
    answers: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        signature = request.headers.get("X-Twilio-Signature", "")
        valid = RequestValidator(TOKEN).validate(str(request.url), form, signature)
        self.hits.append(
            Hit(request.method, request.path, str(request.url), form, dict(request.headers), valid)
        )
        if request.path == "/twiml":
            return web.Response(text=self.twiml, content_type="application/xml")
        if request.path == "/inbound":
            reply = "<Response><Message>You are unsubscribed.</Message></Response>"
            return web.Response(text=reply, content_type="application/xml")
        return web.Response(status=self.answers.get(request.path, 204))

    def about(self, sid: str) -> list[Hit]:
        return [h for h in self.hits if sid in (h.form.get("MessageSid"), h.form.get("CallSid"))]


@pytest.fixture
async def receiver(aiohttp_server: ServerFactory) -> Receiver:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    server = await aiohttp_server(app)
    rec.base = f"http://{server.host}:{server.port}"
    return rec


# -- the drill carrier and the twilio client --------------------------------------------------


@dataclass
class Drill:
    url: str
    carrier: DrillCarrier

    async def settle(self) -> None:
        async with asyncio.timeout(10):
            await self.carrier.wait_idle()


DrillFactory = Callable[..., Awaitable[Drill]]


@pytest.fixture
def make_drill(aiohttp_server: ServerFactory) -> DrillFactory:
    async def make(**changes: Any) -> Drill:
        settings: dict[str, Any] = {"account_sid": SID, "auth_token": TOKEN, "latency_ms": (5, 30)}
        settings.update(changes)
        app = create_drill_app(DrillConfig(**settings))
        server = await aiohttp_server(app)
        return Drill(f"http://{server.host}:{server.port}", app[DRILL])

    return make


@pytest.fixture
async def drill(make_drill: DrillFactory) -> Drill:
    return await make_drill()


class RewritingHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Sends every request to ``base`` instead of Twilio's host (the second way to point the
    library at a Twilio-compatible server)."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self._base = urlsplit(base)

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        url = urlunsplit((self._base.scheme, self._base.netloc, parts.path, parts.query, parts.fragment))
        return await super().request(method, url, *args, **kwargs)


@pytest.fixture
async def http_clients() -> AsyncIterator[list[AsyncTwilioHttpClient]]:
    """AsyncTwilioHttpClient opens an aiohttp session: make it inside the loop, close it after."""
    made: list[AsyncTwilioHttpClient] = []
    yield made
    for http in made:
        await http.close()


def twilio_client(
    drill: Drill, made: list[AsyncTwilioHttpClient], how: str = "base_url", token: str = TOKEN
) -> Client:
    if how == "base_url":
        http = AsyncTwilioHttpClient()
        client = Client(SID, token, http_client=http)
        client.api.base_url = drill.url
    else:
        http = RewritingHttpClient(drill.url)
        client = Client(SID, token, http_client=http)
    made.append(http)
    return client


@pytest.fixture
async def twilio(drill: Drill, http_clients: list[AsyncTwilioHttpClient]) -> Client:
    return twilio_client(drill, http_clients)


def auth_header(sid: str = SID, token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()}


MESSAGE_FIELDS = {
    "account_sid", "api_version", "body", "date_created", "date_sent", "date_updated", "direction",
    "error_code", "error_message", "from", "messaging_service_sid", "num_media", "num_segments", "price",
    "price_unit", "sid", "status", "subresource_uris", "to", "uri",
}  # fmt: skip


# -- SMS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["base_url", "rewrite"])
async def test_sms_through_the_twilio_library(
    make_drill: DrillFactory, receiver: Receiver, http_clients: list[AsyncTwilioHttpClient], how: str
) -> None:
    drill = await make_drill(sms_overrides={TO: SmsOutcome.delivered})
    client = twilio_client(drill, http_clients, how)
    before = datetime.now(UTC) - timedelta(seconds=1)
    message = await client.messages.create_async(
        to=TO, from_=FROM, body="Boil water before drinking.", status_callback=receiver.url("/status?n=1")
    )
    assert message.sid is not None
    assert message.sid.startswith("SM")
    assert len(message.sid) == 34
    assert int(message.sid[2:], 16) >= 0
    assert (message.status, message.direction, message.num_segments) == ("queued", "outbound-api", "1")
    assert (message.to, message.from_, message.body) == (TO, FROM, "Boil water before drinking.")
    assert (message.account_sid, message.error_code, message.price) == (SID, None, None)
    assert message.uri == f"/2010-04-01/Accounts/{SID}/Messages/{message.sid}.json"
    assert message.date_created is not None
    assert message.date_created >= before.replace(microsecond=0)
    assert message.date_sent is None

    await drill.settle()
    hits = receiver.about(message.sid)
    assert [h.form["MessageStatus"] for h in hits] == ["queued", "sent", "delivered"]
    assert all(h.valid for h in hits), "every callback validates with RequestValidator"
    assert all(h.path == "/status" and h.url.endswith("/status?n=1") for h in hits)
    for h in hits:
        assert h.form["SmsStatus"] == h.form["MessageStatus"]
        assert (h.form["MessageSid"], h.form["SmsSid"], h.form["AccountSid"]) == (message.sid,) * 2 + (SID,)
        assert (h.form["To"], h.form["From"], h.form["ApiVersion"]) == (TO, FROM, "2010-04-01")
        assert "ErrorCode" not in h.form
        assert h.headers["I-Twilio-Idempotency-Token"]

    fetched = await client.messages(message.sid).fetch_async()
    assert (fetched.sid, fetched.status, fetched.error_code) == (message.sid, "delivered", None)
    assert fetched.date_sent is not None
    listed = await client.messages.list_async(to=TO, date_sent_after=before)
    assert [m.sid for m in listed] == [message.sid]


async def test_message_json_has_twilios_fields(drill: Drill) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{drill.url}/2010-04-01/Accounts/{SID}/Messages.json",
            data={"To": TO, "MessagingServiceSid": "MG" + "0" * 32, "Body": "水管爆裂 请勿饮用自来水。" * 6},
            headers=auth_header(),
        ) as resp,
    ):
        assert resp.status == 201
        body = await resp.json()
    assert set(body) == MESSAGE_FIELDS
    assert body["num_segments"] == "2"
    assert body["messaging_service_sid"] == "MG" + "0" * 32
    assert body["from"] == DrillConfig().messaging_service_from
    assert body["date_created"].endswith(" +0000")
    datetime.strptime(body["date_created"], "%a, %d %b %Y %H:%M:%S %z")


REFUSALS = [
    pytest.param({"to": "555-1234", "body": "x"}, 400, 21211, id="to-not-e164"),
    pytest.param({"to": TO}, 400, 21602, id="no-body"),
    pytest.param({"to": TO, "body": ""}, 400, 21602, id="empty-body"),
    pytest.param({"to": "+15559990001", "body": "x"}, 400, 21610, id="opted-out"),
    pytest.param({"to": "+15559990002", "body": "x"}, 400, 21614, id="landline"),
    pytest.param({"to": TO, "body": "x" * 1601}, 400, 21617, id="too-long"),
    pytest.param({"to": FROM, "body": "x"}, 400, 21266, id="to-is-from"),
    pytest.param({"to": TO, "body": "x", "status_callback": "ftp://x/y"}, 400, 21609, id="bad-callback"),
]


@pytest.mark.parametrize(("fields", "status", "code"), REFUSALS)
async def test_sms_refusals_like_twilio(
    make_drill: DrillFactory,
    http_clients: list[AsyncTwilioHttpClient],
    receiver: Receiver,
    fields: dict[str, str],
    status: int,
    code: int,
) -> None:
    drill = await make_drill(
        opted_out=frozenset({"+15559990001"}), not_sms_capable=frozenset({"+15559990002"})
    )
    client = twilio_client(drill, http_clients)
    fields.setdefault("status_callback", receiver.url("/status"))
    with pytest.raises(TwilioRestException) as caught:
        await client.messages.create_async(from_=FROM, **fields)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert len(drill.carrier.messages) == 0
    assert drill.carrier.stats.refused[code] == 1
    await drill.settle()
    assert receiver.hits == []


async def test_sms_needs_a_sender(twilio: Client, drill: Drill) -> None:
    with pytest.raises(TwilioRestException) as caught:
        await twilio.messages.create_async(to=TO, body="x")
    assert (caught.value.status, caught.value.code) == (400, 21603)


async def test_error_json_is_twilios_shape(drill: Drill) -> None:
    url = f"{drill.url}/2010-04-01/Accounts/{SID}/Messages.json"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data={"To": "+1555123456", "From": FROM}, headers=auth_header()) as resp:
            assert resp.status == 400
            assert await resp.json() == {
                "code": 21602,
                "message": "Message body is required.",
                "more_info": "https://www.twilio.com/docs/errors/21602",
                "status": 400,
            }
        async with session.post(
            url, data={"To": "12", "From": FROM, "Body": "x"}, headers=auth_header()
        ) as resp:
            body = await resp.json()
            assert (resp.status, body["code"], body["status"]) == (400, 21211, 400)
            assert body["more_info"] == "https://www.twilio.com/docs/errors/21211"
        async with session.post(url, data={"To": TO, "Body": "x"}, headers=auth_header(token="nope")) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
            body = await resp.json()
            assert (body["code"], body["status"], body["message"]) == (20003, 401, "Authenticate")
        async with session.post(url, data={"To": TO, "Body": "x"}) as resp:
            assert resp.status == 401
        odd = {"Authorization": "basic " + base64.b64encode("ÄC:tökén".encode()).decode()}
        async with session.post(url, data={"To": TO, "Body": "x"}, headers=odd) as resp:
            assert resp.status == 401
        lower = {"Authorization": "basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()}
        async with session.get(url, headers=lower) as resp:
            assert resp.status == 200
        other = f"{drill.url}/2010-04-01/Accounts/AC{'0' * 32}/Messages.json"
        async with session.get(other, headers=auth_header()) as resp:
            assert resp.status == 401
        async with session.get(f"{drill.url}/2010-04-01/Nope.json", headers=auth_header()) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == 20404
    assert len(drill.carrier.messages) == 0


async def test_wrong_credentials_and_unknown_sid_through_the_library(
    drill: Drill, http_clients: list[AsyncTwilioHttpClient]
) -> None:
    wrong = twilio_client(drill, http_clients, token="wrong-token")
    with pytest.raises(TwilioRestException) as caught:
        await wrong.messages.create_async(to=TO, from_=FROM, body="x")
    assert (caught.value.status, caught.value.code) == (401, 20003)
    right = twilio_client(drill, http_clients)
    with pytest.raises(TwilioRestException) as missing:
        await right.messages("SM" + "0" * 32).fetch_async()
    assert (missing.value.status, missing.value.code) == (404, 20404)
    assert len(drill.carrier.messages) == 0


async def test_429_and_5xx_create_nothing(
    make_drill: DrillFactory, http_clients: list[AsyncTwilioHttpClient], receiver: Receiver
) -> None:
    throttled = await make_drill(http_429_share=1.0, retry_after_s=3)
    client = twilio_client(throttled, http_clients)
    with pytest.raises(TwilioRestException) as caught:
        await client.messages.create_async(to=TO, from_=FROM, body="x", status_callback=receiver.url("/s"))
    assert (caught.value.status, caught.value.code) == (429, 20429)
    with pytest.raises(TwilioRestException) as call_caught:
        await client.calls.create_async(to=TO, from_=FROM, twiml="<Response/>")
    assert call_caught.value.status == 429
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{throttled.url}/2010-04-01/Accounts/{SID}/Messages.json",
            data={"To": TO, "From": FROM, "Body": "x"},
            headers=auth_header(),
        ) as resp,
    ):
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "3"
        assert (await resp.json())["code"] == 20429
    assert await client.messages.list_async() == []
    assert (len(throttled.carrier.messages), len(throttled.carrier.calls)) == (0, 0)

    failing = await make_drill(http_5xx_share=1.0, seed=1)
    client = twilio_client(failing, http_clients)
    seen: set[tuple[int, int]] = set()
    for _ in range(20):
        with pytest.raises(TwilioRestException) as err:
            await client.messages.create_async(
                to=TO, from_=FROM, body="x", status_callback=receiver.url("/s")
            )
        seen.add((err.value.status, err.value.code))
    assert seen == {(500, 20500), (503, 20503)}
    assert failing.carrier.stats.messages == 0
    assert await client.messages.list_async() == []
    await throttled.settle()
    await failing.settle()
    assert receiver.hits == []


async def test_a_share_of_429s_follows_the_seed(make_drill: DrillFactory) -> None:
    drill = await make_drill(http_429_share=0.3, callbacks=False, seed=4)
    url = f"{drill.url}/2010-04-01/Accounts/{SID}/Messages.json"
    statuses: list[int] = []
    async with aiohttp.ClientSession(headers=auth_header()) as session:
        for i in range(300):
            async with session.post(url, data={"To": f"+1555200{i:04d}", "From": FROM, "Body": "x"}) as resp:
                statuses.append(resp.status)
    assert statuses.count(429) / 300 == pytest.approx(0.3, abs=0.08)
    assert len(drill.carrier.messages) == statuses.count(201)


async def test_fail_next_then_success(twilio: Client, drill: Drill) -> None:
    drill.carrier.fail_next(503)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{drill.url}/_drill/fail_next", json={"status": 429, "count": 1}, headers=auth_header()
        ) as r,
    ):
        assert r.status == 204
    codes = []
    for _ in range(2):
        with pytest.raises(TwilioRestException) as caught:
            await twilio.messages.create_async(to=TO, from_=FROM, body="x")
        codes.append(caught.value.status)
    assert codes == [503, 429]
    message = await twilio.messages.create_async(to=TO, from_=FROM, body="x")
    assert [m.sid for m in drill.carrier.messages] == [message.sid]


async def test_sms_overrides_are_exact(
    make_drill: DrillFactory, http_clients: list[AsyncTwilioHttpClient], receiver: Receiver
) -> None:
    overrides = {f"+1555300000{i}": outcome for i, outcome in enumerate(SmsOutcome)}
    drill = await make_drill(sms_overrides=overrides, seed=99)
    client = twilio_client(drill, http_clients)
    expected = {
        SmsOutcome.delivered: ("delivered", None),
        SmsOutcome.unreachable: ("undelivered", "30003"),
        SmsOutcome.unknown: ("undelivered", "30005"),
        SmsOutcome.landline: ("undelivered", "30006"),
        SmsOutcome.filtered: ("undelivered", "30007"),
        SmsOutcome.failed: ("failed", "30008"),
    }
    sids = {}
    for _ in range(2):
        for number in overrides:
            sent = await client.messages.create_async(
                to=number, from_=FROM, body="x", status_callback=receiver.url("/status")
            )
            sids[sent.sid] = overrides[number]
    await drill.settle()
    for sid, outcome in sids.items():
        status, code = expected[outcome]
        final = receiver.about(sid)[-1]
        assert (final.form["MessageStatus"], final.form.get("ErrorCode")) == (status, code)
        assert final.valid
        fetched = await client.messages(sid).fetch_async()
        assert (fetched.status, fetched.error_code) == (status, int(code) if code else None)
        if status == "failed":
            assert [h.form["MessageStatus"] for h in receiver.about(sid)] == ["queued", "failed"]


async def test_sms_shares_end_to_end(
    make_drill: DrillFactory, http_clients: list[AsyncTwilioHttpClient], receiver: Receiver
) -> None:
    mix = {SmsOutcome.delivered: 0.7, SmsOutcome.unreachable: 0.2, SmsOutcome.failed: 0.1}
    drill = await make_drill(sms_mix=mix, seed=12, latency_ms=(0, 5))
    client = twilio_client(drill, http_clients)
    numbers = [f"+1555400{i:04d}" for i in range(300)]
    await asyncio.gather(
        *(
            client.messages.create_async(to=n, from_=FROM, body="x", status_callback=receiver.url("/status"))
            for n in numbers
        )
    )
    await drill.settle()
    finals = [
        h.form["MessageStatus"] for h in receiver.hits if h.form["MessageStatus"] not in ("queued", "sent")
    ]
    assert len(finals) == 300
    assert all(h.valid for h in receiver.hits)
    share = {status: finals.count(status) / 300 for status in ("delivered", "undelivered", "failed")}
    assert share["delivered"] == pytest.approx(0.7, abs=0.08)
    assert share["undelivered"] == pytest.approx(0.2, abs=0.08)
    assert share["failed"] == pytest.approx(0.1, abs=0.06)
    # Same seed, same numbers, another carrier, another order: the same outcomes.
    again = await make_drill(sms_mix=mix, seed=12, callbacks=False)
    other = twilio_client(again, http_clients)
    for n in reversed(numbers):
        await other.messages.create_async(to=n, from_=FROM, body="x")
    first = {m.to: m.outcome for m in drill.carrier.messages}
    assert {m.to: m.outcome for m in again.carrier.messages} == first


async def _callbacks_of_one_sms(
    make_drill: DrillFactory, http_clients: list[AsyncTwilioHttpClient], receiver: Receiver, **config: Any
) -> tuple[Client, str, list[Hit]]:
    """One SMS sent through a drill carrier configured by ``config``: the client, the
    message's sid and its status callbacks once all have come."""
    drill = await make_drill(**config)
    client = twilio_client(drill, http_clients)
    message = await client.messages.create_async(
        to=TO, from_=FROM, body="x", status_callback=receiver.url("/s")
    )
    await drill.settle()
    return client, message.sid, receiver.about(message.sid)


async def test_callbacks_twice_and_out_of_order(
    make_drill: DrillFactory, http_clients: list[AsyncTwilioHttpClient], receiver: Receiver
) -> None:
    _, _, hits = await _callbacks_of_one_sms(
        make_drill, http_clients, receiver, duplicate_share=1.0, sms_overrides={TO: SmsOutcome.delivered}
    )
    assert [h.form["MessageStatus"] for h in hits] == ["queued", "sent", "delivered", "delivered"]
    assert hits[-1].headers["I-Twilio-Idempotency-Token"] == hits[-2].headers["I-Twilio-Idempotency-Token"]

    client, sid, hits = await _callbacks_of_one_sms(
        make_drill, http_clients, receiver, reorder_share=1.0, sms_overrides={TO: SmsOutcome.unreachable}
    )
    assert [h.form["MessageStatus"] for h in hits] == ["undelivered", "sent", "queued"]
    assert all(h.valid for h in hits)
    assert (await client.messages(sid).fetch_async()).status == "undelivered"


async def test_callback_failures_are_counted_not_fatal(
    make_drill: DrillFactory,
    http_clients: list[AsyncTwilioHttpClient],
    receiver: Receiver,
    unused_tcp_port: int,
) -> None:
    drill = await make_drill(sms_overrides={TO: SmsOutcome.delivered})
    client = twilio_client(drill, http_clients)
    receiver.answers["/broken"] = 500
    await client.messages.create_async(to=TO, from_=FROM, body="x", status_callback=receiver.url("/broken"))
    nobody = f"http://127.0.0.1:{unused_tcp_port}/nobody"
    await client.messages.create_async(to=TO, from_=FROM, body="x", status_callback=nobody)
    await drill.settle()
    assert (drill.carrier.stats.callbacks_failed, drill.carrier.stats.callbacks_posted) == (6, 0)
    ok = await client.messages.create_async(to=TO, from_=FROM, body="x", status_callback=receiver.url("/ok"))
    await drill.settle()
    assert [h.form["MessageStatus"] for h in receiver.about(ok.sid)] == ["queued", "sent", "delivered"]
    assert drill.carrier.stats.callbacks_posted == 3


# -- lists ------------------------------------------------------------------------------------


async def test_message_list_filters_and_paging(drill: Drill, twilio: Client) -> None:
    other = "+15551230002"
    for _ in range(5):
        await twilio.messages.create_async(to=TO, from_=FROM, body="a")
    for _ in range(3):
        await twilio.messages.create_async(to=other, from_="+15550000200", body="b")
    await drill.settle()
    await asyncio.sleep(0.05)  # every message past its "sent" time

    now = datetime.now(UTC)
    assert len(await twilio.messages.list_async(to=TO)) == 5
    assert {m.to for m in await twilio.messages.list_async(from_="+15550000200")} == {other}
    assert len(await twilio.messages.list_async(date_sent_after=now - timedelta(minutes=1))) == 8
    assert await twilio.messages.list_async(date_sent_after=now + timedelta(minutes=1)) == []
    assert await twilio.messages.list_async(date_sent_before=now - timedelta(minutes=1)) == []
    assert len(await twilio.messages.list_async(date_sent_before=now + timedelta(minutes=1))) == 8
    sent_at = (await twilio.messages.list_async(to=other, limit=1))[0].date_sent
    assert len(await twilio.messages.list_async(to=other, date_sent=sent_at)) == 3
    assert len(await twilio.messages.list_async(to=other, date_sent=sent_at.strftime("%Y-%m-%d"))) == 3
    assert await twilio.messages.list_async(date_sent=now - timedelta(days=2)) == []

    paged = await twilio.messages.list_async(to=TO, page_size=2)
    assert len(paged) == 5
    assert len({m.sid for m in paged}) == 5
    newest_first = [m.sid for m in drill.carrier.messages if m.to == TO][::-1]
    assert [m.sid for m in paged] == newest_first
    assert len(await twilio.messages.list_async(to=TO, limit=3, page_size=2)) == 3

    async with aiohttp.ClientSession(headers=auth_header()) as session:
        base = f"{drill.url}/2010-04-01/Accounts/{SID}/Messages.json"
        async with session.get(base, params={"To": TO, "PageSize": "2"}) as resp:
            page = await resp.json()
        assert (page["page"], page["page_size"], len(page["messages"])) == (0, 2, 2)
        assert page["next_page_uri"].startswith(f"/2010-04-01/Accounts/{SID}/Messages.json?To=%2B1555")
        async with session.get(f"{drill.url}{page['next_page_uri']}") as resp:
            second = await resp.json()
        assert second["page"] == 1
        assert [m["sid"] for m in second["messages"]] == newest_first[2:4]
        async with session.get(base, params={"To": TO, "PageSize": "2", "Page": "2"}) as resp:
            third = await resp.json()
        assert ([m["sid"] for m in third["messages"]], third["next_page_uri"]) == (newest_first[4:], None)
        async with session.get(base, params={"DateSent>": "yesterday"}) as resp:
            assert resp.status == 400


# -- voice ------------------------------------------------------------------------------------


def gather_twiml(action: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f'<Gather action="{action}" numDigits="1" timeout="10">'
        '<Say voice="Polly.Zhiyu" language="cmn-CN">停水通知。确认收到请按1。</Say></Gather>'
        "<Say>Goodbye.</Say></Response>"
    )


async def test_call_answered_by_a_person_who_presses_1(
    make_drill: DrillFactory, http_clients: list[AsyncTwilioHttpClient], receiver: Receiver
) -> None:
    drill = await make_drill(call_overrides={TO: CallOutcome.confirmed})
    client = twilio_client(drill, http_clients)
    call = await client.calls.create_async(
        to=TO,
        from_=FROM,
        twiml=gather_twiml(receiver.url("/gather?notice=N1&amp;household=H7")),
        status_callback=receiver.url("/call-status"),
        status_callback_event=ALL_EVENTS,
        machine_detection="Enable",
    )
    assert call.sid is not None
    assert call.sid.startswith("CA")
    assert len(call.sid) == 34
    assert (call.status, call.to, call._from, call.direction) == ("queued", TO, FROM, "outbound-api")
    await drill.settle()

    hits = receiver.about(call.sid)
    assert all(h.valid for h in hits), "status callbacks and the Gather action are signed"
    steps = [h.form["CallStatus"] if h.path == "/call-status" else "DIGITS" for h in hits]
    assert steps == ["initiated", "ringing", "in-progress", "DIGITS", "completed"]
    gather = hits[3]
    assert gather.url.endswith("/gather?notice=N1&household=H7")
    assert (gather.method, gather.form["Digits"], gather.form["CallSid"]) == ("POST", "1", call.sid)
    assert (gather.form["AccountSid"], gather.form["To"], gather.form["From"]) == (SID, TO, FROM)
    status_hits = [h for h in hits if h.path == "/call-status"]
    assert [h.form["SequenceNumber"] for h in status_hits] == ["0", "1", "2", "3"]
    assert all(h.form["Direction"] == "outbound-api" for h in status_hits)
    assert status_hits[2].form["AnsweredBy"] == "human"
    completed = status_hits[-1].form
    assert completed["AnsweredBy"] == "human"
    assert 15 <= int(completed["CallDuration"]) <= 60

    fetched = await client.calls(call.sid).fetch_async()
    assert (fetched.status, fetched.answered_by, fetched.duration) == (
        "completed",
        "human",
        completed["CallDuration"],
    )
    assert fetched.start_time is not None
    assert fetched.end_time is not None


CALL_CASES = [
    pytest.param(CallOutcome.human, "Enable", ["completed"], "human", id="human-no-digits"),
    pytest.param(CallOutcome.machine, "Enable", ["completed"], "machine_start", id="machine"),
    pytest.param(
        CallOutcome.machine, "DetectMessageEnd", ["completed"], "machine_end_beep", id="machine-beep"
    ),
    pytest.param(CallOutcome.human, None, ["completed"], None, id="no-amd"),
    pytest.param(CallOutcome.no_answer, "Enable", ["no-answer"], None, id="no-answer"),
    pytest.param(CallOutcome.busy, "Enable", ["busy"], None, id="busy"),
    pytest.param(CallOutcome.failed, "Enable", ["failed"], None, id="failed"),
]


@pytest.mark.parametrize(("outcome", "amd", "statuses", "answered_by"), CALL_CASES)
async def test_call_outcomes_post_only_the_final_status_by_default(
    make_drill: DrillFactory,
    http_clients: list[AsyncTwilioHttpClient],
    receiver: Receiver,
    outcome: CallOutcome,
    amd: str | None,
    statuses: list[str],
    answered_by: str | None,
) -> None:
    drill = await make_drill(call_overrides={TO: outcome})
    client = twilio_client(drill, http_clients)
    extra = {"machine_detection": amd} if amd else {}
    call = await client.calls.create_async(
        to=TO,
        from_=FROM,
        twiml=gather_twiml(receiver.url("/gather")),
        status_callback=receiver.url("/cs"),
        **extra,
    )
    await drill.settle()
    hits = receiver.about(call.sid)
    assert [h.form["CallStatus"] for h in hits] == statuses, "no Gather action without a key press"
    assert all(h.valid for h in hits)
    assert hits[-1].form.get("AnsweredBy") == answered_by
    fetched = await client.calls(call.sid).fetch_async()
    assert fetched.status == statuses[-1]


async def test_call_with_a_twiml_url_is_fetched_then_gathers(
    make_drill: DrillFactory, http_clients: list[AsyncTwilioHttpClient], receiver: Receiver
) -> None:
    drill = await make_drill(call_overrides={TO: CallOutcome.confirmed})
    client = twilio_client(drill, http_clients)
    receiver.twiml = gather_twiml("/gather?via=url")
    call = await client.calls.create_async(
        to=TO, from_=FROM, url=receiver.url("/twiml?notice=N2"), status_callback=receiver.url("/cs")
    )
    await drill.settle()
    hits = receiver.about(call.sid)
    assert [h.path for h in hits] == ["/twiml", "/gather", "/cs"]
    assert all(h.valid for h in hits)
    assert hits[0].form["CallStatus"] == "in-progress"
    assert hits[1].url == receiver.url("/gather?via=url")
    assert hits[1].form["Digits"] == "1"


async def test_call_refusals_and_list(drill: Drill, twilio: Client) -> None:
    cases = [
        ({"to": "0800", "from_": FROM, "twiml": "<Response/>"}, 21211),
        ({"to": TO, "from_": "nope", "twiml": "<Response/>"}, 21212),
        ({"to": TO, "from_": FROM}, 21205),
        ({"to": TO, "from_": FROM, "url": "not-a-url"}, 21205),
    ]
    for fields, code in cases:
        with pytest.raises(TwilioRestException) as caught:
            await twilio.calls.create_async(**fields)
        assert (caught.value.status, caught.value.code) == (400, code)
    assert len(drill.carrier.calls) == 0

    first = await twilio.calls.create_async(to=TO, from_=FROM, twiml="<Response/>")
    await twilio.calls.create_async(to="+15551230002", from_=FROM, twiml="<Response/>")
    await drill.settle()
    await asyncio.sleep(0.05)
    now = datetime.now(UTC)
    assert [c.sid for c in await twilio.calls.list_async(to=TO)] == [first.sid]
    assert len(await twilio.calls.list_async(start_time_after=now - timedelta(minutes=1))) == 2
    assert await twilio.calls.list_async(start_time_after=now + timedelta(minutes=1)) == []


# -- inbound SMS, inspection, lifecycle, speed ------------------------------------------------


async def test_inbound_sms_is_posted_signed(make_drill: DrillFactory, receiver: Receiver) -> None:
    drill = await make_drill(inbound_sms_url=receiver.url("/inbound"))
    result = await drill.carrier.inbound_sms(TO, FROM, "STOP")
    assert result.status == 200
    assert "<Message>You are unsubscribed.</Message>" in result.text
    hit = receiver.hits[-1]
    assert hit.valid
    assert (hit.form["From"], hit.form["To"], hit.form["Body"], hit.form["SmsStatus"]) == (
        TO,
        FROM,
        "STOP",
        "received",
    )
    assert hit.form["MessageSid"] == result.sid
    assert hit.form["AccountSid"] == SID

    async with aiohttp.ClientSession(headers=auth_header()) as session:
        payload = {"from": TO, "to": FROM, "body": "START"}
        async with session.post(f"{drill.url}/_drill/inbound", json=payload) as resp:
            assert resp.status == 200
            answer = await resp.json()
        assert answer["status"] == 200
        assert receiver.hits[-1].form["Body"] == "START"
        assert receiver.hits[-1].valid
        async with session.post(f"{drill.url}/_drill/inbound", json={"from": TO}) as resp:
            assert resp.status == 400


async def test_inspection_api(make_drill: DrillFactory, http_clients: list[AsyncTwilioHttpClient]) -> None:
    drill = await make_drill(sms_overrides={TO: SmsOutcome.filtered}, callbacks=False)
    client = twilio_client(drill, http_clients)
    sent = await client.messages.create_async(to=TO, from_=FROM, body="x")
    await client.calls.create_async(to=TO, from_=FROM, twiml=gather_twiml("https://svc.example/g"))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{drill.url}/_drill/messages") as resp:
            assert resp.status == 401
        async with session.get(f"{drill.url}/_drill/messages", headers=auth_header()) as resp:
            messages = (await resp.json())["messages"]
        assert [(m["sid"], m["outcome"]) for m in messages] == [(sent.sid, "filtered")]
        async with session.get(f"{drill.url}/_drill/calls", headers=auth_header()) as resp:
            calls = (await resp.json())["calls"]
        assert calls[0]["gather_action"] == "https://svc.example/g"
        async with session.get(f"{drill.url}/_drill/stats", headers=auth_header()) as resp:
            stats = await resp.json()
        assert (stats["messages"], stats["calls"], stats["callbacks_pending"]) == (1, 1, 0)
        async with session.get(f"{drill.url}/_drill/idle?timeout=1", headers=auth_header()) as resp:
            assert (await resp.json())["idle"] is True


async def test_shutdown_cancels_pending_callbacks(
    receiver: Receiver, http_clients: list[AsyncTwilioHttpClient]
) -> None:
    config = DrillConfig(account_sid=SID, auth_token=TOKEN, latency_ms=(30_000, 30_000))
    started = time.monotonic()
    async with serve_drill(config) as server:
        http = AsyncTwilioHttpClient()
        http_clients.append(http)
        client = Client(SID, TOKEN, http_client=http)
        client.api.base_url = server.url
        await client.messages.create_async(to=TO, from_=FROM, body="x", status_callback=receiver.url("/s"))
        assert server.carrier.callbacks_pending == 1
    assert time.monotonic() - started < 5
    assert receiver.hits == []


async def test_takes_thousands_of_creates_per_second(make_drill: DrillFactory) -> None:
    drill = await make_drill(callbacks=False)
    url = f"{drill.url}/2010-04-01/Accounts/{SID}/Messages.json"
    total, concurrency = 3000, 50
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=auth_header()) as session:

        async def sender(worker: int) -> None:
            for i in range(worker, total, concurrency):
                data = {"To": f"+1555600{i:04d}", "From": FROM, "Body": "Water off on Elm St until 14:00."}
                async with session.post(url, data=data) as resp:
                    assert resp.status == 201
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(sender(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    assert len(drill.carrier.messages) == total
    # Client and server share one process and one core here; the server alone is faster.
    rate = total / elapsed
    print(f"drill carrier: {rate:.0f} creates/s (client in the same loop)")
    assert rate > 500
