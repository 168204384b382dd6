"""The residents' side: the public flag, what residents see, and the public API."""

from __future__ import annotations

from typing import Any

import msgspec
from multidict import CIMultiDict

from incident.keys import PUBLIC
from tests.support.app import Api
from tests.support.ingest import call_centre_report, put_reports
from tests.support.sample import BOX
from tests.support.wait import wait_until

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


# --- the public API: no token ----------------------------------------------------------------

INSIDE = (-85.545, 38.035)  # the middle of BOX
NEAR = (-85.5285, 38.035)  # ~130 m east of BOX's east edge (-85.53)
FAR = (-85.60, 38.00)


async def _get(api: Api, path: str, **headers: str) -> tuple[int, Any, CIMultiDict[str]]:
    async with api.client.get(path, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, CIMultiDict(resp.headers)


def _personal(text: str) -> list[str]:
    """Anything of a household in ``text``: a phone number, an account id, an address."""
    import csv
    import re

    from tests.support.sample import SAMPLE

    found = re.findall(r"\+\d{8,15}", text)
    with SAMPLE.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for value in (row.get("account_id"), row.get("address")):
                if value and len(value) > 5 and value in text:
                    found.append(value)
    return found


REPORT_TEXT = "Mrs Lee, 8111 Maple St, says the water is brown"


async def _scenario(api: Api) -> dict[str, Any]:
    """One public incident with a sent notice, one internal one, one drill, one closed."""
    public = await api.declare(area=BOX, title="Main break — internal: valve V-7 seized, Bob drunk")
    status, described = await api.call(
        "PUT",
        f"/api/incidents/{public['id']}/area/description",
        json={"en": "Maple St and Walnut Rd", "zh-CN": "枫树街和胡桃路"},
    )
    assert status == 200, described
    await api.call("POST", f"/api/incidents/{public['id']}/notes", json={"text": "call +15550000000 back"})
    report = msgspec.structs.replace(call_centre_report("R-PUBLIC-1"), summary=REPORT_TEXT)
    await put_reports(api, report)
    status, linked = await api.call(
        "POST", "/api/reports/R-PUBLIC-1/link", json={"incident_id": public["id"]}
    )
    assert status == 200, linked
    await _notice(api, public["id"])
    internal = await api.declare(area=BOX, title="Internal only")
    drill = await api.declare(area=BOX, drill=True)
    await _notice(api, drill["id"])
    closed = await api.declare(area=BOX)
    await api.call("POST", f"/api/incidents/{closed['id']}/public", json={"public": True})
    await api.call("POST", f"/api/incidents/{closed['id']}/status", json={"status": "cancelled"})
    return {"public": public, "internal": internal, "drill": drill, "closed": closed}


async def test_residents_see_only_open_public_incidents_and_nothing_personal(api: Api) -> None:
    made = await _scenario(api)
    status, body, headers = await _get(api, "/public/api/incidents?lang=zh-CN")
    assert status == 200, body
    assert [i["id"] for i in body["incidents"]] == [made["public"]["id"]]
    [seen] = body["incidents"]
    assert body["language"] == "zh-CN" and body["near_m"] == 250.0 and len(body["bounds"]) == 4
    assert seen["area"]["type"] == "Polygon" and seen["area_description"] == "枫树街和胡桃路"
    assert seen["advice"]["language"] == "zh-CN" and "煮沸" in seen["advice"]["text"]
    assert seen["households"] > 0 and seen["kind"] == "main_break"
    assert set(seen) == {"id", "kind", "utility", "status", "area", "area_description", "etr", "start",
                         "end", "households", "declared_at", "updated_at", "advice"}  # fmt: skip
    text = str(body)
    assert "valve" not in text and "Bob" not in text and "alice" not in text and _personal(text) == []
    assert "Mrs Lee" not in text and "brown" not in text and "R-PUBLIC-1" not in text
    assert headers["Cache-Control"].startswith("public, max-age=") and headers["ETag"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in headers["Content-Security-Policy"]

    # The same answer again is a 304 on its ETag; the browser's language picks the texts.
    status, _, _ = await _get(api, "/public/api/incidents?lang=zh-CN", **{"If-None-Match": headers["ETag"]})
    assert status == 304
    _, english, _ = await _get(api, "/public/api/incidents", **{"Accept-Language": "fr;q=1, en-GB;q=0.8"})
    assert (
        english["language"] == "en"
        and english["incidents"][0]["area_description"] == "Maple St and Walnut Rd"
    )
    _, chinese, _ = await _get(api, "/public/api/incidents", **{"Accept-Language": "zh-TW,zh;q=0.9"})
    assert chinese["language"] == "zh-CN"


async def test_is_my_address_affected(api: Api) -> None:
    made = await _scenario(api)
    answers = {}
    for name, (lon, lat) in {"inside": INSIDE, "near": NEAR, "far": FAR}.items():
        status, body, headers = await _get(api, f"/public/api/check?lon={lon}&lat={lat}&lang=en")
        assert status == 200, body
        assert headers["Cache-Control"] == "no-store"
        assert [r["id"] for r in body["results"]] == [made["public"]["id"]]
        answers[name] = body
    assert answers["inside"]["answer"] == "affected" and answers["inside"]["results"][0]["distance_m"] == 0
    advice = answers["inside"]["results"][0]["advice"]
    assert advice["language"] == "en" and "Maple St and Walnut Rd" in advice["text"]
    assert answers["near"]["answer"] == "near" and 100 < answers["near"]["results"][0]["distance_m"] < 160
    assert answers["far"]["answer"] == "not_affected"
    assert _personal(str(answers)) == [] and "Mrs Lee" not in str(answers)


async def test_the_check_answers_from_areas_never_from_the_registry(api: Api) -> None:
    """A household's exact point and an empty point in the same area get the same answer, and
    with no public incident every point is "not affected", households or not."""
    import csv

    from tests.support.sample import SAMPLE, rows_inside

    [home, *_] = rows_inside(BOX)
    empty = (-85.5455, 38.0351)
    with SAMPLE.open(encoding="utf-8") as f:
        assert not any((float(r["lon"]), float(r["lat"])) == empty for r in csv.DictReader(f))
    _, none_home, _ = await _get(api, f"/public/api/check?lon={home['lon']}&lat={home['lat']}")
    _, none_empty, _ = await _get(api, f"/public/api/check?lon={empty[0]}&lat={empty[1]}")
    assert none_home["results"] == none_empty["results"] == [] and none_home["answer"] == "not_affected"
    inc = await api.declare(area=BOX)
    await api.call("POST", f"/api/incidents/{inc['id']}/public", json={"public": True})
    _, at_home, _ = await _get(api, f"/public/api/check?lon={home['lon']}&lat={home['lat']}")
    _, at_empty, _ = await _get(api, f"/public/api/check?lon={empty[0]}&lat={empty[1]}")
    assert at_home["results"] == at_empty["results"] and at_home["answer"] == "affected"


async def test_hostile_inputs_are_refused_with_a_message(api: Api) -> None:
    bad = [
        "",  # missing both
        "?lon=-85.5",  # missing lat
        "?lon=nan&lat=38",
        "?lon=inf&lat=38",
        "?lon=-85.5&lat=NaN",
        "?lon=181&lat=38",
        "?lon=-85.5&lat=-90.0001",
        "?lon=1e309&lat=38",
        "?lon=0x10&lat=38",
        "?lon=1_000&lat=38",
        "?lon=" + "9" * 5000 + "&lat=38",
        "?lon=-85.5&lat=38&lat=39",
        "?lon=-85.5&lat=38&lang=" + "x" * 100,
        "?lon=-85.5&lat=38&lang=<script>",
        "?lon=%00&lat=38",
        "?lon=-85.5&lat=+",
    ]
    for query in bad:
        status, body, headers = await _get(api, "/public/api/check" + query)
        assert status == 400, (query[:60], status, body)
        assert body["error"]["code"] == "bad_query" and body["error"]["message"], body
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, body, _ = await _get(api, "/public/api/incidents?lang=" + "é" * 10)
    assert status == 400 and body["error"]["code"] == "bad_query"
    # An unknown but well-formed language is answered in the default one.
    status, body, _ = await _get(api, "/public/api/check?lon=-85.5&lat=38&lang=fr")
    assert status == 200 and body["language"] == "en"


async def test_each_address_has_a_budget_of_requests(apps: Any) -> None:
    api = await apps.make(INCIDENT_PUBLIC__REQUESTS_PER_MINUTE="3")
    for _ in range(3):
        status, _, _ = await _get(api, "/public/api/incidents")
        assert status == 200
    status, body, headers = await _get(api, "/public/api/check?lon=-85.5&lat=38")
    assert status == 429 and body["error"]["code"] == "rate_limited", body
    assert "Content-Security-Policy" in headers and 1 <= int(headers["Retry-After"]) <= 60
    # The staff API is not counted against it.
    status, _ = await api.call("GET", "/api/incidents")
    assert status == 200


async def test_behind_a_proxy_network_the_client_is_its_address_without_the_port(apps: Any) -> None:
    api = await apps.make(
        INCIDENT_PUBLIC__REQUESTS_PER_MINUTE="2",
        INCIDENT_PUBLIC__TRUSTED_PROXIES='["127.0.0.0/8", "::1/128"]',
    )
    for port in (1111, 2222):
        status, _, _ = await _get(api, "/public/api/incidents", **{"X-Forwarded-For": f"203.0.113.5:{port}"})
        assert status == 200
    # Another port is the same client; another client behind the same proxy has its own budget.
    status, _, _ = await _get(api, "/public/api/incidents", **{"X-Forwarded-For": "203.0.113.5:3333"})
    assert status == 429
    status, _, _ = await _get(api, "/public/api/incidents", **{"X-Forwarded-For": "[2001:db8::6]:4444"})
    assert status == 200


async def test_the_page_and_its_files_are_served_with_strict_headers(api: Api) -> None:
    status, page, headers = await _get(api, "/public/")
    assert status == 200 and "Is my address affected?" in page and 'href="/public/signup"' in page
    assert "<script>" not in page and "style=" not in page  # nothing inline: the policy forbids it
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    assert headers["Referrer-Policy"] == "no-referrer"
    for name in ("public.js", "i18n.js", "map.js", "public.css"):
        status, _, headers = await _get(api, f"/public/static/{name}")
        assert status == 200 and headers["X-Content-Type-Options"] == "nosniff", name
    for name in ("index.html", "..%2Fapp.css", "nope.js", "..%2F..%2Fkeys.py"):
        status, _, _ = await _get(api, f"/public/static/{name}")
        assert status == 404, name


async def test_another_instance_shows_a_change_within_its_cache_time(apps: Any) -> None:
    """Each instance reads the public incidents from the shared store at most every
    [public] cache_s; its own changes show at once, another's within cache_s."""
    one = await apps.make(INCIDENT_PUBLIC__CACHE_S="0.5")
    two = await apps.make(INCIDENT_PUBLIC__CACHE_S="0.5")
    _, before, _ = await _get(two, "/public/api/incidents")
    assert before["incidents"] == []
    inc = await one.declare(area=BOX)
    await one.call("POST", f"/api/incidents/{inc['id']}/public", json={"public": True})
    _, here, _ = await _get(one, "/public/api/incidents")
    assert [i["id"] for i in here["incidents"]] == [inc["id"]]  # at once where it changed

    async def seen_there() -> bool:
        _, there, _ = await _get(two, "/public/api/incidents")
        return [i["id"] for i in there["incidents"]] == [inc["id"]]

    await wait_until(seen_there, "the other instance showing the public incident", limit=10)
