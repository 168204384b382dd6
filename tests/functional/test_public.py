"""The residents' side: the public flag, what residents see, and the public API."""

from __future__ import annotations

from typing import Any

import msgspec

from incident.keys import PUBLIC
from tests.support.app import Api
from tests.support.sample import BOX

FACTS = {"area": "Maple St and Walnut Rd", "etr": "2026-11-22T18:00:00+00:00"}


async def _notice(api: Api, incident_id: str, template: str = "boil_water") -> str:
    status, planned = await api.call(
        "POST", f"/api/incidents/{incident_id}/notices",
        json={"template": template, "channels": ["sms"], "facts": FACTS},
    )  # fmt: skip
    assert status == 201, planned
    notice_id: str = planned["notice"]["notice_id"]
    status, approved = await api.call("POST", f"/api/incidents/{incident_id}/notices/{notice_id}/approve")
    assert status == 200, approved
    return notice_id


async def _public(api: Api) -> list[dict[str, Any]]:
    seen = await api.client.app[PUBLIC].incidents()
    return [msgspec.to_builtins(i) for i in seen]


async def test_a_dispatcher_makes_an_incident_public_and_takes_it_off(api: Api) -> None:
    inc = await api.declare(area=BOX, title="Main break on Maple St — crew says valve 7 stuck")
    assert inc["public"] is False and await _public(api) == []
    path = f"/api/incidents/{inc['id']}/public"

    status, body = await api.call("POST", path, who="rita", json={"public": True})
    assert status == 403, body
    status, body = await api.call("POST", path, json={"public": "yes"})
    assert status == 422, body
    status, body = await api.call("POST", path, json={"public": True, "reason": "press asked"})
    assert status == 200 and body["public"] is True
    status, again = await api.call("POST", path, json={"public": True})
    assert status == 409 and again["error"]["code"] == "illegal_transition"

    [seen] = await _public(api)
    assert seen["id"] == inc["id"] and seen["status"] == "declared" and seen["advice"] is None
    assert seen["area"] == body["area"] and seen["households"] == body["households"] > 0
    assert "title" not in seen and "valve 7" not in msgspec.json.encode(seen).decode()

    status, body = await api.call("POST", path, json={"public": False})
    assert status == 200 and body["public"] is False
    assert await _public(api) == []
    _, timeline = await api.call("GET", f"/api/incidents/{inc['id']}/timeline")
    assert [e["type"] for e in timeline["events"]][-2:] == ["made_public", "made_internal"]
    assert timeline["integrity"]["ok"]


async def test_an_approved_notice_makes_the_incident_public_with_its_advice(api: Api) -> None:
    inc = await api.declare(area=BOX)
    notice_id = await _notice(api, inc["id"])
    _, timeline = await api.call("GET", f"/api/incidents/{inc['id']}/timeline")
    made = timeline["events"][-1]
    assert made["type"] == "made_public" and made["data"] == {"notice_id": notice_id}
    [seen] = await _public(api)
    advice = seen["advice"]
    assert advice["template"] == "boil_water" and set(advice["text"]) == {"en", "zh-CN"}
    assert "Maple St and Walnut Rd" in advice["text"]["en"] and "煮沸" in advice["text"]["zh-CN"]

    # A second notice keeps it public (no second event) and becomes the advice.
    await _notice(api, inc["id"], "etr_update")
    _, timeline = await api.call("GET", f"/api/incidents/{inc['id']}/timeline")
    assert [e["type"] for e in timeline["events"]].count("made_public") == 1
    [seen] = await _public(api)
    assert seen["advice"]["template"] == "etr_update"

    # Closed: residents no longer see it.
    for to in ("active", "closed"):
        status, _ = await api.call("POST", f"/api/incidents/{inc['id']}/status", json={"status": to})
        assert status == 200
    assert await _public(api) == []


async def test_a_drill_is_never_public(api: Api) -> None:
    drill = await api.declare(area=BOX, drill=True)
    status, body = await api.call("POST", f"/api/incidents/{drill['id']}/public", json={"public": True})
    assert status == 409 and body["error"]["code"] == "drill_not_public", body
    await _notice(api, drill["id"])
    _, timeline = await api.call("GET", f"/api/incidents/{drill['id']}/timeline")
    assert "made_public" not in [e["type"] for e in timeline["events"]]
    assert await _public(api) == []
