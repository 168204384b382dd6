"""Carrier webhooks on the real app and store: signed status callbacks, Gather, inbound SMS.

Requests are signed as Twilio signs them (or by the drill carrier, which does the same).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]

from incident.api.hooks import ENDPOINTS
from incident.api.webhooks import Keyword, parse_keyword, public_url
from incident.app import create_app
from incident.carriersim.server import DrillConfig, SmsOutcome, serve_drill
from incident.core.clock import ManualClock, isoformat
from incident.deliveries.records import Delivery, DeliveryChange, Notice
from incident.deliveries.states import DeliveryState
from incident.keys import ENDPOINTS as ENDPOINT_TABLE
from incident.keys import METRICS, STORE
from incident.settings import AreaSettings, Settings
from incident.store import Store
from incident.store.ports import PutNotice
from tests.support.app import Api, Client, serve
from tests.support.env import Tokens

S = DeliveryState
TOKEN = "hooks-test-auth-token"
STATUS, GATHER, INBOUND = "/hooks/twilio/status", "/hooks/twilio/gather", "/hooks/twilio/inbound"
OUR_NUMBER = "+15025550000"
HOUSEHOLDS = """account_id,lon,lat,address,language,sms,voice,app_token,priority,opt_out
H-1,-85.54,38.02,1 Elm St,en,+15025550101,+15025550201,,,
H-2,-85.54,38.02,2 Elm St,zh-CN,+15025550102,+15025550202,,,
H-3,-85.54,38.02,3 Elm St,en,+15025550103,+15025550203,,,voice
H-4,-85.54,38.02,4 Elm St,en,+15025550104,,,,
"""
SMS = {"H-1": "+15025550101", "H-2": "+15025550102", "H-3": "+15025550103", "H-4": "+15025550104"}
VOICE = {"H-1": "+15025550201", "H-2": "+15025550202"}
LANGUAGE = {"H-1": "en", "H-2": "zh-CN", "H-3": "en", "H-4": "en"}


@pytest.fixture
def households(tmp_path: Path) -> Path:
    path = tmp_path / "households.csv"
    path.write_text(HOUSEHOLDS, encoding="utf-8")
    return path


@pytest.fixture
async def hooks(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    settings: Settings,
    clock: ManualClock,
    households: Path,
) -> Client:
    """The real app (its webhook routes and options come from create_app and the settings)."""
    settings = msgspec.structs.replace(
        settings,
        twilio=msgspec.structs.replace(settings.twilio, auth_token=TOKEN),
        area=AreaSettings(households=str(households), layers="", network="", valves=""),
        notify=msgspec.structs.replace(settings.notify, voice_retries=2, voice_retry_minutes=10.0),
    )
    app = create_app(settings, clock=clock)
    assert {e.path for e in ENDPOINTS} <= {e.path for e in app[ENDPOINT_TABLE].values()}
    return await aiohttp_client(app)


@pytest.fixture
def hapi(hooks: Client, tokens: Tokens) -> Api:
    return Api(hooks, tokens)


def sign(url: str, params: dict[str, str], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


async def post(
    client: Client, path: str, params: dict[str, str], *, signature: str | None = None, **headers: str
) -> tuple[int, str]:
    url = str(client.make_url(path))
    sig = sign(url, params) if signature is None else signature
    async with client.post(path, data=params, headers={"X-Twilio-Signature": sig, **headers}) as resp:
        return resp.status, await resp.text()


def sms_status(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    params = {"AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "From": OUR_NUMBER,
              "MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status,
              "To": "+15025550101"}  # fmt: skip
    if error_code:
        params["ErrorCode"] = error_code
    return params


def call_status(sid: str, status: str) -> dict[str, str]:
    return {"AccountSid": "AC" + "0" * 32, "CallSid": sid, "CallStatus": status, "Called": "+15025550201",
            "Caller": OUR_NUMBER, "Direction": "outbound-api", "SequenceNumber": "3"}  # fmt: skip


class World:
    """Deliveries of one notice of a real incident, created through the real store."""

    def __init__(self, store: Store, incident_id: str, clock: ManualClock) -> None:
        self.store = store
        self.incident_id = incident_id
        self.clock = clock
        self.notice_id = f"{incident_id}-N1"
        self.seq = 0

    @classmethod
    async def make(cls, hapi: Api, clock: ManualClock) -> World:
        incident = await hapi.declare()
        store: Store = hapi.client.app[STORE]
        world = cls(store, incident["id"], clock)
        notice = Notice(notice_id=world.notice_id, incident_id=world.incident_id, template="main_break",
                        channels=["sms", "voice"], status="approved", created_by="alice",
                        created_at=isoformat(clock.now()))  # fmt: skip
        await store.apply_plan([PutNotice(notice)])
        return world

    @property
    def at(self) -> str:
        return isoformat(self.clock.now())

    async def delivery(
        self, account: str, channel: str = "sms", sid: str | None = None, address: str | None = None
    ) -> Delivery:
        """A delivery handed to the carrier (state accepted, ``sid``), or planned without one."""
        self.seq += 1
        address = address or (SMS[account] if channel == "sms" else VOICE[account])
        d = Delivery(delivery_id=f"{self.notice_id}:{self.seq}", notice_id=self.notice_id,
                     incident_id=self.incident_id, seq=self.seq, channel=channel, address=address,
                     account_id=account, language=LANGUAGE[account], priority_rank=3, state=S.planned,
                     updated_at=self.at)  # fmt: skip
        assert await self.store.add_deliveries([d]) == 1
        return await self.send(d, sid) if sid else d

    async def send(self, d: Delivery, sid: str) -> Delivery:
        """What a sender does: take it (counting the try), then record the carrier's SID."""
        taken = await self.store.change_delivery(
            DeliveryChange(delivery_id=d.delivery_id, expect=frozenset({S.planned, S.retry}), to=S.sending,
                           count_attempt=True), self.at)  # fmt: skip
        assert taken is not None
        accepted = await self.store.change_delivery(
            DeliveryChange(delivery_id=d.delivery_id, expect=frozenset({S.sending}), to=S.accepted,
                           carrier_sid=sid), self.at)  # fmt: skip
        assert accepted is not None
        return accepted

    async def get(self, delivery_id: str) -> Delivery:
        found = await self.store.get_delivery(delivery_id)
        assert found is not None
        return found

    async def all(self) -> list[Delivery]:
        return await self.store.list_deliveries(self.incident_id, "", 1000)


def counted(client: Client, hook: str, outcome: str) -> float:
    value = client.app[METRICS].registry.get_sample_value(
        "incident_twilio_webhooks_total", {"hook": hook, "outcome": outcome}
    )
    return value or 0.0


# --- signatures ------------------------------------------------------------------------------------


async def test_a_bad_or_missing_signature_gets_403_and_changes_nothing(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    d = await world.delivery("H-1", sid="SM" + "1" * 32)
    events = await world.store.delivery_events(d.delivery_id)
    params = sms_status("SM" + "1" * 32, "undelivered", "30006")
    url = str(hooks.make_url(STATUS))
    tampered = {**params, "ErrorCode": "30007"}  # signed one value, posted another
    added = {**params, "Extra": "field"}  # a field the signature does not cover
    for path, form, sig in [
        (STATUS, params, sign(url, params, token="not-our-token")),
        (STATUS, params, ""),
        (STATUS, tampered, sign(url, params)),
        (STATUS, added, sign(url, params)),
        (STATUS, params, sign(url + "?x=1", params)),
        (GATHER, {"CallSid": "CA1", "Digits": "1"}, "forged"),
        (INBOUND, {"From": SMS["H-1"], "To": OUR_NUMBER, "Body": "STOP"}, "forged"),
    ]:
        status, text = await post(hooks, path, form, signature=sig)
        assert status == 403, (path, text)
        assert json.loads(text)["error"]["code"] == "bad_signature"
    assert await world.get(d.delivery_id) == d
    assert await world.store.delivery_events(d.delivery_id) == events
    assert len(await world.all()) == 1  # no fallback call either
    assert await world.store.opt_out_state(SMS["H-1"], "sms") is None
    assert counted(hooks, "status", "forbidden") == 5


async def test_the_public_url_behind_a_proxy_or_from_settings() -> None:
    request = make_mocked_request(
        "POST", "/hooks/twilio/status?a=1",
        headers={"Host": "10.0.0.5:8080", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.org"},
    )  # fmt: skip
    assert public_url(request, "") == "https://hooks.example.org/hooks/twilio/status?a=1"
    assert public_url(request, "https://ic.example.org/water/") == (
        "https://ic.example.org/water/hooks/twilio/status?a=1"
    )
    plain = make_mocked_request("POST", "/hooks/twilio/status", headers={"Host": "10.0.0.5:8080"})
    assert public_url(plain, "") == "http://10.0.0.5:8080/hooks/twilio/status"


async def test_a_callback_signed_for_the_forwarded_public_url_is_accepted(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    d = await world.delivery("H-1", sid="SM" + "2" * 32)
    params = sms_status("SM" + "2" * 32, "delivered")
    public = "https://hooks.example.org/hooks/twilio/status"
    status, _ = await post(hooks, STATUS, params, signature=sign(public, params),
                           **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.org"})  # fmt: skip
    assert status == 200
    assert (await world.get(d.delivery_id)).state == S.delivered


# --- status callbacks --------------------------------------------------------------------------


async def test_replayed_and_out_of_order_callbacks_never_move_a_delivery_back(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    sid = "SM" + "3" * 32
    d = await world.delivery("H-1", sid=sid)
    status, text = await post(hooks, STATUS, sms_status(sid, "delivered"))
    assert (status, json.loads(text)) == (200, {"outcome": "applied"})
    after_first = await world.get(d.delivery_id)
    events = await world.store.delivery_events(d.delivery_id)
    assert after_first.state == S.delivered and [e[1] for e in events] == ["sending", "accepted", "delivered"]

    for late in ("delivered", "sent", "queued"):  # a replay, then the earlier ones arriving late
        status, text = await post(hooks, STATUS, sms_status(sid, late))
        assert (status, json.loads(text)) == (200, {"outcome": "stale"})
    assert await world.get(d.delivery_id) == after_first
    assert await world.store.delivery_events(d.delivery_id) == events


async def test_concurrent_callbacks_settle_on_the_furthest_state(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    ds = [await world.delivery("H-1", sid=f"SM{i:032d}", address=f"+1502555090{i}") for i in range(6)]
    # Both read "accepted"; only the compare-and-set keeps "sent" from landing after "delivered".
    await asyncio.gather(*(post(hooks, STATUS, sms_status(f"SM{i:032d}", s))
                           for i in range(6) for s in ("sent", "delivered", "queued")))  # fmt: skip
    for d in ds:
        assert (await world.get(d.delivery_id)).state == S.delivered


async def test_an_unknown_sid_is_answered_200_and_counted(hooks: Client, hapi: Api) -> None:
    before = counted(hooks, "status", "unknown_sid")
    status, text = await post(hooks, STATUS, sms_status("SM" + "f" * 32, "delivered"))
    assert (status, json.loads(text)) == (200, {"outcome": "unknown_sid"})
    status, _ = await post(hooks, STATUS, call_status("CA" + "f" * 32, "completed"))
    assert status == 200
    assert counted(hooks, "status", "unknown_sid") == before + 2


async def test_a_callback_before_the_answer_is_recorded_finds_its_delivery_by_the_signed_url(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    d = await world.delivery("H-1")
    taken = await world.store.change_delivery(
        DeliveryChange(delivery_id=d.delivery_id, expect=frozenset({S.planned}), to=S.sending,
                       count_attempt=True), world.at)  # fmt: skip
    assert taken is not None
    sid = "SM" + "7" * 32
    path = f"{STATUS}?{urlencode({'d': d.delivery_id})}"  # what the sender gives as StatusCallback
    status, text = await post(hooks, path, sms_status(sid, "delivered"))
    assert (status, json.loads(text)["outcome"]) == (200, "applied")
    got = await world.get(d.delivery_id)
    assert (got.state, got.carrier_sid) == (S.delivered, sid)
    # The sender's late answer changes nothing: the delivery moved on.
    late = DeliveryChange(
        delivery_id=d.delivery_id, expect=frozenset({S.sending}), to=S.accepted, carrier_sid=sid
    )
    assert await world.store.change_delivery(late, world.at) is None
    # A delivery that has its SID is never taken over by a callback about another message.
    other = await world.delivery("H-2", sid="SM" + "8" * 32)
    path = f"{STATUS}?{urlencode({'d': other.delivery_id})}"
    status, text = await post(hooks, path, sms_status("SM" + "9" * 32, "undelivered", "30006"))
    assert json.loads(text)["outcome"] == "unknown_sid"
    assert await world.get(other.delivery_id) == other


async def test_a_callback_for_a_call_tried_again_finds_its_delivery_before_the_new_sid_is_recorded(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    d = await world.delivery("H-1", channel="voice", sid="CA" + "1" * 32)  # the first try's call
    again = DeliveryChange(delivery_id=d.delivery_id, expect=frozenset({S.accepted}), to=S.sending,
                           count_attempt=True)  # fmt: skip
    assert await world.store.change_delivery(again, world.at) is not None  # the second try, in flight
    new_sid = "CA" + "2" * 32
    status, text = await post(
        hooks, f"{STATUS}?{urlencode({'d': d.delivery_id})}", call_status(new_sid, "completed")
    )
    assert (status, json.loads(text)["outcome"]) == (200, "applied")
    got = await world.get(d.delivery_id)
    assert (got.state, got.carrier_sid) == (S.completed, new_sid)


async def test_a_landline_sms_falls_back_to_one_voice_call_through_the_drill_carrier(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    sms = await world.delivery("H-1")
    config = DrillConfig(auth_token=TOKEN, latency_ms=(400, 400),
                         sms_overrides={SMS["H-1"]: SmsOutcome.landline})  # fmt: skip
    form = {
        "To": SMS["H-1"],
        "From": OUR_NUMBER,
        "Body": "Main break",
        "StatusCallback": str(hooks.make_url(STATUS)),
    }
    basic = base64.b64encode(f"{config.account_sid}:{TOKEN}".encode()).decode()
    async with serve_drill(config) as drill, hooks.session.post(
        f"{drill.url}/2010-04-01/Accounts/{config.account_sid}/Messages.json",
        data=form, headers={"Authorization": f"Basic {basic}"},
    ) as resp:  # fmt: skip
        assert resp.status == 201
        sid = (await resp.json())["sid"]
        await world.send(sms, sid)
        await drill.carrier.wait_idle()
        assert drill.carrier.stats.callbacks_failed == 0
    got = await world.get(sms.delivery_id)
    assert (got.state, got.error_code) == (S.undelivered, "30006")
    voice = [d for d in await world.all() if d.channel == "voice"]
    assert len(voice) == 1
    call = voice[0]
    assert (call.delivery_id, call.fallback_of, call.address, call.state) == (
        f"{sms.delivery_id}:voice", sms.delivery_id, VOICE["H-1"], S.planned)  # fmt: skip
    assert (call.notice_id, call.account_id, call.language, call.priority_rank) == (
        sms.notice_id, "H-1", "en", sms.priority_rank)  # fmt: skip

    # Twilio posts the final status again: still one call.
    status, _ = await post(hooks, STATUS, sms_status(sid, "undelivered", "30006"))
    assert status == 200
    assert [d.delivery_id for d in await world.all() if d.channel == "voice"] == [call.delivery_id]


@pytest.mark.parametrize(
    ("account", "status", "code", "falls_back"),
    [
        ("H-2", "undelivered", "30003", True),
        ("H-2", "failed", "21614", True),
        ("H-2", "undelivered", "30007", False),  # filtered by the carrier: a call would not help
        ("H-3", "undelivered", "30006", False),  # opted out of voice in the households file
        ("H-4", "undelivered", "30006", False),  # no voice number
    ],
)
async def test_which_failed_sms_fall_back_to_voice(
    hooks: Client, hapi: Api, clock: ManualClock, account: str, status: str, code: str, falls_back: bool
) -> None:
    world = await World.make(hapi, clock)
    sid = "SM" + "4" * 32
    sms = await world.delivery(account, sid=sid)
    answer, _ = await post(hooks, STATUS, sms_status(sid, status, code))
    assert answer == 200
    got = await world.get(sms.delivery_id)
    assert (got.state, got.error_code) == (S(status), code)
    voice = [d for d in await world.all() if d.channel == "voice"]
    assert len(voice) == (1 if falls_back else 0)
    if falls_back:
        assert voice[0].language == LANGUAGE[account] and voice[0].address == VOICE[account]


async def test_a_voice_number_opted_out_by_reply_gets_no_fallback_call(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    await world.store.set_opt_out(VOICE["H-1"], "voice", True, world.at)
    sid = "SM" + "5" * 32
    await world.delivery("H-1", sid=sid)
    assert (await post(hooks, STATUS, sms_status(sid, "undelivered", "30006")))[0] == 200
    assert [d for d in await world.all() if d.channel == "voice"] == []


async def test_an_unanswered_call_is_tried_again_until_the_limit(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    call = await world.delivery("H-1", "voice", sid="CA" + "0" * 32)
    for attempt, final in ((1, "no-answer"), (2, "busy")):
        _, text = await post(hooks, STATUS, call_status(f"CA{attempt - 1:032d}", final))
        assert json.loads(text) == {"outcome": "retry"}, attempt
        got = await world.get(call.delivery_id)
        assert (got.state, got.attempts) == (S.retry, attempt)
        assert got.next_attempt_at == isoformat(clock.now() + timedelta(minutes=10))
        # A replay of this try's final status while the retry waits changes nothing.
        assert json.loads((await post(hooks, STATUS, call_status(f"CA{attempt - 1:032d}", final)))[1]) == {
            "outcome": "stale"
        }
        assert await world.get(call.delivery_id) == got
        await world.send(got, f"CA{attempt:032d}")
    _, text = await post(hooks, STATUS, call_status(f"CA{2:032d}", "no-answer"))
    assert json.loads(text) == {"outcome": "applied"}
    got = await world.get(call.delivery_id)
    assert (got.state, got.attempts) == (S.no_answer, 3)  # 1 try + 2 retries


async def test_pressing_1_confirms_the_call_and_thanks_in_the_household_language(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    en = await world.delivery("H-1", "voice", sid="CA" + "e" * 32)
    zh = await world.delivery("H-2", "voice", sid="CA" + "c" * 32)
    for d in (en, zh):
        assert (await post(hooks, STATUS, call_status(d.carrier_sid or "", "in-progress")))[0] == 200

    status, text = await post(hooks, GATHER, {"CallSid": "CA" + "e" * 32, "Digits": "2"})
    assert status == 200 and "<Say" not in text
    assert (await world.get(en.delivery_id)).state == S.answered

    async with hooks.post(GATHER, data={"CallSid": "CA" + "e" * 32, "Digits": "1"}, headers={
        "X-Twilio-Signature": sign(str(hooks.make_url(GATHER)), {"CallSid": "CA" + "e" * 32, "Digits": "1"})
    }) as resp:  # fmt: skip
        assert resp.status == 200 and resp.content_type == "application/xml"
        assert "Thank you." in await resp.text()
    status, text = await post(hooks, GATHER, {"CallSid": "CA" + "c" * 32, "Digits": "1"})
    assert "谢谢，已确认。" in text and 'voice="Polly.Zhiyu"' in text and 'language="cmn-CN"' in text  # noqa: RUF001
    for d in (en, zh):
        assert (await world.get(d.delivery_id)).state == S.confirmed
        # The call's final "completed" comes after the digits: it stays confirmed.
        assert (await post(hooks, STATUS, call_status(d.carrier_sid or "", "completed")))[0] == 200
        assert (await world.get(d.delivery_id)).state == S.confirmed


# --- inbound SMS -------------------------------------------------------------------------------


async def inbound(hooks: Client, sender: str, body: str) -> tuple[int, str]:
    """An inbound SMS posted and signed by the drill carrier, as Twilio posts it."""
    async with serve_drill(DrillConfig(auth_token=TOKEN)) as drill:
        result = await drill.carrier.inbound_sms(sender, OUR_NUMBER, body, str(hooks.make_url(INBOUND)))
    return result.status, result.text


@pytest.mark.parametrize(
    ("account", "stop", "start", "said"),
    [
        ("H-1", "STOP", "START", ("unsubscribed", "subscribed again")),
        ("H-1", "  stop ", "unstop", ("unsubscribed", "subscribed again")),
        ("H-2", "退订", "订阅", ("您已退订", "您已重新订阅")),
    ],
)
async def test_stop_and_start_by_reply(
    hooks: Client, hapi: Api, clock: ManualClock, account: str, stop: str, start: str, said: tuple[str, str]
) -> None:
    world = await World.make(hapi, clock)
    await world.delivery(account, sid="SM" + "6" * 32)
    number = SMS[account]
    status, text = await inbound(hooks, number, stop)
    assert status == 200 and "<Message>" in text and said[0] in text
    assert await world.store.opt_out_state(number, "sms") is True
    assert number in await world.store.opted_out_addresses("sms")
    clock.advance(timedelta(seconds=5))
    status, text = await inbound(hooks, number, start)
    assert status == 200 and said[1] in text
    assert await world.store.opt_out_state(number, "sms") is False
    assert number not in await world.store.opted_out_addresses("sms")
    timeline = await world.store.timeline(world.incident_id)
    assert [e for e in timeline if e.type == "household_reply"] == []  # keywords are not reports


async def test_help_answers_with_help_text(hooks: Client, hapi: Api, clock: ManualClock) -> None:
    world = await World.make(hapi, clock)
    await world.delivery("H-2", sid="SM" + "7" * 32)
    status, text = await inbound(hooks, SMS["H-2"], "帮助")
    assert status == 200 and "回复“退订”取消" in text
    status, text = await inbound(hooks, SMS["H-1"], "help")  # unknown sender: English
    assert status == 200 and "Reply STOP to unsubscribe" in text
    assert await world.store.opt_out_state(SMS["H-2"], "sms") is None


async def test_other_replies_are_reports_on_the_timeline_without_the_number(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    sms = await world.delivery("H-1", sid="SM" + "8" * 32)
    for body in ("YES water is back", "yes", "x" * 1200):
        status, text = await inbound(hooks, SMS["H-1"], body)
        assert status == 200 and "Thank you" in text, body
    assert await world.store.opt_out_state(SMS["H-1"], "sms") is None  # YES is not START
    status, timeline = await hapi.call("GET", f"/api/incidents/{world.incident_id}/timeline")
    assert status == 200
    replies = [e for e in timeline["events"] if e["type"] == "household_reply"]
    assert [r["data"]["text"] for r in replies] == ["YES water is back", "yes", "x" * 1000]
    for r in replies:
        assert r["data"]["account_id"] == "H-1" and r["data"]["channel"] == "sms"
        assert r["data"]["notice_id"] == sms.notice_id
    dumped = json.dumps(timeline)
    assert SMS["H-1"] not in dumped and SMS["H-1"][1:] not in dumped
    assert counted(hooks, "inbound", "reply") == 3


async def test_a_reply_from_an_unknown_number_is_counted_and_recorded_nowhere(
    hooks: Client, hapi: Api, clock: ManualClock
) -> None:
    world = await World.make(hapi, clock)
    status, text = await inbound(hooks, "+15025559999", "no water here")
    assert status == 200 and "<Message>" not in text
    assert counted(hooks, "inbound", "unknown_sender") == 1
    assert [e for e in await world.store.timeline(world.incident_id) if e.type == "household_reply"] == []


async def test_keyword_parsing_edge_cases() -> None:
    assert parse_keyword("\uff33\uff34\uff2f\uff30\uff01") is Keyword.opt_out  # full-width "STOP!"
    assert parse_keyword("Stop.") is Keyword.opt_out
    assert parse_keyword("YES") is None
    assert parse_keyword("stop the leak") is None
    assert parse_keyword("info") is Keyword.help


async def test_a_replayed_inbound_sms_changes_nothing(hooks: Client, hapi: Api, clock: ManualClock) -> None:
    """The same MessageSid again (Twilio retrying, a resend): no second report on the
    timeline, no second opt-out change (a STOP replayed after START must not opt out again),
    and no second reply SMS."""
    from incident.carriersim.wire import inbound_sms_params

    world = await World.make(hapi, clock)
    await world.delivery("H-1", sid="SM" + "9" * 32)

    def sms(sid: str, body: str) -> dict[str, str]:
        return inbound_sms_params("AC" + "0" * 32, sid, SMS["H-1"], OUR_NUMBER, body, 1)

    reply, stop, start = ("SM" + c * 32 for c in "abc")
    for _ in range(2):
        status, text = await post(hooks, INBOUND, sms(reply, "no water on Elm St"))
        assert status == 200
    assert "Thank you" not in text  # the replay is not thanked again
    stopped = await post(hooks, INBOUND, sms(stop, "STOP"))
    assert "unsubscribed" in stopped[1]
    clock.advance(timedelta(seconds=5))
    await post(hooks, INBOUND, sms(start, "START"))
    clock.advance(timedelta(seconds=5))
    status, text = await post(hooks, INBOUND, sms(stop, "STOP"))  # the old STOP, replayed
    assert status == 200 and "<Message>" not in text
    assert await world.store.opt_out_state(SMS["H-1"], "sms") is False
    timeline = await world.store.timeline(world.incident_id)
    assert [e.data["message_sid"] for e in timeline if e.type == "household_reply"] == [reply]
    assert counted(hooks, "inbound", "replay") == 2


# --- final statuses whose callbacks never came -------------------------------------------------


@pytest.fixture
async def looked_up(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    settings: Settings,
    clock: ManualClock,
    households: Path,
) -> AsyncIterator[tuple[Client, DrillConfig]]:
    """The real app on a manual clock, its carrier a drill carrier that posts no callbacks
    (they were lost while the service was down) and whose messages end at once."""
    from incident.carriersim.config import CallOutcome
    from incident.settings import CarrierSettings

    config = DrillConfig(
        auth_token=TOKEN, callbacks=False, latency_ms=(0, 0),
        sms_overrides={SMS["H-1"]: SmsOutcome.delivered, SMS["H-2"]: SmsOutcome.unreachable},
        call_overrides={VOICE["H-1"]: CallOutcome.no_answer},
    )  # fmt: skip
    async with serve_drill(config) as drill:
        twilio = msgspec.structs.replace(settings.twilio, auth_token=TOKEN, account_sid=config.account_sid,
                                         from_number=OUR_NUMBER, api_base_url=drill.url)  # fmt: skip
        settings = msgspec.structs.replace(
            settings, twilio=twilio, carrier=CarrierSettings(mode="twilio"),
            area=AreaSettings(households=str(households), layers="", network="", valves=""),
        )  # fmt: skip
        yield await serve(aiohttp_client, settings, clock=clock), config


async def test_overdue_final_statuses_are_looked_up_and_settled_as_their_callbacks_would(
    looked_up: tuple[Client, DrillConfig], tokens: Tokens, clock: ManualClock
) -> None:
    from incident.keys import NOTIFY, SETTINGS

    client, _ = looked_up
    hapi = Api(client, tokens)
    world = await World.make(hapi, clock)
    runtime = client.app[NOTIFY]

    async def handed_over(account: str, channel: str) -> Delivery:
        d = await world.delivery(account, channel)
        callback = str(client.make_url(STATUS))
        if channel == "sms":
            accepted = await runtime.carrier.send_sms(d.address, OUR_NUMBER, "Boil water", callback)
        else:
            accepted = await runtime.carrier.call(d.address, OUR_NUMBER, "<Response/>", callback)
        return await world.send(d, accepted.sid)

    delivered, unreachable, unanswered = (
        await handed_over("H-1", "sms"), await handed_over("H-2", "sms"), await handed_over("H-1", "voice")
    )  # fmt: skip
    forgotten = await world.delivery("H-3", sid="SM" + "f" * 32)  # a SID the carrier does not know
    assert await runtime.engine.settle_overdue() == 0  # not overdue yet: callbacks may still come
    clock.advance(timedelta(seconds=client.app[SETTINGS].notify.finality_after_s + 1))

    assert await runtime.engine.settle_overdue() == 3
    got = await world.get(forgotten.delivery_id)  # kept, looked at again later, not first in line
    assert (got.state, got.updated_at) == (S.accepted, world.at)
    assert (await world.store.delivery_events(got.delivery_id))[-1][2] == "look-up failed: 20404"
    assert (await world.get(delivered.delivery_id)).state == S.delivered
    got = await world.get(unreachable.delivery_id)
    assert (got.state, got.error_code) == (S.undelivered, "30003")
    got = await world.get(unanswered.delivery_id)  # not answered: tried again, as on its callback
    assert (got.state, got.next_attempt_at) == (S.retry, isoformat(clock.now() + timedelta(minutes=10)))
    fallback = [d for d in await world.all() if d.fallback_of == unreachable.delivery_id]
    assert [(d.channel, d.address, d.state) for d in fallback] == [("voice", VOICE["H-2"], S.planned)]
    assert counted(client, "lookup", "applied") == 2 and counted(client, "lookup", "fallback") == 1

    clock.advance(timedelta(seconds=client.app[SETTINGS].notify.finality_after_s + 1))
    assert await runtime.engine.settle_overdue() == 0  # all final (or waiting to be sent): nothing to ask
    assert len([d for d in await world.all() if d.fallback_of]) == 1  # one fallback call, not two
