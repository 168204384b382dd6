"""The dispatcher sends only what they have read (issue 17): public facts are the
dispatcher's (never the title), the texts that go out are stored and shown, a preview stores
nothing, a stale plan cannot be approved, only the owner (or command staff, or an admin)
plans and approves, and the optional two-person rule. Over HTTP, on both stores."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from incident.households import Channel
from incident.keys import TEMPLATES
from incident.notices.context import NoticeContext
from tests.support.app import Api, Apps
from tests.support.sample import BOX

TITLE = "Strong smell of gas outside 5048 Sycamore Ct, caller is outside"
#: The western half of BOX: fewer households.
HALF = {
    "type": "Polygon",
    "coordinates": [[[-85.56, 38.02], [-85.545, 38.02], [-85.545, 38.05], [-85.56, 38.05], [-85.56, 38.02]]],
}
WHERE = {"en": "Maple St between 1st and 5th Ave", "zh-CN": "枫树街第一至第五大道之间"}
NOTICE = {"template": "main_break", "channels": ["sms", "voice"]}


def _n(inc: dict[str, Any], rest: str = "") -> str:
    return f"/api/incidents/{inc['id']}/notices{rest}"


async def _described(api: Api, **fields: Any) -> dict[str, Any]:
    inc = await api.declare(area=BOX, title=TITLE, **fields)
    status, body = await api.call("PUT", f"/api/incidents/{inc['id']}/area/description", json=WHERE)
    assert status == 200, body
    return inc


async def test_the_area_description_is_what_notices_say_never_the_title(api: Api) -> None:
    inc = await api.declare(area=BOX, title=TITLE)
    path = f"/api/incidents/{inc['id']}/area/description"
    status, err = await api.call("PUT", path, "bob", json=WHERE)
    assert status == 403 and err["error"]["code"] == "not_owner"
    for bad in ({}, {"en": ""}, {"not a tag!": "x"}, {"en": "x" * 301}):
        status, err = await api.call("PUT", path, json=bad)
        assert status == 422, (bad, err)
    status, got = await api.call("PUT", path, json=WHERE)
    assert status == 200 and got["area_description"] == WHERE
    _, timeline = await api.call("GET", f"/api/incidents/{inc['id']}/timeline")
    [described] = [e for e in timeline["events"] if e["type"] == "area_described"]
    assert described["data"]["description"] == WHERE and described["actor"] == "alice"

    status, planned = await api.call("POST", _n(inc), json=NOTICE)
    assert status == 201, planned
    notice = planned["notice"]
    assert notice["context"]["area_i18n"] == WHERE
    texts = {(p["channel"], p["language_used"]): p["text"] for p in notice["previews"]}
    assert texts, notice
    for (_, language), text in texts.items():
        assert WHERE[language] in text and "Sycamore" not in text and TITLE not in text


async def test_zone_names_are_the_where_of_an_area_of_zones(api: Api) -> None:
    inc = await api.declare(title=TITLE)
    _, layers = await api.call("GET", "/api/layers")
    for feature in layers["features"]:
        zone = feature["properties"]["id"]
        _, area = await api.call("PUT", f"/api/incidents/{inc['id']}/area", json={"zones": [zone]})
        if area["households"]:
            break
    status, planned = await api.call("POST", _n(inc), json={"template": "boil_water", "channels": ["sms"]})
    assert status == 201, planned
    by_language = {p["language_used"]: p["text"] for p in planned["previews"]}
    name = feature["properties"]["name"]
    assert name in by_language["en"]
    number = name.split()[-1]
    assert f"计量分区{int(number)}" in by_language["zh-CN"] or f"压力区{int(number)}" in by_language["zh-CN"]


async def test_get_of_a_notice_has_the_exact_texts_with_their_households(api: Api) -> None:
    inc = await _described(api, drill=True)
    status, planned = await api.call("POST", _n(inc), json={**NOTICE, "channels": ["sms", "voice", "push"]})
    assert status == 201, planned
    notice_id = planned["notice"]["notice_id"]
    status, notice = await api.call("GET", _n(inc, f"/{notice_id}"), "rita")
    assert status == 200
    previews = notice["previews"]
    assert previews == planned["previews"]
    counts = notice["counts"]
    for channel in ("sms", "voice", "push"):
        mine = [p for p in previews if p["channel"] == channel]
        assert sum(p["households"] for p in mine) == counts["by_channel"].get(channel, 0)
        assert {p["language_requested"] for p in mine if p["households"]} == set(
            counts["by_channel_language"][channel]
        )
    # Exactly what the sender renders from the stored context, drill marker and all.
    templates = api.client.app[TEMPLATES]
    context = msgspec.convert(notice["context"], NoticeContext)
    for p in previews:
        sent = templates.render("main_break", Channel(p["channel"]), p["language_requested"], context).text
        assert p["text"] == sent
        assert "drill" in sent.lower() or "演习" in sent
    sms = [p for p in previews if p["channel"] == "sms"]
    assert all(p["segments"] >= 1 for p in sms)


async def test_a_preview_stores_nothing(api: Api) -> None:
    inc = await _described(api)
    _, before = await api.call("GET", f"/api/incidents/{inc['id']}")
    for _ in range(2):
        status, preview = await api.call("POST", _n(inc, "/preview"), json=NOTICE)
        assert status == 200, preview
    assert preview["previews"] and preview["counts"]["households"] > 0
    assert all(WHERE[p["language_used"]] in p["text"] for p in preview["previews"])
    _, listed = await api.call("GET", _n(inc))
    assert listed["notices"] == []
    _, after = await api.call("GET", f"/api/incidents/{inc['id']}")
    assert after["last_seq"] == before["last_seq"]  # nothing on the timeline
    status, planned = await api.call("POST", _n(inc), json=NOTICE)
    assert planned["notice"]["notice_id"] == f"{inc['id']}-N1"  # no number used up
    assert planned["notice"]["counts"] == preview["counts"]
    assert planned["previews"] == preview["previews"]
    # No area text: counts, but no texts, and which fact is missing.
    bare = await api.declare(area=BOX)
    status, preview = await api.call("POST", _n(bare, "/preview"), json=NOTICE)
    assert status == 200 and preview["missing_facts"] == ["area"] and preview["previews"] == []
    assert preview["counts"]["households"] > 0
    assert (await api.call("POST", _n(inc, "/preview"), "rita", json=NOTICE))[0] == 403


async def test_a_plan_made_stale_by_an_area_or_fact_change_cannot_be_approved(api: Api) -> None:
    inc = await _described(api)
    _, first = await api.call("POST", _n(inc), json=NOTICE)
    old = first["notice"]
    status, area = await api.call("PUT", f"/api/incidents/{inc['id']}/area", json={"geometry": HALF})
    assert status == 200 and area["households"] < old["counts"]["households"]
    status, got = await api.call("GET", _n(inc, f"/{old['notice_id']}"))
    assert got["stale"] is True and got["stale_facts"] == ["area"] and "area" in got["message"]
    status, err = await api.call("POST", _n(inc, f"/{old['notice_id']}/approve"))
    assert status == 409 and err["error"]["code"] == "notice_stale"
    _, listed = await api.call("GET", _n(inc))
    assert [n["stale"] for n in listed["notices"]] == [True]

    status, again = await api.call("POST", _n(inc, f"/{old['notice_id']}/replan"))
    assert status == 201, again
    new = again["notice"]
    assert new["replaces"] == old["notice_id"] and new["counts"]["households"] == area["households"]
    _, superseded = await api.call("GET", _n(inc, f"/{old['notice_id']}"))
    assert superseded["status"] == "superseded" and superseded["superseded_by"] == new["notice_id"]
    status, err = await api.call("POST", _n(inc, f"/{old['notice_id']}/approve"))
    assert status == 409

    # A fact changed (the ETR) also makes it stale.
    status, _ = await api.call(
        "POST", f"/api/incidents/{inc['id']}/etr", json={"etr": "2026-11-22T18:00:00+00:00"}
    )
    assert status == 200
    status, err = await api.call("POST", _n(inc, f"/{new['notice_id']}/approve"))
    assert status == 409 and err["error"]["code"] == "notice_stale" and "etr" in err["error"]["message"]
    _, third = await api.call("POST", _n(inc, f"/{new['notice_id']}/replan"))
    status, approved = await api.call("POST", _n(inc, f"/{third['notice']['notice_id']}/approve"))
    assert status == 200 and approved["status"] == "approved"
    # Deliveries of the superseded plans never go out.
    released, after = set(), ""
    while after is not None:
        _, page = await api.call("GET", f"/api/incidents/{inc['id']}/deliveries?limit=1000&after={after}")
        released |= {r["notice_id"] for r in page["rows"] if r["state"] != "draft"}
        after = page["next_after"]
    assert released == {approved["notice_id"]}


async def test_only_the_owner_command_staff_or_an_admin_plan_and_approve(api: Api) -> None:
    inc = await _described(api)  # alice owns it
    status, err = await api.call("POST", _n(inc), "bob", json=NOTICE)
    assert status == 403 and err["error"]["code"] == "not_owner"
    _, planned = await api.call("POST", _n(inc), "carol", json=NOTICE)  # command staff
    notice_id = planned["notice"]["notice_id"]
    status, err = await api.call("POST", _n(inc, f"/{notice_id}/approve"), "bob")
    assert status == 403 and err["error"]["code"] == "not_owner"
    status, err = await api.call("POST", _n(inc, f"/{notice_id}/replan"), "bob")
    assert status == 403 and err["error"]["code"] == "not_owner"
    _, listed = await api.call("GET", _n(inc))
    assert [n["notice_id"] for n in listed["notices"]] == [notice_id]  # bob changed nothing
    status, approved = await api.call("POST", _n(inc, f"/{notice_id}/approve"), "root")
    assert status == 200 and approved["approved_by"] == "root"


@pytest.fixture
async def two_person(apps: Apps) -> Api:
    return await apps.make(INCIDENT_NOTIFY__APPROVALS_REQUIRED="2")


async def test_the_two_person_rule_releases_a_live_notice_at_the_second_approval(two_person: Api) -> None:
    api = two_person
    inc = await _described(api)
    _, planned = await api.call("POST", _n(inc), json=NOTICE)
    notice_id = planned["notice"]["notice_id"]
    approve = _n(inc, f"/{notice_id}/approve")
    status, first = await api.call("POST", approve)
    assert (
        status == 200 and first["status"] == "planned" and [a["by"] for a in first["approvals"]] == ["alice"]
    )
    _, deliveries = await api.call("GET", f"/api/incidents/{inc['id']}/deliveries")
    assert set(deliveries["counts"]["sms"]) == {"draft"}  # nothing released yet
    status, err = await api.call("POST", approve)
    assert status == 409 and err["error"]["code"] == "second_approver_needed"
    status, second = await api.call("POST", approve, "carol")
    assert status == 200 and second["status"] == "approved"
    assert [a["by"] for a in second["approvals"]] == ["alice", "carol"]
    _, timeline = await api.call("GET", f"/api/incidents/{inc['id']}/timeline")
    [recorded] = [e for e in timeline["events"] if e["type"] == "notice_approval_recorded"]
    [released] = [e for e in timeline["events"] if e["type"] == "notice_approved"]
    assert recorded["data"]["by"] == "alice" and released["data"]["approved_by"] == ["alice", "carol"]
    _, deliveries = await api.call("GET", f"/api/incidents/{inc['id']}/deliveries")
    assert "draft" not in deliveries["counts"]["sms"]

    # A drill needs one person.
    drill = await _described(api, drill=True)
    _, planned = await api.call("POST", _n(drill), json=NOTICE)
    status, done = await api.call("POST", _n(drill, f"/{planned['notice']['notice_id']}/approve"))
    assert status == 200 and done["status"] == "approved"
