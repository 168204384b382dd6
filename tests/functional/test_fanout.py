"""The fan-out end to end: approve -> Kafka notify jobs -> senders -> the drill carrier."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import pytest

from incident.core.clock import ManualClock
from incident.keys import NOTIFY, SETTINGS, STORE
from incident.store import Store
from tests.support.app import Api, Apps, Client
from tests.support.env import kafka_env
from tests.support.sample import BOX, expected_sms, rows_inside
from tests.support.wait import QuickTime, wait_until

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)


async def every_delivery_handed_over(store: Store, incident_id: str, expected: int | None = None) -> bool:
    """Every delivery has its carrier's id (and there are ``expected`` of them, if given)."""
    rows = await store.list_deliveries(incident_id, "", 10_000)
    return bool(rows) and (expected is None or len(rows) == expected) and all(r.carrier_sid for r in rows)


async def test_an_approved_notice_reaches_every_number_exactly_once(sending_api: Api) -> None:
    api = sending_api
    inc = await api.declare(area=BOX)
    status, planned = await api.call(
        "POST",
        f"/api/incidents/{inc['id']}/notices",
        json={"template": "boil_water", "channels": ["sms"], "facts": {"area": "Maple St"}},
    )
    assert status == 201
    _, numbers, _ = expected_sms(BOX)
    notice_id = planned["notice"]["notice_id"]
    status, _ = await api.call("POST", f"/api/incidents/{inc['id']}/notices/{notice_id}/approve")
    assert status == 200

    async def all_handed_over() -> bool:
        _, d = await api.call("GET", f"/api/incidents/{inc['id']}/deliveries")
        sms = d["counts"].get("sms", {})
        waiting = ("draft", "planned", "queued", "claimed", "sending")
        return sum(n for state, n in sms.items() if state not in waiting) == numbers

    await wait_until(all_handed_over)
    drill = api.client.app[NOTIFY].drill
    assert drill is not None
    sent = Counter(m.to for m in drill.carrier.messages)
    assert len(sent) == numbers and set(sent.values()) == {1}  # every number once, none twice
    store = api.client.app[STORE]
    rows = await store.list_deliveries(inc["id"], "", 10_000)
    # Every carrier id recorded is the carrier's: SMS among its messages; a number the carrier
    # refused as not mobile may already have its voice fallback, among its calls.
    sms_sids = {r.carrier_sid for r in rows if r.carrier_sid and r.channel == "sms"}
    call_sids = {r.carrier_sid for r in rows if r.carrier_sid and r.channel == "voice"}
    assert sms_sids == {m.sid for m in drill.carrier.messages}
    assert call_sids <= {c.sid for c in drill.carrier.calls}
    body = next(iter(drill.carrier.messages)).body
    assert "Sampletown Water" in body


async def test_a_replayed_job_sends_nothing(sending_api: Api) -> None:
    api = sending_api
    incident_id, _ = await _plan_and_approve(api)
    store = api.client.app[STORE]

    await wait_until(lambda: every_delivery_handed_over(store, incident_id))
    drill = api.client.app[NOTIFY].drill
    assert drill is not None
    before = len(list(drill.carrier.messages))
    engine = api.client.app[NOTIFY].engine
    rows = await store.list_deliveries(incident_id, "", 10_000)
    results: list[Any] = await asyncio.gather(*(engine.send(r.delivery_id) for r in rows))
    assert results == [None] * len(rows)  # each job found its delivery already taken
    assert len(list(drill.carrier.messages)) == before


async def _plan_and_approve(api: Api) -> tuple[str, int]:
    inc = await api.declare(area=BOX)
    _, planned = await api.call(
        "POST",
        f"/api/incidents/{inc['id']}/notices",
        json={"template": "boil_water", "channels": ["sms"], "facts": {"area": "Maple St"}},
    )
    notice_id = planned["notice"]["notice_id"]
    await api.call("POST", f"/api/incidents/{inc['id']}/notices/{notice_id}/approve")
    return inc["id"], planned["notice"]["counts"]["by_channel"]["sms"]


async def test_a_fan_out_cut_short_completes_after_a_restart_without_duplicates_or_gaps(
    apps: Apps,
) -> None:
    from incident.carriersim.config import DrillConfig
    from incident.carriersim.server import serve_drill

    broker_env = kafka_env(apps.broker, send=True)
    async with serve_drill(DrillConfig(callbacks=False, latency_ms=(5, 20))) as carrier:
        first = await apps.make(kafka=broker_env, carrier_url=carrier.url, system_clock=True,
                                    INCIDENT_TWILIO__MESSAGES_PER_SECOND="40")  # fmt: skip
        incident_id, numbers = await _plan_and_approve(first)
        async with asyncio.timeout(30):
            while len(list(carrier.carrier.messages)) < numbers // 4:
                await asyncio.sleep(0.05)
        await first.client.close()  # the instance goes away mid-fan-out, sends in flight cut short
        cut_at = len(list(carrier.carrier.messages))
        assert 0 < cut_at < numbers

        second = await apps.make(kafka=broker_env, carrier_url=carrier.url, system_clock=True,
            INCIDENT_TWILIO__MESSAGES_PER_SECOND="500", INCIDENT_NOTIFY__SENDING_TIMEOUT_S="1",
            INCIDENT_NOTIFY__REQUEUE_S="1",
        )  # fmt: skip
        store = second.client.app[STORE]

        await wait_until(lambda: every_delivery_handed_over(store, incident_id, numbers), limit=60)
        sent = Counter(m.to for m in carrier.carrier.messages)
        assert len(sent) == numbers, "a gap: some number was never sent to"
        assert set(sent.values()) == {1}, "a duplicate: some number got the notice twice"


async def test_429_storms_are_retried_and_still_send_once(
    apps: Apps,
) -> None:
    from incident.carriersim.config import DrillConfig
    from incident.carriersim.server import serve_drill

    async with serve_drill(DrillConfig(callbacks=False)) as carrier:
        api = await apps.make(kafka=kafka_env(apps.broker, send=True), carrier_url=carrier.url, system_clock=True,
                                  INCIDENT_NOTIFY__RETRY_BASE_S="0.05",
                                  INCIDENT_TWILIO__MESSAGES_PER_SECOND="500")  # fmt: skip
        carrier.carrier.fail_next(429, count=25)
        carrier.carrier.fail_next(503, count=5)
        incident_id, numbers = await _plan_and_approve(api)
        store = api.client.app[STORE]

        await wait_until(lambda: every_delivery_handed_over(store, incident_id, numbers), limit=60)
        rows = await store.list_deliveries(incident_id, "", 10_000)
        assert sum(r.attempts for r in rows) >= numbers + 30 - 5  # the refusals were retried
        sent = Counter(m.to for m in carrier.carrier.messages)
        assert len(sent) == numbers and set(sent.values()) == {1}


async def test_an_sms_refused_as_not_mobile_becomes_one_voice_call(apps: Apps) -> None:
    from incident.carriersim.config import DrillConfig
    from incident.carriersim.server import serve_drill

    landline = next(r for r in rows_inside(BOX) if r["sms"] and r["voice"] and not r["opt_out"])
    config = DrillConfig(callbacks=False, not_sms_capable=[landline["sms"]])
    async with serve_drill(config) as carrier:
        api = await apps.make(kafka=kafka_env(apps.broker, send=True), carrier_url=carrier.url, system_clock=True,
                                  INCIDENT_TWILIO__MESSAGES_PER_SECOND="500",
                                  INCIDENT_TWILIO__CALLS_PER_SECOND="100")  # fmt: skip
        incident_id, _ = await _plan_and_approve(api)
        store = api.client.app[STORE]

        async def called() -> bool:
            return any(c.to == landline["voice"] for c in carrier.carrier.calls)

        await wait_until(called)
        rows = await store.list_deliveries(incident_id, "", 10_000)
        sms = next(r for r in rows if r.account_id == landline["account_id"] and r.channel == "sms")
        voice = [r for r in rows if r.fallback_of == sms.delivery_id]
        assert sms.state.value == "failed" and sms.error_code == "21614"
        assert (
            len(voice) == 1 and voice[0].channel == "voice" and voice[0].account_id == landline["account_id"]
        )
        assert sum(1 for c in carrier.carrier.calls if c.to == landline["voice"]) == 1


async def test_app_push_through_the_gateway(sending_api: Api) -> None:
    tokens = {
        r["app_token"] for r in rows_inside(BOX) if r["app_token"] and "push" not in r["opt_out"].split("|")
    }
    api = sending_api
    inc = await api.declare(area=BOX)
    status, planned = await api.call("POST", f"/api/incidents/{inc['id']}/notices",
                                     json={"template": "boil_water", "channels": ["push"], "facts": {"area": "Maple St"}})  # fmt: skip
    assert status == 201 and planned["notice"]["counts"]["by_channel"] == {"push": len(tokens)}
    await api.call("POST", f"/api/incidents/{inc['id']}/notices/{planned['notice']['notice_id']}/approve")
    drill = api.client.app[NOTIFY].drill
    assert drill is not None

    async def recorded() -> bool:  # the gateway's answers are recorded just after the last push
        _, d = await api.call("GET", f"/api/incidents/{inc['id']}/deliveries")
        return sum(d["counts"].get("push", {}).values()) == d["counts"].get("push", {}).get("sent")

    await wait_until(recorded)
    assert {p["token"] for p in drill.carrier.pushes} == tokens and len(drill.carrier.pushes) == len(tokens)
    assert all(p["title"] and p["body"] for p in drill.carrier.pushes)
    _, d = await api.call("GET", f"/api/incidents/{inc['id']}/deliveries")
    assert d["counts"] == {"push": {"sent": len(tokens)}}


async def test_sends_cut_short_are_looked_up_at_the_carrier_before_any_retry(
    apps: Apps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import UTC, datetime, timedelta

    from incident.carriersim.config import DrillConfig
    from incident.carriersim.server import serve_drill
    from incident.deliveries.records import Delivery, Notice
    from incident.deliveries.states import DeliveryState
    from incident.store.ports import PutNotice

    async with serve_drill(DrillConfig(callbacks=False)) as carrier:
        api = await apps.make(kafka=kafka_env(apps.broker), carrier_url=carrier.url, system_clock=True,
                                  INCIDENT_NOTIFY__SENDING_TIMEOUT_S="1")  # fmt: skip
        inc = await api.declare()
        store, runtime = api.client.app[STORE], api.client.app[NOTIFY]
        old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="microseconds")
        notice_id = f"{inc['id']}-N1"
        await store.apply_plan([PutNotice(Notice(notice_id=notice_id, incident_id=inc["id"], template="main_break",
                                                 channels=["sms", "voice", "push"], status="approved",
                                                 created_by="alice", created_at=old))])  # fmt: skip
        # The carrier took a call and an SMS, but the answers were never recorded (the sender died).
        placed = await runtime.carrier.call(
            "+15025550201", "+15005550006", "<Response/>", "http://127.0.0.1:9/s"
        )
        texted = await runtime.carrier.send_sms(
            "+15025550202", "+15005550006", "Boil water", "http://127.0.0.1:9/s"
        )

        def stuck(seq: int, channel: str, address: str) -> Delivery:
            return Delivery(delivery_id=f"{notice_id}:{seq}", notice_id=notice_id, incident_id=inc["id"], seq=seq,
                            channel=channel, address=address, account_id=f"A{seq}", language="en", priority_rank=3,
                            state=DeliveryState.sending, attempts=1, updated_at=old)  # fmt: skip

        await store.add_deliveries([
            stuck(1, "voice", "+15025550201"), stuck(2, "sms", "+15025550202"),
            stuck(3, "sms", "+15025550203"), stuck(4, "push", "app-token-4"),
        ])  # fmt: skip
        with caplog.at_level(logging.DEBUG):
            assert await runtime.engine.reconcile() == 4
        # The lookups go by recipient: the numbers must not reach the logs, at any level.
        assert "+1502555020" not in caplog.text
        got = {d.seq: d for d in await store.list_deliveries(inc["id"], "", 10)}
        assert (got[1].state, got[1].carrier_sid) == (DeliveryState.accepted, placed.sid)
        assert (got[2].state, got[2].carrier_sid) == (DeliveryState.accepted, texted.sid)
        assert got[3].state == DeliveryState.retry  # the carrier never got it: send it
        assert (got[4].state, got[4].error_code) == (DeliveryState.failed, "outcome_unknown")
        assert len(list(carrier.carrier.calls)) == 1 and len(list(carrier.carrier.messages)) == 1


async def test_a_started_call_of_a_sender_whose_lease_lapsed_is_not_sent_again_while_it_may_be_in_flight(
    apps: Apps,
) -> None:
    """A live sender could not renew its lease (a database blip longer than the lease, well
    within the store's retry budget; or its clock runs behind) while its carrier call is on
    its way. The carrier does not have that message yet: another look must not take that for
    "never got it" and send it again, until no call of it can still be in flight."""
    from datetime import UTC, datetime, timedelta

    from incident.carriersim.config import DrillConfig
    from incident.carriersim.server import serve_drill
    from incident.deliveries.records import Delivery, Notice
    from incident.deliveries.states import DeliveryState
    from incident.store.ports import PutNotice

    async with serve_drill(DrillConfig(callbacks=False)) as carrier:
        api = await apps.make(kafka=kafka_env(apps.broker), carrier_url=carrier.url, system_clock=True)
        inc = await api.declare()
        store, runtime = api.client.app[STORE], api.client.app[NOTIFY]
        now = datetime.now(UTC)
        notice_id = f"{inc['id']}-N1"
        await store.apply_plan([PutNotice(Notice(notice_id=notice_id, incident_id=inc["id"], template="main_break",
                                                 channels=["sms"], status="approved", created_by="alice",
                                                 created_at=now.isoformat()))])  # fmt: skip
        ids = [f"{notice_id}:{seq}" for seq in (1, 2)]
        await store.add_deliveries([
            Delivery(delivery_id=d, notice_id=notice_id, incident_id=inc["id"], seq=seq, channel="sms",
                     address=f"+1502555030{seq}", account_id=f"A{seq}", language="en", priority_rank=3,
                     state=DeliveryState.queued, updated_at=now.isoformat())
            for seq, d in enumerate(ids, 1)
        ])  # fmt: skip
        await store.claim_deliveries(ids, "lapsed", now.isoformat())
        await store.renew_sender("lapsed", (now - timedelta(seconds=1)).isoformat(), None)
        # One call started just now (it may still be on its way), one long enough ago that
        # no call of it can be: the carrier has neither.
        await store.start_deliveries(ids[:1], now.isoformat())
        await store.start_deliveries(ids[1:], (now - timedelta(minutes=1)).isoformat())
        assert await runtime.engine.reconcile() == 1
        got = {d.delivery_id: d for d in await store.deliveries_by_id(ids)}
        assert got[ids[0]].state is DeliveryState.sending  # looked at again later
        assert got[ids[1]].state is DeliveryState.retry  # the carrier never got it: send it
        assert list(carrier.carrier.messages) == []


async def test_deliveries_waiting_for_a_slow_rate_are_not_taken_early(
    apps: Apps,
) -> None:
    """At 3 SMS/s a sender takes (marks `sending`) only what it can send in the next few
    seconds: a long wait in `sending` would look like a send cut short to the reconciler,
    which would then send it again."""
    from incident.carriersim.config import DrillConfig
    from incident.carriersim.server import serve_drill
    from incident.notices.fanout import TAKE_AHEAD_S

    rate = 3
    async with serve_drill(DrillConfig(callbacks=False)) as carrier:
        # The rate's seconds pass ten times faster than the wall's (see QuickTime).
        api = await apps.make(kafka=kafka_env(apps.broker, send=True), carrier_url=carrier.url, system_clock=True,
                              rate_clock=QuickTime(10), INCIDENT_TWILIO__MESSAGES_PER_SECOND=str(rate))  # fmt: skip
        inc = await api.declare(area=BOX)
        status, planned = await api.call("POST", f"/api/incidents/{inc['id']}/notices", json={
            "template": "boil_water", "channels": ["sms"], "audience": {"priority": ["medical", "vulnerable"]},
            "facts": {"area": "Maple St"}})  # fmt: skip
        assert status == 201
        total = planned["notice"]["counts"]["deliveries"]
        assert total > rate * TAKE_AHEAD_S  # more than one take's worth
        await api.call("POST", f"/api/incidents/{inc['id']}/notices/{planned['notice']['notice_id']}/approve")
        most_sending = 0

        async def done() -> bool:
            nonlocal most_sending
            _, d = await api.call("GET", f"/api/incidents/{inc['id']}/deliveries")
            sms = d["counts"].get("sms", {})
            most_sending = max(most_sending, sms.get("sending", 0))
            return sms.get("accepted", 0) == total

        await wait_until(done, limit=total / rate / 10 + 30)
        assert 0 < most_sending <= rate * TAKE_AHEAD_S
        numbers = Counter(m.to for m in carrier.carrier.messages)
        assert len(numbers) == total and set(numbers.values()) == {1}


async def test_a_send_whose_answer_is_lost_is_looked_up_not_sent_again(apps: Apps) -> None:
    """The carrier takes the first SMS but the connection drops before its answer: the
    delivery stays `sending` (not `retry`) and the reconciler finds it at the carrier."""
    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from incident.carriersim.config import DrillConfig
    from incident.carriersim.server import serve_drill
    from incident.deliveries.states import DeliveryState

    async with serve_drill(DrillConfig(callbacks=False)) as drill, aiohttp.ClientSession() as session:
        hung_up: list[str] = []

        async def relay(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            headers = {
                k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")
            }
            async with session.request(
                request.method, f"{drill.url}{request.path_qs}", data=body, headers=headers
            ) as answer:
                text = await answer.read()
                if request.method == "POST" and request.path.endswith("/Messages.json") and not hung_up:
                    hung_up.append(request.path)
                    assert request.transport is not None
                    request.transport.close()  # taken by the carrier, answer lost
                    return web.Response()
                return web.Response(body=text, status=answer.status, content_type=answer.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", relay)
        proxy = TestServer(app)
        await proxy.start_server()
        try:
            api = await apps.make(kafka=kafka_env(apps.broker, send=True),
                                  carrier_url=str(proxy.make_url("")).rstrip("/"), system_clock=True,
                                      INCIDENT_NOTIFY__SENDING_TIMEOUT_S="1",
                                      INCIDENT_TWILIO__MESSAGES_PER_SECOND="500")  # fmt: skip
            incident_id, sms = await _plan_and_approve(api)
            store = api.client.app[STORE]
            await wait_until(lambda: every_delivery_handed_over(store, incident_id, sms))
        finally:
            await proxy.close()
        assert hung_up
        assert len(list(drill.carrier.messages)) == sms  # one each: the lost answer was not resent
        rows = await store.list_deliveries(incident_id, "", 10_000)
        assert {r.state for r in rows} == {DeliveryState.accepted}
        looked_up = [
            r for r in rows if any("reconciled" in e[2] for e in await store.delivery_events(r.delivery_id))
        ]
        assert len(looked_up) == 1 and looked_up[0].attempts == 1


async def test_a_dead_senders_claims_are_released_and_sent_once_and_only_started_ones_looked_up(
    apps: Apps,
) -> None:
    """The state a kill -9 mid-fan-out leaves: most deliveries claimed by the dead instance
    (carrier call not started), a few started (one of them the carrier took). A new instance
    sends the claimed ones at once, without asking the carrier, and looks up only the
    started ones: every number gets the notice once."""
    from datetime import UTC, datetime, timedelta

    from incident.carriersim.config import DrillConfig
    from incident.carriersim.server import serve_drill
    from incident.deliveries.states import DeliveryState

    broker_env = kafka_env(apps.broker, send=True)
    async with serve_drill(DrillConfig(callbacks=False)) as carrier:
        # Planned and approved by an instance that does not send.
        planner = await apps.make(kafka=kafka_env(apps.broker), carrier_url=carrier.url, system_clock=True)
        incident_id, numbers = await _plan_and_approve(planner)
        store = planner.client.app[STORE]
        rows = sorted(await store.list_deliveries(incident_id, "", 10_000), key=lambda d: d.seq)
        ids = [r.delivery_id for r in rows]
        before = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="microseconds")
        await store.queue_deliveries(ids, before)
        assert len(await store.claim_deliveries(ids, "killed-instance", before)) == numbers
        taken, lost = rows[0], rows[1]  # their calls started; the carrier got only the first
        # Started 20 s ago: looked up as soon as the new instance sees their sender is gone,
        # not after `sending_timeout_s` (left at its default, 30 s); the one the carrier does
        # not have is sent again once no call of it can still be on its way (15 s).
        just_now = (datetime.now(UTC) - timedelta(seconds=20)).isoformat(timespec="microseconds")
        assert await store.start_deliveries([taken.delivery_id, lost.delivery_id], just_now) == [
            taken.delivery_id,
            lost.delivery_id,
        ]
        texted = await planner.client.app[NOTIFY].carrier.send_sms(
            taken.address, "+15025550000", "Boil water", "http://127.0.0.1:9/s"
        )
        await planner.client.close()

        sender = await apps.make(kafka=broker_env, carrier_url=carrier.url, system_clock=True,
                                     INCIDENT_TWILIO__MESSAGES_PER_SECOND="500")  # fmt: skip
        store = sender.client.app[STORE]
        await wait_until(lambda: every_delivery_handed_over(store, incident_id, numbers))
        sent = Counter(m.to for m in carrier.carrier.messages)
        assert len(sent) == numbers and set(sent.values()) == {1}  # no gap, no duplicate
        got = {d.delivery_id: d for d in await store.list_deliveries(incident_id, "", 10_000)}
        assert (got[taken.delivery_id].carrier_sid, got[taken.delivery_id].attempts) == (texted.sid, 1)
        assert got[lost.delivery_id].attempts == 2  # looked up, not found, sent
        for delivery_id in ids:
            details = [e[2] for e in await store.delivery_events(delivery_id)]
            looked_up = any(d.startswith("reconciled") for d in details)
            assert looked_up == (delivery_id in (taken.delivery_id, lost.delivery_id)), details
            if not looked_up:  # released, then claimed and started by the new instance
                assert [e[1] for e in await store.delivery_events(delivery_id)][:5] == [
                    "queued", "claimed", "planned", "queued", "claimed",
                ]  # fmt: skip
        assert got[ids[2]].state is DeliveryState.accepted


async def test_a_push_without_an_answer_is_given_up_never_pushed_twice(
    apps: Apps,
) -> None:
    """The gateway takes every push but the answer never comes: as with a push cut short by
    a crash (the gateway keeps nothing to ask), it is failed `outcome_unknown`, not retried."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from incident.carriersim.config import DrillConfig
    from incident.carriersim.server import serve_drill
    from incident.deliveries.states import DeliveryState

    pushed: list[str] = []

    async def swallow(request: web.Request) -> web.StreamResponse:
        pushed.append((await request.json())["message"]["token"])
        assert request.transport is not None
        request.transport.close()  # taken, answer lost
        return web.Response()

    gateway_app = web.Application()
    gateway_app.router.add_post("/v1/projects/p/messages:send", swallow)
    gateway = TestServer(gateway_app)
    await gateway.start_server()
    try:
        async with serve_drill(DrillConfig(callbacks=False)) as carrier:
            api = await apps.make(kafka=kafka_env(apps.broker, send=True), carrier_url=carrier.url, system_clock=True,
                INCIDENT_PUSH__URL=str(gateway.make_url("/v1/projects/p/messages:send")),
                INCIDENT_PUSH__TOKEN="t", INCIDENT_NOTIFY__RETRY_BASE_S="0.01",
            )  # fmt: skip
            inc = await api.declare(area=BOX)
            _, planned = await api.call("POST", f"/api/incidents/{inc['id']}/notices", json={
                "template": "boil_water", "channels": ["push"], "facts": {"area": "Maple St"}})  # fmt: skip
            total = planned["notice"]["counts"]["by_channel"]["push"]
            await api.call(
                "POST", f"/api/incidents/{inc['id']}/notices/{planned['notice']['notice_id']}/approve"
            )
            store = api.client.app[STORE]

            async def all_failed() -> bool:
                rows = await store.list_deliveries(inc["id"], "", 10_000)
                return len(rows) == total and all(r.state is DeliveryState.failed for r in rows)

            await wait_until(all_failed)
            await asyncio.sleep(0.3)  # a retry would come within a few hundredths of a second
            rows = await store.list_deliveries(inc["id"], "", 10_000)
            assert {(r.error_code, r.attempts) for r in rows} == {("outcome_unknown", 1)}
            assert len(pushed) == total and len(set(pushed)) == total  # each app once
    finally:
        await gateway.close()


async def test_fan_out_health_names_a_stall_and_the_oldest_due_delivery_has_an_age(
    client: Client, api: Api, clock: ManualClock
) -> None:
    """Deliveries due and nobody taking them for stall_after_s: /healthz says so (503,
    'fanout'), and the gauge gives the age of the oldest due delivery."""
    from datetime import timedelta

    from incident.core.clock import isoformat
    from incident.deliveries.records import Delivery, Notice
    from incident.deliveries.states import DeliveryState
    from incident.keys import METRICS
    from incident.store.ports import PutNotice

    inc = await api.declare()
    store, engine = client.app[STORE], client.app[NOTIFY].engine
    at = isoformat(clock.now())
    notice_id = f"{inc['id']}-N1"
    await store.apply_plan([PutNotice(Notice(notice_id=notice_id, incident_id=inc["id"], template="main_break",
                                             channels=["sms"], status="approved", created_by="alice",
                                             created_at=at))])  # fmt: skip
    await store.add_deliveries([
        Delivery(delivery_id=f"{notice_id}:{i}", notice_id=notice_id, incident_id=inc["id"], seq=i, channel="sms",
                 address=f"+1502555030{i}", account_id=f"A{i}", language="en", priority_rank=3,
                 state=DeliveryState.planned, updated_at=at)
        for i in range(3)
    ])  # fmt: skip
    stall_after = client.app[SETTINGS].notify.stall_after_s

    def oldest_due() -> float:
        value = client.app[METRICS].registry.get_sample_value("incident_notify_oldest_due_seconds")
        assert value is not None
        return value

    assert await engine.probe() is None  # due just now
    status, health = await api.call("GET", "/healthz", who=None)
    assert health["checks"]["fanout"] == "ok"
    clock.advance(timedelta(seconds=stall_after + 1))
    reason = await engine.probe()
    assert reason is not None and "none taken" in reason
    assert oldest_due() == stall_after + 1
    status, health = await api.call("GET", "/healthz", who=None)
    assert status == 503 and health["checks"]["fanout"] == reason
    # Another instance takes one: the fan-out moves, whoever does the sending.
    await store.renew_sender(
        "other-instance", isoformat(clock.now() + timedelta(seconds=5)), isoformat(clock.now())
    )
    assert await engine.probe() is None
    status, health = await api.call("GET", "/healthz", who=None)
    assert health["checks"]["fanout"] == "ok"
