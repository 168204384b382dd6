"""Self-enrolment on the real app and store: the code reaches the drill carrier (a
Twilio-compatible server), every abuse case is refused, a confirmed household is in the
registry and reached by a notice, its signed link changes or removes it, STOP is honoured."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from incident.api.enrolments import LINK_WRITES
from incident.core.clock import ManualClock
from incident.intake.households import VERSION_KEY
from incident.keys import METRICS, NOTIFY, SERVICE_AREA, STORE
from incident.store import Store
from tests.support.app import Api, Apps
from tests.support.env import FROM_NUMBER
from tests.support.smtp import Received, SmtpServer, smtp_server
from tests.support.wait import wait_until

ENROL = "/public/api/enrolments"
PHONE = "+15025550177"
INSIDE = {"lon": -85.545, "lat": 38.035}
SIGN_UP = {"address": "12 Elm St, Sampletown", **INSIDE, "language": "en", "sms": PHONE, "channels": ["sms"]}

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)


def codes_to(api: Api, number: str) -> list[str]:
    drill = api.client.app[NOTIFY].drill
    assert drill is not None
    return [re.findall(r"\d{6}", m.body)[0] for m in drill.carrier.messages if m.to == number]


def messages_to(api: Api, number: str) -> list[str]:
    drill = api.client.app[NOTIFY].drill
    assert drill is not None
    return [m.body for m in drill.carrier.messages if m.to == number]


async def enrol(api: Api, ip: str = "203.0.113.7", **fields: Any) -> tuple[int, Any]:
    body = {**SIGN_UP, **fields}
    headers = {"X-Forwarded-For": ip}
    async with api.client.post(ENROL, json=body, headers=headers) as resp:
        answer = await resp.json()
        if resp.status == 429:
            answer["retry_after"] = resp.headers["Retry-After"]
        return resp.status, answer


async def confirm(api: Api, enrolment_id: str, code: str) -> tuple[int, Any]:
    return await api.call("POST", f"{ENROL}/{enrolment_id}/confirm", None, json={"code": code})


async def sign_up(api: Api, **fields: Any) -> dict[str, Any]:
    """Enrol and confirm with the code the carrier got; the confirmation."""
    status, started = await enrol(api, **fields)
    assert status == 202, started
    number = fields.get("sms", PHONE)
    code = (await wait_until(lambda: _codes(api, number), "the code"))[-1]
    status, done = await confirm(api, started["enrolment_id"], code)
    assert status == 200, done
    return dict(done)


async def _codes(api: Api, number: str) -> list[str]:
    return codes_to(api, number)


@pytest.fixture
async def api(apps: Apps) -> Api:
    # Behind one proxy, so that tests choose their client address; the area reloads quickly.
    return await apps.make(
        INCIDENT_PUBLIC__TRUSTED_PROXIES='["127.0.0.1", "::1"]', INCIDENT_AREA__RELOAD_S="0.1",
        INCIDENT_ENROLMENT__ALLOWED_REGIONS='["US"]',
    )  # fmt: skip


async def test_the_code_goes_by_sms_and_nothing_else_before_confirmation(api: Api) -> None:
    status, started = await enrol(api, language="zh-CN")
    assert status == 202
    assert set(started) == {"enrolment_id", "sent_to", "expires_at"} and started["sent_to"] == "sms"
    texts = messages_to(api, PHONE)
    assert len(texts) == 1 and "验证码" in texts[0] and "Sampletown Water" in texts[0]
    store: Store = api.client.app[STORE]
    assert not [h async for h in _self_households(store)]  # not in the registry before the code


async def _self_households(store: Store) -> Any:
    for h in await store.households_page("self-", 100):
        if h.account_id.startswith("self-"):
            yield h


async def test_confirmed_household_is_in_the_registry_and_the_service_area(api: Api) -> None:
    done = await sign_up(api, needs=["medical_equipment"], channels=["sms", "voice"], voice=PHONE)
    assert done["household_id"].startswith("self-") and done["manage_url"].endswith(done["manage_token"])
    home = await api.client.app[STORE].get_household(done["household_id"])
    assert home is not None and (home.sms, home.voice, home.address) == (PHONE, PHONE, SIGN_UP["address"])
    assert home.priority is not None and home.priority.value == "medical"
    # Told by the resident: a medical priority the utility has yet to confirm.
    assert home.source.value == "self" and not home.priority_confirmed
    assert {n.value for n in home.needs} == {"medical_equipment"}

    async def in_area() -> bool:
        return done["household_id"] in set(
            api.client.app[SERVICE_AREA].value.households.households.account_id.tolist()
        )

    await wait_until(in_area, "the self-enrolled household in the service area")


async def test_a_wrong_code_says_how_many_tries_are_left_and_five_kill_it(api: Api) -> None:
    _, started = await enrol(api)
    code = codes_to(api, PHONE)[-1]
    wrong = "000000" if code != "000000" else "111111"
    answers = [await confirm(api, started["enrolment_id"], wrong) for _ in range(5)]
    assert [s for s, _ in answers] == [422, 422, 422, 422, 410]
    assert answers[0][1]["error"]["message"] == "wrong code: 4 tries left"
    assert answers[3][1]["error"]["message"] == "wrong code: 1 try left"
    assert answers[4][1]["error"]["code"] == "too_many_tries"
    status, body = await confirm(api, started["enrolment_id"], code)  # the right one, too late
    assert status == 410 and body["error"]["code"] == "too_many_tries"


async def test_a_code_expires_after_15_minutes(api: Api, clock: ManualClock) -> None:
    _, started = await enrol(api)
    code = codes_to(api, PHONE)[-1]
    clock.advance(timedelta(minutes=15, seconds=1))
    status, body = await confirm(api, started["enrolment_id"], code)
    assert status == 410 and body["error"]["code"] == "code_expired"


async def test_a_code_works_once(api: Api) -> None:
    _, started = await enrol(api)
    code = codes_to(api, PHONE)[-1]
    assert (await confirm(api, started["enrolment_id"], code))[0] == 200
    status, body = await confirm(api, started["enrolment_id"], code)
    assert status == 410 and body["error"]["code"] == "already_confirmed"
    assert (await confirm(api, "enr-nothing", code))[0] == 404


async def test_rate_limits_per_client_and_per_number(apps: Apps) -> None:
    api = await apps.make(
        INCIDENT_PUBLIC__TRUSTED_PROXIES='["127.0.0.1", "::1"]', INCIDENT_ENROLMENT__PER_CLIENT="3",
        INCIDENT_ENROLMENT__PER_CONTACT="2", INCIDENT_ENROLMENT__ALLOWED_REGIONS='["US"]',
    )  # fmt: skip
    # Per number: the third code to the same number within the hour is refused, from anywhere.
    assert (await enrol(api, ip="198.51.100.1"))[0] == 202
    assert (await enrol(api, ip="198.51.100.2"))[0] == 202
    status, body = await enrol(api, ip="198.51.100.3")
    assert status == 429 and 1 <= int(body["retry_after"]) <= 3601
    assert len(messages_to(api, PHONE)) == 2
    # Per client: three sign-ups from one address (an IPv6 /64 is one address), whatever the number.
    for n in range(3):
        status, _ = await enrol(api, ip=f"2001:db8::{n + 1}", sms=f"+1502555020{n}")
        assert status == 202
    status, body = await enrol(api, ip="2001:db8::ffff", sms="+15025550299")
    assert status == 429 and body["error"]["code"] == "too_many_requests"
    assert (await enrol(api, ip="2001:db8:1::1", sms="+15025550299"))[0] == 202  # another /64


async def test_codes_sent_by_the_whole_service_are_capped_per_hour(
    apps: Apps, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    api = await apps.make(
        INCIDENT_PUBLIC__TRUSTED_PROXIES='["127.0.0.1", "::1"]', INCIDENT_ENROLMENT__CODES_PER_HOUR="2",
        INCIDENT_ENROLMENT__ALLOWED_REGIONS='["US"]',
    )  # fmt: skip
    # Every sign-up from another client (another /48 even) to another number: only the cap holds.
    assert (await enrol(api, ip="2001:db8:1::1", sms="+15025550201"))[0] == 202
    assert (await enrol(api, ip="2001:db8:2::1", sms="+15025550202"))[0] == 202
    status, body = await enrol(api, ip="2001:db8:3::1", sms="+15025550203")
    assert status == 429 and body["error"]["message"] == "too many sign-ups: try again later"
    assert 1 <= int(body["retry_after"]) <= 3601
    assert messages_to(api, "+15025550203") == []
    assert "codes_per_hour" in caplog.text and "+1502" not in caplog.text
    assert api.client.app[METRICS].enrolments_refused.labels("service")._value.get() == 1
    clock.advance(timedelta(hours=1, seconds=1))
    assert (await enrol(api, ip="2001:db8:3::1", sms="+15025550203"))[0] == 202


async def test_the_answer_is_the_same_for_a_known_and_an_unknown_number(api: Api) -> None:
    known = "+13095550130"  # in the households file (ACC-000001)
    assert await api.client.app[STORE].households_page("ACC-000000", 1) != []
    first = await enrol(api, sms=known)
    second = await enrol(api, sms="+15025550144")
    assert first[0] == second[0] == 202
    assert set(first[1]) == set(second[1]) and first[1]["sent_to"] == second[1]["sent_to"] == "sms"
    assert len(first[1]["enrolment_id"]) == len(second[1]["enrolment_id"])


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"lon": 2.35, "lat": 48.85}, "outside the service area"),
        ({"lon": 500}, "lon"),
        ({"language": "es"}, "not written in 'es'"),
        ({"language": "not a tag!"}, "not a BCP 47"),
        ({"sms": "12345"}, "not E.164"),
        ({"sms": "+447911123456"}, "not in this service's region (US)"),
        ({"sms": "+15551234567"}, "not a valid number"),
        ({"sms": "+18005550199"}, "not a mobile"),
        ({"channels": ["email"]}, "no email address"),
        ({"channels": ["push"]}, "channels"),
        ({"channels": []}, "channels"),
        ({"channels": ["sms", "voice"], "needs": ["deaf_or_hard_of_hearing"], "voice": PHONE}, "deaf"),
        ({"email": "someone@example.org"}, "separately"),
        ({"voice": "+15025550999", "channels": ["sms", "voice"]}, "one phone number"),
        ({"address": "   "}, "address"),
        ({"address": "x" * 201}, "address"),
        ({"address": "12 Elm St\u0000"}, "address: control or format characters"),
        ({"address": "12 Elm \u202eSt"}, "address: control or format characters"),
        ({"address": "12 Elm \u0007St"}, "address: control or format characters"),
        ({"email": "a\u0000@b.example", "sms": None, "channels": ["email"]}, "email"),
        ({"needs": ["medical_equipment", "medical_equipment"]}, "twice"),
        ({"extra": 1}, "unknown field"),
        ({"lat": "38"}, "lat"),
        ({"sms": None, "email": "a@b.example", "channels": ["email"]}, "email"),
    ],
)
async def test_hostile_or_wrong_sign_ups_are_refused_clearly(
    api: Api, fields: dict[str, Any], says: str
) -> None:
    status, body = await enrol(api, **fields)
    assert status == 422, body
    assert says in body["error"]["message"]
    assert PHONE not in body["error"]["message"] and messages_to(api, PHONE) == []


async def test_bodies_that_are_not_sign_ups(api: Api) -> None:
    for raw, status in ((b"", 400), (b"{", 400), (b"[" * 3000, 400), (b"x" * 5000, 413), (b"[]", 422)):
        async with api.client.post(ENROL, data=raw, headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == status, (raw[:10], await resp.text())
    status, _ = await confirm(api, "enr-x", "1" * 13)
    assert status == 422
    # A NUL or any odd character in the sign-up's id or code is a clear answer, never a 500.
    for enrolment_id, code in (
        ("enr-%00x", "123456"),
        ("enr-%E2%80%AEx", "123456"),
        ("enr-x", "12\u00003456"),
    ):
        status, body = await confirm(api, enrolment_id, code)
        assert status in (404, 422), (enrolment_id, status, body)


async def test_the_manage_link_reads_changes_and_removes(api: Api) -> None:
    done = await sign_up(api, channels=["sms", "voice"], voice=PHONE)
    path = f"/public/api/households/self/{done['manage_token']}"
    status, view = await api.call("GET", path, None)
    assert status == 200 and view["household_id"] == done["household_id"]
    assert view["channels"] == ["sms", "voice"] and PHONE not in view["contact"]
    status, view = await api.call(
        "PATCH", path, None, json={"language": "zh-CN", "needs": ["blind_or_low_vision"]}
    )
    assert status == 200 and view["language"] == "zh-CN" and view["channels"][0] == "voice"
    store: Store = api.client.app[STORE]
    home = await store.get_household(done["household_id"])
    assert home is not None and home.language == "zh-CN"
    status, _ = await api.call(
        "PATCH", path, None, json={"channels": ["voice"], "needs": ["deaf_or_hard_of_hearing"]}
    )
    assert status == 422
    status, view = await api.call("PATCH", path, None, json={"channels": ["sms"]})
    assert status == 200 and view["channels"] == ["sms"]
    home = await store.get_household(done["household_id"])
    assert home is not None and [c.value for c in home.channels()] == ["sms"]
    assert (await api.call("DELETE", path, None))[0] == 204
    assert await store.get_household(done["household_id"]) is None
    status, body = await api.call("GET", path, None)
    assert status == 410 and body["error"]["code"] == "removed"


async def test_a_change_that_changes_nothing_leaves_the_registry_version(api: Api) -> None:
    done = await sign_up(api, language="zh-CN")
    path = f"/public/api/households/self/{done['manage_token']}"
    store: Store = api.client.app[STORE]
    version = await store.get_meta(VERSION_KEY)
    for same in ({}, {"language": "zh-CN"}, {"channels": ["sms"], "needs": []}):
        status, view = await api.call("PATCH", path, None, json=same)
        assert status == 200 and view["language"] == "zh-CN"
    assert await store.get_meta(VERSION_KEY) == version  # no instance rebuilds its service area
    assert (await api.call("PATCH", path, None, json={"language": "en"}))[0] == 200
    assert await store.get_meta(VERSION_KEY) != version


async def test_link_routes_have_a_budget_per_client_and_per_link(apps: Apps) -> None:
    api = await apps.make(
        INCIDENT_PUBLIC__TRUSTED_PROXIES='["127.0.0.1", "::1"]', INCIDENT_ENROLMENT__ALLOWED_REGIONS='["US"]',
        INCIDENT_PUBLIC__REQUESTS_PER_MINUTE="5",
    )  # fmt: skip
    done = await sign_up(api)
    path = f"/public/api/households/self/{done['manage_token']}"

    async def call(method: str, ip: str, body: Any = None) -> tuple[int, str | None]:
        async with api.client.request(method, path, json=body, headers={"X-Forwarded-For": ip}) as resp:
            return resp.status, resp.headers.get("Retry-After")

    # One client: its /public budget counts the link routes too.
    assert [(await call("GET", "198.51.100.9"))[0] for _ in range(6)] == [200] * 5 + [429]
    # One link: changes from many clients are counted against it.
    answers = [
        await call("PATCH", f"198.51.100.{n}", {"language": "en"}) for n in range(20, 20 + LINK_WRITES)
    ]
    assert {status for status, _ in answers} == {200}
    status, retry = await call("PATCH", "198.51.100.99", {"language": "en"})
    assert status == 429 and retry is not None and 1 <= int(retry) <= 60
    status, _ = await call("DELETE", "198.51.100.98")
    assert status == 429 and await api.client.app[STORE].get_household(done["household_id"]) is not None


async def test_a_forged_or_altered_link_is_refused(api: Api) -> None:
    done = await sign_up(api)
    token: str = done["manage_token"]
    body, mac = token.split(".")
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    for bad in (f"{body}.{flipped}", "c2VsZi0xLjk5OTk5OTk5OTk5." + "0" * 43, "nonsense", "a" * 300):
        for method in ("GET", "PATCH", "DELETE"):
            status, answer = await api.call(method, f"/public/api/households/self/{bad}", None, json={})
            assert status in (403, 404), (method, bad, answer)
    assert await api.client.app[STORE].get_household(done["household_id"]) is not None


async def test_the_same_number_signing_up_again_updates_its_household(api: Api) -> None:
    first = await sign_up(api)
    second = await sign_up(api, language="zh-CN", address="14 Elm St")
    assert second["household_id"] == first["household_id"]
    home = await api.client.app[STORE].get_household(first["household_id"])
    assert home is not None and home.language == "zh-CN"
    # The first link stops working: a number's new owner signing up must not be reachable
    # (nor removable) through the old owner's link.
    for method in ("GET", "PATCH", "DELETE"):
        status, body = await api.call(
            method, f"/public/api/households/self/{first['manage_token']}", None, json={}
        )
        assert status == 410 and body["error"]["code"] == "link_replaced", (method, body)
        assert "14 Elm" not in str(body)
    status, view = await api.call("GET", f"/public/api/households/self/{second['manage_token']}", None)
    assert status == 200 and view["address"] == "14 Elm St"


async def test_a_confirmed_household_is_reached_by_a_notice_and_stop_is_honoured(apps: Apps) -> None:
    api = await apps.make(send=True, system_clock=True, INCIDENT_PUBLIC__TRUSTED_PROXIES='["127.0.0.1", "::1"]',
                          INCIDENT_AREA__RELOAD_S="0.1", INCIDENT_AREA__DEFAULT_REGION="US")  # fmt: skip
    done = await sign_up(api)
    account = done["household_id"]

    async def in_area() -> bool:
        return account in set(api.client.app[SERVICE_AREA].value.households.households.account_id.tolist())

    await wait_until(in_area, "the household in the service area")
    lon, lat = INSIDE["lon"], INSIDE["lat"]
    d = 0.0004
    tiny = {"type": "Polygon", "coordinates": [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d],
                                                [lon - d, lat + d], [lon - d, lat - d]]]}  # fmt: skip

    async def notify() -> int:
        inc = await api.declare(area=tiny)
        status, planned = await api.call(
            "POST", f"/api/incidents/{inc['id']}/notices",
            json={"template": "boil_water", "channels": ["sms"], "facts": {"area": "Elm St"}},
        )  # fmt: skip
        assert status == 201, planned
        notice_id = planned["notice"]["notice_id"]
        assert (await api.call("POST", f"/api/incidents/{inc['id']}/notices/{notice_id}/approve"))[0] == 200
        return int(planned["notice"]["counts"]["by_channel"].get("sms", 0))

    before = await notify()
    await wait_until(lambda: _more_than(api, 1), "the notice to the self-enrolled number")
    assert "Elm St" in messages_to(api, PHONE)[-1]

    drill = api.client.app[NOTIFY].drill
    assert drill is not None
    url = str(api.client.make_url("/hooks/twilio/inbound"))
    result = await drill.carrier.inbound_sms(PHONE, FROM_NUMBER, "退订", url)
    assert result.status == 200
    assert await api.client.app[STORE].opt_out_state(PHONE, "sms") is True
    assert await notify() == before - 1  # the same area: everyone but the number that said 退订


async def _more_than(api: Api, n: int) -> bool:
    return len(messages_to(api, PHONE)) > n


async def test_sign_up_can_be_turned_off(apps: Apps) -> None:
    api = await apps.make(INCIDENT_ENROLMENT__ENABLED="false")
    status, _ = await enrol(api)
    assert status == 404 and messages_to(api, PHONE) == []
    assert (await api.call("GET", "/public/signup", None))[0] == 404


async def test_an_email_sign_up_gets_its_code_by_email(apps: Apps) -> None:
    async with smtp_server() as smtp:
        api = await apps.make(INCIDENT_PUBLIC__TRUSTED_PROXIES='["127.0.0.1", "::1"]', **smtp.env())
        address = "Resident@Example.ORG"
        status, started = await enrol(api, sms=None, email=address, channels=["email"], language="zh-CN")
        assert status == 202 and started["sent_to"] == "email"
        got = await wait_until(lambda: _mail(smtp, "Resident@example.org"), "the code by email")
        assert "验证码" in got[0].subject and messages_to(api, PHONE) == []
        code = re.findall(r"\d{6}", got[0].body)[0]
        status, done = await confirm(api, started["enrolment_id"], code)
        assert status == 200
        home = await api.client.app[STORE].get_household(done["household_id"])
        assert home is not None and (home.email, home.sms, home.voice) == ("Resident@example.org", "", "")
        assert [c.value for c in home.channels()] == ["email"]
        status, view = await api.call("GET", f"/public/api/households/self/{done['manage_token']}", None)
        assert status == 200 and view["channels"] == ["email"] and view["contact"] == "R•••@example.org"


async def _mail(smtp: SmtpServer, address: str) -> list[Received]:
    return smtp.recorder.to(address)
