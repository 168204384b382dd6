"""Playbooks end to end on the real app: a report on the real broker, the store, the drill
carrier as the Twilio-compatible server, and a manual clock that runs days in seconds."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from incident.core.clock import ManualClock, isoformat
from incident.keys import PLAYBOOKS, STORE
from incident.playbook.engine import PlaybookEngine
from incident.settings import BUNDLED_DIR
from incident.store import Store
from tests.support.app import Api, Apps
from tests.support.env import FAST, FAST_CALLS, SENDING, kafka_env
from tests.support.sample import BOX
from tests.support.wait import wait_until

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)

TAP = {"lon": -85.547, "lat": 38.045}  # a sample tap inside a small DMA of the sample area
#: How the dispatcher tells households where (the area description).
WHERE = {"en": "Maple St between 1st and 5th Ave", "zh-CN": "枫树街第一至第五大道之间"}


async def _app(apps: Apps, kafka: dict[str, str]) -> Api:
    """An app of this test with playbooks' settings as given (sending at once, fast)."""
    return await apps.make(kafka=kafka, own_url=True, **SENDING, **FAST, **FAST_CALLS)


def types(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def timeline(api: Api, incident_id: str) -> list[dict[str, Any]]:
    status, body = await api.call("GET", f"/api/incidents/{incident_id}/timeline")
    assert status == 200, body
    return list(body["events"])


async def until_notices_sent(
    api: Api, engine: PlaybookEngine, clock: ManualClock, incident_id: str, n: int
) -> None:
    """Let the fan-out finish, moving the clock as the engine polls for it."""

    async def sent() -> bool:
        clock.advance(timedelta(seconds=3))
        await engine.run_due()
        return len(types(await timeline(api, incident_id), "notice_sent")) >= n

    await wait_until(sent)


def report(report_id: str, at: str, **fields: Any) -> bytes:
    body = {
        "report_id": report_id, "kind": "contamination", "utility": "water", "source": "lims",
        "observed_at": at, "location": TAP, "asset": {"type": "sample_tap", "id": "ST-17"},
        "severity": "low", "summary": "sample", **fields,
    }  # fmt: skip
    return json.dumps(body).encode()


async def test_contamination_from_a_lab_report_to_the_advisory_lifted(apps: Apps, clock: ManualClock) -> None:
    env = kafka_env(apps.broker, consume=True, send=True)
    api = await _app(apps, env)
    engine = api.client.app[PLAYBOOKS]
    producer = AIOKafkaProducer(bootstrap_servers=apps.broker.bootstrap)
    await producer.start()
    topic = env["INCIDENT_KAFKA__REPORTS_TOPIC"]
    try:
        now = isoformat(clock.now())
        await producer.send_and_wait(
            topic, report("lims-1", now, severity="high", summary="E. coli positive at ST-17")
        )

        async def declared() -> bool:
            _, body = await api.call("GET", "/api/incidents")
            return bool(body["incidents"])

        await wait_until(declared)
        _, body = await api.call("GET", "/api/incidents")
        inc = body["incidents"][0]
        assert inc["kind"] == "contamination" and inc["awaiting_confirmation"]
        await engine.run_due()
        assert (
            inc["stage"] is None
            and (await api.call("GET", f"/api/incidents/{inc['id']}"))[1]["stage"] is None
        )
        status, _ = await api.call(
            "POST", f"/api/incidents/{inc['id']}/confirm"
        )  # the rule asks a person first
        assert status == 200
        await engine.run_due()

        events = await timeline(api, inc["id"])
        [entered] = types(events, "stage_entered")
        assert (entered["data"]["stage"], entered["data"]["playbook"]) == ("advise", "contamination")
        assert types(events, "area_changed")[0]["data"]["households_after"] > 0  # the tap's DMA
        assert types(events, "advisory_set")[0]["data"]["advisory"] == "boil_water"
        [planned] = types(events, "notice_planned")
        assert planned["data"]["template"] == "boil_water" and planned["data"]["action"] == "advise#1:enter:2"
        assert types(events, "notice_approved")  # auto: nobody in the loop
        [page] = types(events, "page_sent")
        assert page["data"]["people"] == 2 and "+1" not in json.dumps(page)  # staff numbers stay out
        await until_notices_sent(api, engine, clock, inc["id"], 1)
        status, view = await api.call("GET", f"/api/incidents/{inc['id']}/playbook")
        assert status == 200 and view["stage"] == "advise" and view["advisory"] == "boil_water"
        first = next(c for c in view["slas"] if c["sla"] == "first_notice")
        assert first["state"] == "met"

        # Clean samples 23 hours apart do not lift it; a third one a day after the second does.
        clean = {"details": {"event": "lab_result", "result": "clean"}}
        for n, hours in enumerate((1, 23, 25), start=2):
            clock.advance(timedelta(hours=hours))
            await producer.send_and_wait(topic, report(f"lims-{n}", isoformat(clock.now()), **clean))

            async def linked(count: int = n) -> bool:
                return len(types(await timeline(api, inc["id"]), "report_linked")) >= count

            await wait_until(linked)
            await engine.run_due()
            stage = (await api.call("GET", f"/api/incidents/{inc['id']}"))[1]["stage"]
            assert stage == ("lift" if n == 4 else "advise"), (n, stage)

        events = await timeline(api, inc["id"])
        assert types(events, "advisory_lifted")
        lifted = [e for e in types(events, "notice_planned") if e["data"]["template"] == "advisory_lifted"]
        assert len(lifted) == 1
        assert lifted[0]["data"]["notice_id"] not in {
            e["data"]["notice_id"] for e in types(events, "notice_approved")
        }
        # The daily reminder to the lab fired once a day while the advisory was in force, once each.
        reminders = [
            e for e in types(events, "page_sent") if ":timer:sample_reminder:" in e["data"]["action"]
        ]
        assert [e["data"]["action"] for e in reminders] == [
            f"advise#1:timer:sample_reminder:{i}" for i in (1, 2)
        ]
        status, view = await api.call("GET", f"/api/incidents/{inc['id']}/playbook")
        assert view["stage"] == "lift" and view["advisory"] is None
        assert not [t for t in view["timers"] if t["timer"].startswith("advise#1:")]  # cancelled on leaving
    finally:
        await producer.stop()


async def test_an_sla_breach_is_recorded_once_and_escalated(apps: Apps, clock: ManualClock) -> None:
    api = await _app(apps, kafka_env(apps.broker, send=True))
    engine = api.client.app[PLAYBOOKS]
    inc = await api.declare(area=BOX)
    await engine.run_due()
    assert (await api.call("GET", f"/api/incidents/{inc['id']}"))[1]["stage"] == "assess"
    # The dispatcher moves on to notify; the notice waits for approval... and nobody approves.
    status, moved = await api.call("POST", f"/api/incidents/{inc['id']}/stage", json={"stage": "notify"})
    assert status == 200 and moved["stage"] == "notify"
    status, err = await api.call("POST", f"/api/incidents/{inc['id']}/stage", json={"stage": "notify"})
    assert status == 409, err
    status, err = await api.call("POST", f"/api/incidents/{inc['id']}/stage", json={"stage": "nowhere"})
    assert status == 422 and "assess" in err["error"]["message"]
    status, _ = await api.call("POST", f"/api/incidents/{inc['id']}/stage", "rita", json={"stage": "repair"})
    assert status == 403
    await engine.run_due()
    events = await timeline(api, inc["id"])
    # Held: a drawn area and no description of it for households (never the title).
    [held] = types(events, "notice_held")
    assert held["data"]["template"] == "main_break" and held["data"]["missing_facts"] == ["area"]
    assert not types(events, "sla_breached")
    for _ in range(3):  # past the 30 minutes, looked at again and again: one breach
        clock.advance(timedelta(minutes=16))
        await engine.run_due()
    events = await timeline(api, inc["id"])
    [breach] = types(events, "sla_breached")
    assert breach["data"]["sla"] == "first_notice" and "command" in breach["data"]["escalated_to"]
    escalations = [
        e for e in types(events, "page_sent") if e["data"]["action"].startswith("sla:first_notice:")
    ]
    assert {e["data"]["rota"] for e in escalations} == set(breach["data"]["escalated_to"])
    status, view = await api.call("GET", f"/api/incidents/{inc['id']}/playbook")
    first = next(c for c in view["slas"] if c["sla"] == "first_notice")
    assert first["state"] == "breached" and first["met_at"] is None
    # The after-action report names the breach.
    status, html = await api.call("GET", f"/api/incidents/{inc['id']}/report", "rita")
    assert (status == 200 and "first_notice" in html) or "First notice" in html


async def test_timers_survive_a_restart_and_fire_once_across_instances(
    apps: Apps, clock: ManualClock
) -> None:
    env = kafka_env(apps.broker)
    first = await _app(apps, env)
    inc = await first.declare(area=BOX)
    await first.client.app[PLAYBOOKS].run_due()
    await first.call("POST", f"/api/incidents/{inc['id']}/stage", json={"stage": "repair"})
    await first.client.app[PLAYBOOKS].run_due()
    store: Store = first.client.app[STORE]
    [timer] = [t for t in await store.list_timers(inc["id"]) if ":etr_update:" in t.timer_id]
    await first.client.close()  # the instance that scheduled it is gone

    # Two instances share the store; two hours later both look at once.
    second = await _app(apps, env)
    third = await _app(apps, env)
    clock.advance(timedelta(hours=2, minutes=1))
    await asyncio.gather(second.client.app[PLAYBOOKS].run_due(), third.client.app[PLAYBOOKS].run_due())
    # One of them may have found the incident's lease taken and put the timer off a moment.
    clock.advance(timedelta(seconds=5))
    await second.client.app[PLAYBOOKS].run_due()
    await third.client.app[PLAYBOOKS].run_due()
    events = await timeline(second, inc["id"])
    fired = [e for e in events if e["data"].get("action") == "repair#1:timer:etr_update:1"]
    assert len(fired) == 1, fired  # the ETR-update notice (or why it could not be planned), once
    after = {t.timer_id: t for t in await second.client.app[STORE].list_timers(inc["id"])}
    assert after[timer.timer_id].state == "done"
    assert after[timer.timer_id.replace(":1", ":2")].state == "pending"  # the next round is waiting


DEFAULT_PLAYBOOKS = sorted(p.stem for p in (BUNDLED_DIR / "playbooks").glob("*.yaml"))


@pytest.mark.parametrize("name", DEFAULT_PLAYBOOKS)
async def test_every_default_playbook_runs_from_declaration_to_close(
    name: str, apps: Apps, clock: ManualClock
) -> None:
    api = await _app(apps, kafka_env(apps.broker, send=True))
    engine = api.client.app[PLAYBOOKS]
    playbook = engine.playbooks[name]
    assert playbook.match is not None
    start = clock.now() + timedelta(days=3)
    fields: dict[str, Any] = {
        "kind": playbook.match.kinds[0].value,
        "utility": (playbook.match.utilities or ("water",))[0],
        "title": f"Drill of {name}", "area": BOX, "playbook": name,
        "start": start.isoformat(), "end": (start + timedelta(hours=6)).isoformat(),
    }  # fmt: skip
    if not isinstance(fields["utility"], str):
        fields["utility"] = fields["utility"].value
    inc = await api.declare(**fields)
    iid = inc["id"]
    visited: list[str] = []
    for _ in range(60):
        await engine.run_due()
        _, now = await api.call("GET", f"/api/incidents/{iid}")
        if now["stage"] and (not visited or visited[-1] != now["stage"]):
            visited.append(now["stage"])
        if now["status"] in ("closed", "cancelled"):
            break
        events = await timeline(api, iid)
        if types(events, "etr_requested") and now["etr"] is None:
            etr = (clock.now() + timedelta(hours=5)).isoformat()
            assert (await api.call("POST", f"/api/incidents/{iid}/etr", json={"etr": etr}))[0] == 200
        _, notices = await api.call("GET", f"/api/incidents/{iid}/notices")
        for notice in notices["notices"]:
            if notice["status"] not in ("planned", "held"):
                continue
            path = f"/api/incidents/{iid}/notices/{notice['notice_id']}"
            if notice["status"] == "held" or notice["stale"]:  # the dispatcher gives what is missing
                if not now["area_description"]:
                    described = await api.call("PUT", f"/api/incidents/{iid}/area/description", json=WHERE)
                    assert described[0] == 200, described
                status, again = await api.call("POST", path + "/replan")
                assert status == 201, again
                path = f"/api/incidents/{iid}/notices/{again['notice']['notice_id']}"
            # The dispatcher approves what waits for approval.
            assert (await api.call("POST", path + "/approve"))[0] == 200

        async def handed_over() -> bool:
            _, d = await api.call("GET", f"/api/incidents/{iid}/deliveries")
            states = {s for by_state in d["counts"].values() for s in by_state}
            return not states & {"planned", "queued", "sending"}

        await wait_until(handed_over)
        clock.advance(timedelta(seconds=3))
        await engine.run_due()
        _, after = await api.call("GET", f"/api/incidents/{iid}")
        if after["stage"] != now["stage"] or after["status"] != now["status"]:
            continue
        clock.advance(timedelta(hours=6))  # time passes: timers and 'after' exits
        await engine.run_due()
        _, later = await api.call("GET", f"/api/incidents/{iid}")
        if later["stage"] == now["stage"]:  # nothing moves it but a person (or a report): move on by hand
            ids = [s.id for s in playbook.stages]
            following = ids[ids.index(now["stage"]) + 1]
            status, body = await api.call("POST", f"/api/incidents/{iid}/stage", json={"stage": following})
            assert status == 200, body
    assert visited == [s.id for s in playbook.stages]
    events = await timeline(api, iid)
    failed = [e["data"]["text"] for e in types(events, "note_added") if "failed" in e["data"]["text"]]
    assert failed == []
    planned = {e["data"]["notice_id"] for e in types(events, "notice_planned")}
    planned -= {e["data"]["replaces"] for e in types(events, "notice_planned") if "replaces" in e["data"]}

    async def all_sent() -> bool:  # a notice approved just before the close still goes out
        clock.advance(timedelta(seconds=3))
        await engine.run_due()
        return planned == {e["data"]["notice_id"] for e in types(await timeline(api, iid), "notice_sent")}

    await wait_until(all_sent)
    assert planned
    assert (await api.call("GET", f"/api/incidents/{iid}/integrity"))[1]["ok"]


async def test_closing_stops_the_playbook_and_only_the_owner_or_command_steer(
    apps: Apps, clock: ManualClock
) -> None:
    api = await _app(apps, kafka_env(apps.broker))
    engine, store = api.client.app[PLAYBOOKS], api.client.app[STORE]
    inc = await api.declare(area=BOX)  # alice owns it
    await engine.run_due()
    status, err = await api.call("POST", f"/api/incidents/{inc['id']}/stage", "bob", json={"stage": "repair"})
    assert status == 403, err  # another dispatcher
    status, _ = await api.call(
        "POST", f"/api/incidents/{inc['id']}/etr", "bob", json={"etr": "2026-11-22T20:00:00+00:00"}
    )
    assert status == 403
    assert (await api.call("POST", f"/api/incidents/{inc['id']}/stage", "carol", json={"stage": "repair"}))[
        0
    ] == 200
    await engine.run_due()
    assert [
        t.timer_id
        for t in await store.list_timers(inc["id"])
        if t.state == "pending" and ":etr_update:" in t.timer_id
    ]
    status, _ = await api.call("POST", f"/api/incidents/{inc['id']}/status", json={"status": "closed"})
    assert status == 200
    before = len(await timeline(api, inc["id"]))
    for _ in range(3):
        clock.advance(timedelta(hours=3))
        await engine.run_due()
    assert len(await timeline(api, inc["id"])) == before  # no ETR updates, no SLA pages after the close
    assert not [t for t in await store.list_timers(inc["id"]) if t.state in ("pending", "claimed")]


async def test_reminders_already_past_for_late_planned_work_go_out_once(
    apps: Apps, clock: ManualClock
) -> None:
    api = await _app(apps, kafka_env(apps.broker))
    engine, store = api.client.app[PLAYBOOKS], api.client.app[STORE]
    start = clock.now() + timedelta(hours=20)  # declared late: the 48 h and 24 h notices are past
    inc = await api.declare(kind="planned_outage", title="Valve work", area=BOX, start=start.isoformat(),
                            end=(start + timedelta(hours=4)).isoformat())  # fmt: skip
    await engine.run_due()
    timers = {t.timer_id.split(":")[-2]: t for t in await store.list_timers(inc["id"]) if "#" in t.timer_id}
    assert set(timers) == {"notice_24h", "reminder"}  # the 48 h one is not sent on top of it
    assert timers["reminder"].due_at == isoformat(start - timedelta(hours=2))


async def test_an_auto_notice_cut_short_before_its_approval_is_approved_on_the_next_look(
    apps: Apps, clock: ManualClock
) -> None:
    from incident.core.auth import Principal
    from incident.core.domain import Role
    from incident.households.model import Channel
    from incident.keys import NOTICES, SERVICE_AREA
    from incident.notices.context import TemplateKey
    from incident.notices.service import NoticeFacts, NoticeRequest

    api = await _app(apps, kafka_env(apps.broker))
    engine, app = api.client.app[PLAYBOOKS], api.client.app
    inc = await api.declare(area=BOX, kind="low_pressure", title="Low pressure")
    await engine.run_due()
    # As if the engine planned an auto notice and died before approving it.
    request = NoticeRequest(
        template=TemplateKey.low_pressure, channels=[Channel.sms], facts=NoticeFacts(area="x")
    )
    planned = await app[NOTICES].plan(inc["id"], request, Principal("system:playbook", Role.admin),
                                      app[SERVICE_AREA].value, 30.0, action="assess#1:timer:x:1", auto_approve=True)  # fmt: skip
    await engine.evaluate(inc["id"])
    _, notice = await api.call("GET", f"/api/incidents/{inc['id']}/notices/{planned.notice.notice_id}")
    assert notice["status"] == "approved"


async def test_an_auto_notice_without_a_public_area_text_is_held_not_sent_until_described(
    apps: Apps, clock: ManualClock
) -> None:
    api = await _app(apps, kafka_env(apps.broker, send=True))
    engine = api.client.app[PLAYBOOKS]
    # Declared by hand with a drawn area: the boil-water notice is `approval: auto`, but nothing
    # tells households where in their words (the title is a lab's note, never public text).
    inc = await api.declare(
        kind="contamination", title="E. coli positive at sample tap ST-08 (routine sample S-5521)", area=BOX
    )
    iid = inc["id"]
    await engine.run_due()
    events = await timeline(api, iid)
    [held] = types(events, "notice_held")
    assert held["data"]["template"] == "boil_water" and held["data"]["missing_facts"] == ["area"]
    assert held["data"]["action"] == "advise#1:enter:2" and held["data"]["households"] > 0
    assert not types(events, "notice_planned") and not types(events, "notice_approved")
    [note] = [e for e in types(events, "note_added") if "area not computed" in e["data"]["text"]]
    assert (
        "no report came with this incident" in note["data"]["text"] and "gives no" not in note["data"]["text"]
    )
    [page] = types(events, "page_sent")
    assert page["data"]["text"].startswith("Contamination") and "?" not in page["data"]["text"]
    nid = held["data"]["notice_id"]
    status, notice = await api.call("GET", f"/api/incidents/{iid}/notices/{nid}")
    assert notice["status"] == "held" and notice["missing_facts"] == ["area"] and "area" in notice["message"]
    status, err = await api.call("POST", f"/api/incidents/{iid}/notices/{nid}/approve")
    assert status == 409 and err["error"]["code"] == "notice_held"
    for _ in range(3):  # the engine looks again and again: still nothing goes out
        clock.advance(timedelta(minutes=5))
        await engine.run_due()
    events = await timeline(api, iid)
    assert not types(events, "notice_approved") and not types(events, "notice_sent")
    _, deliveries = await api.call("GET", f"/api/incidents/{iid}/deliveries")
    assert deliveries["counts"] == {}

    # The dispatcher describes the area and plans it again: the texts say it; a person approves.
    assert (await api.call("PUT", f"/api/incidents/{iid}/area/description", json=WHERE))[0] == 200
    status, again = await api.call("POST", f"/api/incidents/{iid}/notices/{nid}/replan")
    assert status == 201, again
    new = again["notice"]
    assert new["status"] == "planned" and new["action"] == "advise#1:enter:2" and new["replaces"] == nid
    assert all(WHERE[p["language_used"]] in p["text"] and "ST-08" not in p["text"] for p in new["previews"])
    await engine.run_due()
    assert not types(await timeline(api, iid), "notice_approved")  # a person approves what a person planned
    status, _ = await api.call("POST", f"/api/incidents/{iid}/notices/{new['notice_id']}/approve")
    assert status == 200
    await until_notices_sent(api, engine, clock, iid, 1)
    status, view = await api.call("GET", f"/api/incidents/{iid}/playbook")
    assert next(c for c in view["slas"] if c["sla"] == "first_notice")["state"] in ("met", "breached")


async def test_pages_name_the_kind_and_say_when_households_are_not_known_yet(
    apps: Apps, clock: ManualClock
) -> None:
    api = await _app(apps, kafka_env(apps.broker))
    engine = api.client.app[PLAYBOOKS]
    inc = await api.declare(kind="unplanned_outage", title="No water on Oak St")  # no area, no report
    await engine.run_due()
    events = await timeline(api, inc["id"])
    [page] = types(events, "page_sent")
    text = page["data"]["text"]
    assert text.startswith("Unplanned outage") and "Main break" not in text and "?" not in text
    assert "not known yet" in text
    [note] = [e for e in types(events, "note_added") if "area not computed" in e["data"]["text"]]
    assert "no report came with this incident" in note["data"]["text"]
    assert "choose the broken pipe" in note["data"]["text"]
