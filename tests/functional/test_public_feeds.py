"""The public feeds through the real app: notices approved over HTTP make an incident public;
the CAP Atom feed is read back with feedparser, every entry's link followed and each alert
validated against the OASIS CAP 1.2 schema; the GeoJSON has the open public incidents only;
both answer conditional requests, and drills and internal incidents never show."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree
from multidict import CIMultiDict
from shapely.geometry import Polygon, shape

import incident.review
from incident.core.clock import ManualClock
from incident.keys import FEEDS
from tests.support.app import Api, Apps
from tests.support.sample import BOX, rows_inside

CAP = "urn:oasis:names:tc:emergency:cap:1.2"
NS = {"cap": CAP}
XSD = Path(incident.review.__file__).parent / "CAP-v1.2.xsd"
ATOM = "/public/feeds/cap.atom"
GEOJSON = "/public/feeds/outages.geojson"
#: Every change is seen at once, also one made through another instance.
FRESH = {"INCIDENT_FEEDS__RECHECK_S": "0"}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


async def notify(api: Api, incident_id: str, template: str, **facts: Any) -> str:
    status, planned = await api.call(
        "POST", f"/api/incidents/{incident_id}/notices",
        json={"template": template, "channels": ["sms"], "facts": {"area": "Maple St", **facts}},
    )  # fmt: skip
    assert status == 201, planned
    notice_id: str = planned["notice"]["notice_id"]
    status, approved = await api.call("POST", f"/api/incidents/{incident_id}/notices/{notice_id}/approve")
    assert status == 200, approved
    return notice_id


async def move(api: Api, incident_id: str, *statuses: str) -> None:
    for to in statuses:
        status, body = await api.call("POST", f"/api/incidents/{incident_id}/status", json={"status": to})
        assert status == 200, body


async def get(api: Api, path: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with api.client.get(path, headers=headers) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


def local(api: Api, url: str) -> str:
    """An absolute link of the feed as a path on the test server."""
    base = str(api.client.make_url("")).rstrip("/")
    assert url.startswith(base + "/public/feeds/cap/"), url
    return url.removeprefix(base)


async def read_feed(api: Api, schema: etree.XMLSchema) -> tuple[Any, list[etree._Element]]:
    """The feed as a feed reader sees it, and every alert its entries link, each valid."""
    status, headers, body = await get(api, ATOM)
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    alerts = []
    for entry in feed.entries:
        [link] = [x for x in entry.links if x.type == "application/cap+xml"]
        status, headers, xml = await get(api, local(api, link.href))
        assert status == 200 and headers["Content-Type"].startswith("application/cap+xml")
        alert = etree.fromstring(xml)
        assert schema.validate(alert), schema.error_log
        status, _, again = await get(api, local(api, link.href), **{"If-None-Match": headers["ETag"]})
        assert (status, again) == (304, b"")
        alerts.append(alert)
    return feed, alerts


def cap(element: etree._Element, path: str) -> str:
    return element.findtext(path, namespaces=NS) or ""


def reference(alert: etree._Element) -> str:
    return ",".join(cap(alert, f"cap:{name}") for name in ("sender", "identifier", "sent"))


async def test_the_cap_feed_follows_a_public_incident_to_its_end(
    apps: Apps, clock: ManualClock, schema: etree.XMLSchema
) -> None:
    api = await apps.make(own_url=True, **FRESH)
    inc = await api.declare(area=BOX)
    internal = await api.declare(area=BOX, title="Valve exercise, internal")
    drill = await api.declare(area=BOX, drill=True, title="Drill: main break")
    await notify(api, drill["id"], "main_break")
    feed, alerts = await read_feed(api, schema)
    assert feed.entries == [] and alerts == []  # a drill and an internal incident: nothing

    first = await notify(api, inc["id"], "main_break")
    clock.advance(timedelta(minutes=10))
    second = await notify(api, inc["id"], "etr_update", etr="2026-11-22T18:00:00+00:00")
    feed, alerts = await read_feed(api, schema)
    # Newest first; an Update references the Alert before it.
    assert [cap(a, "cap:identifier") for a in alerts] == [second, first]
    assert [cap(a, "cap:msgType") for a in alerts] == ["Update", "Alert"]
    assert cap(alerts[0], "cap:references") == reference(alerts[1])
    assert {cap(a, "cap:status") for a in alerts} == {"Actual"}
    assert feed.feed.updated_parsed is not None and feed.entries[0].updated == feed.feed.updated
    ids = [e.id for e in feed.entries]
    for entry, alert in zip(feed.entries, alerts, strict=True):
        assert entry.title and entry.summary
        assert entry.published == entry.updated
        assert entry.updated.replace("Z", "") == cap(alert, "cap:sent").replace("-00:00", "")
        infos = alert.findall("cap:info", NS)
        assert sorted(cap(i, "cap:language") for i in infos) == ["en", "zh-CN"]  # one per language
        for info in infos:
            wea = cap(info, "cap:parameter/cap:value")
            assert 0 < len(wea) <= 360
            [polygon] = [p.text or "" for p in info.findall("cap:area/cap:polygon", NS)]
            pairs = [tuple(map(float, p.split(","))) for p in polygon.split()]
            assert pairs[0] == pairs[-1] and Polygon([(lon, lat) for lat, lon in pairs]).equals(shape(BOX))

    await move(api, inc["id"], "active", "closed")
    feed, alerts = await read_feed(api, schema)
    assert [cap(a, "cap:msgType") for a in alerts] == ["Cancel", "Update", "Alert"]
    assert cap(alerts[0], "cap:references") == f"{reference(alerts[2])} {reference(alerts[1])}"
    assert [e.id for e in feed.entries][1:] == ids  # entry ids stay what they were
    every = [etree.tostring(a).decode() for a in alerts]
    assert not any(internal["id"] in text or drill["id"] in text for text in every)

    # Two days on (closed_hours) the closed incident leaves the feed, and the feed is newer.
    _, before, _ = await get(api, ATOM)
    clock.advance(timedelta(hours=49))
    feed, alerts = await read_feed(api, schema)
    _, after, _ = await get(api, ATOM)
    assert feed.entries == []
    assert after["ETag"] != before["ETag"]
    assert parsedate_to_datetime(after["Last-Modified"]) > parsedate_to_datetime(before["Last-Modified"])
    status, _, _ = await get(api, f"/public/feeds/cap/{first}.xml")
    assert status == 404  # nor its alerts


async def test_outages_geojson_has_one_feature_per_open_public_incident(
    apps: Apps, clock: ManualClock
) -> None:
    api = await apps.make(**FRESH)
    inc = await api.declare(area=BOX)
    await api.declare(area=BOX, title="Internal only")
    drill = await api.declare(area=BOX, drill=True)
    await notify(api, drill["id"], "main_break")
    status, headers, body = await get(api, GEOJSON)
    assert status == 200 and headers["Content-Type"].startswith("application/geo+json")
    assert json.loads(body) == {"type": "FeatureCollection", "features": []}

    await notify(api, inc["id"], "main_break")
    etr = (clock.now() + timedelta(hours=3)).isoformat()
    status, answer = await api.call("POST", f"/api/incidents/{inc['id']}/etr", json={"etr": etr})
    assert status == 200, answer
    status, _, body = await get(api, GEOJSON)
    document = json.loads(body)
    [feature] = document["features"]
    assert feature["type"] == "Feature" and feature["id"] == inc["id"]
    assert shape(feature["geometry"]).equals(shape(BOX))
    props = feature["properties"]
    state = (await api.call("GET", f"/api/incidents/{inc['id']}"))[1]
    assert props == {
        "id": inc["id"],
        "kind": "main_break",
        "utility": "water",
        "status": state["status"],
        "households_affected": state["households"],
        "etr": state["etr"],
        "last_update": state["updated_at"],
        "area_description": state["area_description"],
    }
    assert state["households"] > 0

    # A dispatcher takes it off the public side: gone; back on: there again.
    status, answer = await api.call("POST", f"/api/incidents/{inc['id']}/public", json={"public": False})
    assert status == 200, answer
    assert json.loads((await get(api, GEOJSON))[2])["features"] == []
    status, answer = await api.call("POST", f"/api/incidents/{inc['id']}/public", json={"public": True})
    assert status == 200, answer
    assert len(json.loads((await get(api, GEOJSON))[2])["features"]) == 1

    await move(api, inc["id"], "active", "closed")
    status, _, body = await get(api, GEOJSON)
    assert json.loads(body)["features"] == []


async def test_feeds_answer_conditional_requests_and_are_built_once_per_change(
    apps: Apps, clock: ManualClock
) -> None:
    api = await apps.make(**FRESH)
    other = await apps.make(**FRESH)  # a second instance on the same store
    inc = await api.declare(area=BOX)
    await notify(api, inc["id"], "main_break")
    for path in (ATOM, GEOJSON):
        status, headers, body = await get(api, path)
        assert status == 200 and body
        assert headers["Cache-Control"] == "public, max-age=60"
        assert headers["Access-Control-Allow-Origin"] == "*"
        etag, modified = headers["ETag"], headers["Last-Modified"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
        for conditional in ({"If-None-Match": etag}, {"If-None-Match": f'"x", W/{etag}'},
                            {"If-Modified-Since": modified}):  # fmt: skip
            status, again, body = await get(api, path, **conditional)
            assert (status, body, again["ETag"]) == (304, b"", etag)
        # Another instance builds the same bytes: the same ETag and date.
        status, there, _ = await get(other, path, **{"If-None-Match": etag})
        assert status == 304 and there["Last-Modified"] == modified
        # A stale copy, an unreadable date, a date we never gave: the whole feed.
        for stale in ({"If-None-Match": '"0123"'}, {"If-Modified-Since": "yesterday"},
                      {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"},
                      {"If-None-Match": '"0123"', "If-Modified-Since": modified}):  # fmt: skip
            status, _, body = await get(api, path, **stale)
            assert status == 200 and body

    builds = api.client.app[FEEDS].builds
    for _ in range(5):
        await get(api, ATOM)
        await get(api, GEOJSON)
    assert api.client.app[FEEDS].builds == builds  # nothing changed: nothing built

    _, before, _ = await get(api, GEOJSON)
    # A change made through the other instance shows here (the key is the incidents' sequence numbers).
    clock.advance(timedelta(minutes=1))
    await other.call("POST", f"/api/incidents/{inc['id']}/notes", json={"text": "crew on site"})
    _, after, _ = await get(api, GEOJSON)
    assert after["ETag"] != before["ETag"]
    assert api.client.app[FEEDS].builds == builds + 1
    status, _, _ = await get(api, GEOJSON, **{"If-None-Match": before["ETag"]})
    assert status == 200


async def test_nothing_personal_and_hostile_ids_are_refused(apps: Apps) -> None:
    api = await apps.make(own_url=True, **FRESH)
    inc = await api.declare(area=BOX, title="Main break: ask Bob Smith at +1 555 0199")
    await notify(api, inc["id"], "main_break")
    await api.call("POST", f"/api/incidents/{inc['id']}/notes", json={"text": "caller +13095550130"})
    await move(api, inc["id"], "active")
    status, body = await api.call(
        "POST", f"/api/incidents/{inc['id']}/status",
        json={"status": "closed", "reason": "Bob Smith's Qzx, ask alice"},
    )  # fmt: skip
    assert status == 200, body
    bodies = [(await get(api, ATOM))[2], (await get(api, GEOJSON))[2]]
    feed = feedparser.parse(bodies[0])
    bodies += [(await get(api, local(api, e.links[0].href)))[2] for e in feed.entries]
    text = b"\n".join(bodies).decode()
    assert [e.category for e in feed.entries] == ["Cancel", "Alert"]
    assert "Bob Smith" not in text and "alice" not in text and "Qzx" not in text
    secrets = {r[key] for r in rows_inside(BOX) for key in ("sms", "voice", "address", "account_id")}
    assert not [s for s in secrets if s and s in text]
    for path in ("/public/feeds/cap/nope.xml", "/public/feeds/cap/" + "a" * 101 + ".xml",
                 "/public/feeds/cap/..%2Fsecret.xml", "/public/feeds/cap/%00.xml"):  # fmt: skip
        status, _, _ = await get(api, path)
        assert status == 404, path


async def test_text_with_control_characters_is_refused_before_it_reaches_a_feed(apps: Apps) -> None:
    api = await apps.make(**FRESH)
    inc = await api.declare(area=BOX)
    path = f"/api/incidents/{inc['id']}"
    for bad in ("Elm\x01 St", "Elm\x0b St", "Elm St\r\nBcc: x", "Elm\x85 St", "Elm\u2028St", "\x00"):
        status, body = await api.call("PUT", f"{path}/area/description", json={"en": bad})
        assert status == 422 and "control characters" in body["error"]["message"], (bad, body)
        for facts in ({"area": bad}, {"area_i18n": {"en": bad}}, {"area": "Elm St", "note": bad}):
            status, body = await api.call(
                "POST",
                f"{path}/notices/preview",
                json={"template": "main_break", "channels": ["sms"], "facts": facts},
            )
            assert status == 422 and "control characters" in body["error"]["message"], (facts, body)
    status, body = await api.call(
        "PUT", f"{path}/area/description", json={"en": "Elm St 1-99", "zh-CN": "榆树街"}
    )
    assert status == 200, body


async def test_a_notice_a_template_no_longer_renders_never_takes_the_feed_down(
    apps: Apps, tmp_path: Path, schema: etree.XMLSchema
) -> None:
    templates = tmp_path / "notices"

    def copy() -> None:
        shutil.copytree(Path(incident.__file__).parent / "bundled" / "templates" / "notices", templates)
        (templates / "de").mkdir()
        # A translation added later that fails for one place only (the public feed speaks
        # every language of the templates, also those no household of the area speaks).
        (templates / "de" / "main_break.sms.j2").write_text(
            "{% if area == 'Maple St' %}{{ area.no.such }}{% endif %}Rohrbruch in {{ area }}.\n",
            encoding="utf-8",
        )

    await asyncio.to_thread(copy)
    api = await apps.make(own_url=True, INCIDENT_NOTIFY__TEMPLATES=str(templates), **FRESH)
    broken = await api.declare(area=BOX)
    fine = await api.declare(area=BOX)
    await notify(api, broken["id"], "main_break")
    await notify(api, fine["id"], "main_break", area="Oak St")
    _, alerts = await read_feed(api, schema)
    languages = {cap(a, "cap:incidents"): sorted(x.text or "" for x in a.findall("cap:info/cap:language", NS))
                 for a in alerts}  # fmt: skip
    assert languages == {broken["id"]: ["en", "zh-CN"], fine["id"]: ["de", "en", "zh-CN"]}
