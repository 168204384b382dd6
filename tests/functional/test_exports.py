"""Review exports through the real app: notices planned and approved over HTTP, sent by the
drill carrier through Kafka, then exported as CAP 1.2 alerts, an after-action report and
from the command line."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree
from shapely.geometry import Polygon, shape

import incident.review
from incident.cli import main
from incident.deliveries.records import Delivery
from incident.keys import STORE
from incident.settings import Settings
from incident.store import Store
from tests.support.app import Api, Apps
from tests.support.sample import BOX

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)

CAP = "urn:oasis:names:tc:emergency:cap:1.2"
NS = {"cap": CAP}
XSD = Path(incident.review.__file__).parent / "CAP-v1.2.xsd"
#: Outcomes that reach a household, per channel (an SMS once delivered, a call once answered).
#: An app push has no delivery receipt: ``sent`` is counted apart, never as reached.
REACHED = {
    "sms": {"delivered"},
    "push": {"delivered"},
    "voice": {"answered", "completed", "confirmed"},
}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


@pytest.fixture
async def sending_api(apps: Apps) -> Api:
    """The app with the fan-out running against its drill carrier (SMS not falling back to calls)."""
    return await apps.make(
        send=True, INCIDENT_NOTIFY__SMS_FALLBACK_TO_VOICE="false", INCIDENT_NOTIFY__TIMEZONE="Asia/Shanghai"
    )


async def notify(api: Api, incident_id: str, template: str, **facts: Any) -> str:
    status, planned = await api.call(
        "POST", f"/api/incidents/{incident_id}/notices",
        json={"template": template, "channels": ["sms", "push"], "facts": {"area": "Maple St", **facts}},
    )  # fmt: skip
    assert status == 201, planned
    notice_id: str = planned["notice"]["notice_id"]
    status, approved = await api.call("POST", f"/api/incidents/{incident_id}/notices/{notice_id}/approve")
    assert status == 200, approved
    return notice_id


async def settled(store: Store, incident_id: str) -> list[Delivery]:
    """The deliveries once every one reached its final state, or was handed to the carrier
    and the carrier's callbacks (at most 2 s after each send) stopped changing them."""
    final = {"sms": {"delivered", "undelivered", "failed"}, "push": {"sent", "failed"}}
    handed_over = {"sent", "delivered", "undelivered", "failed", "accepted"}
    last: Counter[tuple[str, str]] = Counter()
    stable_since = asyncio.get_running_loop().time()
    async with asyncio.timeout(30):
        while True:
            rows = await store.list_deliveries(incident_id, "", 100_000)
            states = Counter((r.channel, r.state.value) for r in rows)
            now = asyncio.get_running_loop().time()
            if rows and all(r.state.value in final[r.channel] for r in rows):
                return rows
            if states != last:
                last, stable_since = states, now
            elif rows and all(r.state.value in handed_over for r in rows) and now - stable_since > 2.5:
                return rows
            await asyncio.sleep(0.1)


def alerts_of(document: str) -> list[etree._Element]:
    root = etree.fromstring(document.encode())
    assert root.tag == "{urn:x-incident:cap-alerts:1}alerts"
    return list(root)


def cap(alert: etree._Element, path: str) -> str:
    return alert.findtext(path, namespaces=NS) or ""


async def test_a_drill_exports_cap_alerts_and_an_after_action_report(
    sending_api: Api, schema: etree.XMLSchema, tmp_path: Path, settings: Settings
) -> None:
    api = sending_api
    inc = await api.declare(area=BOX, drill=True, title="Drill: main break on Maple St")
    first = await notify(api, inc["id"], "main_break")
    second = await notify(api, inc["id"], "etr_update", etr="2026-11-22T18:00:00+00:00")
    store = api.client.app[STORE]
    rows = await settled(store, inc["id"])
    status, _ = await api.call("POST", f"/api/incidents/{inc['id']}/status",
                               json={"status": "cancelled", "reason": "end of exercise"})  # fmt: skip
    assert status == 200

    # CAP: every public notice an alert, then the cancellation; each valid on its own.
    async with api.client.get(
        f"/api/incidents/{inc['id']}/timeline?format=cap", headers=api.tokens.header("rita")
    ) as resp:
        assert resp.status == 200 and resp.content_type == "application/xml"
        document = await resp.text()
    alerts = alerts_of(document)
    for alert in alerts:
        assert schema.validate(alert), schema.error_log
    assert [cap(a, "cap:identifier") for a in alerts] == [first, second, f"{inc['id']}-cancel"]
    assert [cap(a, "cap:msgType") for a in alerts] == ["Alert", "Update", "Cancel"]
    assert {cap(a, "cap:status") for a in alerts} == {"Exercise"}
    assert {cap(a, "cap:sender") for a in alerts} == {"sampletown.example"}
    refs = [f"sampletown.example,{cap(a, 'cap:identifier')},{cap(a, 'cap:sent')}" for a in alerts]
    assert cap(alerts[1], "cap:references") == refs[0]
    assert cap(alerts[2], "cap:references") == " ".join(refs[:2])
    # One block per language the notice was sent in (Spanish, Vietnamese... got English).
    infos = alerts[0].findall("cap:info", NS)
    assert sorted(cap(i, "cap:language") for i in infos) == sorted(
        {"zh-CN" if r.language == "zh-CN" else "en" for r in rows}
    )
    for info in infos:
        assert cap(info, "cap:area/cap:areaDesc") == "Maple St"
        assert "Sampletown Water" in cap(info, "cap:description")
        [polygon] = [p.text or "" for p in info.findall("cap:area/cap:polygon", NS)]
        pairs = [tuple(map(float, p.split(","))) for p in polygon.split()]
        assert pairs[0] == pairs[-1] and Polygon([(lon, lat) for lat, lon in pairs]).equals(shape(BOX))

    # One alert, standalone, as a CAP consumer takes it.
    async with api.client.get(
        f"/api/incidents/{inc['id']}/timeline?format=cap&alert={second}", headers=api.tokens.header("alice")
    ) as resp:
        assert resp.status == 200 and resp.content_type == "application/cap+xml"
        single = etree.fromstring(await resp.read())
    assert schema.validate(single) and cap(single, "cap:identifier") == second
    status, err = await api.call("GET", f"/api/incidents/{inc['id']}/timeline?format=cap&alert=nope")
    assert status == 404 and first in err["error"]["message"]

    # The after-action report: reviewers, command and admins read it.
    final = await store.list_deliveries(inc["id"], "", 100_000)
    reached = {r.account_id for r in final if r.state.value in REACHED[r.channel]}
    pushed = {r.account_id for r in final if r.channel == "push" and r.state.value == "sent"} - reached
    never = {r.account_id for r in final} - reached - pushed
    status, html = await api.call("GET", f"/api/incidents/{inc['id']}/report", who="rita")
    assert status == 200
    assert "DRILL — this incident was an exercise." in html and inc["id"] in html
    assert f"<strong>{len(never)}</strong> of {len({r.account_id for r in final})} households" in html
    assert all(f"<li>{account}</li>" in html for account in never)
    assert not any(r.address in html for r in final)  # account ids, never numbers or tokens
    assert "<td>SMS</td>" in html and "<td>app push</td>" in html
    assert f'id="no-receipt">{len(pushed)}<' in html and f'id="reached">{len(reached)}<' in html
    assert "SLA clocks: none declared." in html and "Intact:" in html
    assert "Notice approved" in html and "status declared → cancelled (end of exercise)" in html
    assert "notice_approved" not in html.replace('data-type="notice_approved"', "")
    assert "First notice approved" in html and "CST" in html  # times in the utility's zone
    for who, expected in (("carol", 200), ("root", 200), ("alice", 403)):
        assert (await api.call("GET", f"/api/incidents/{inc['id']}/report", who=who))[0] == expected

    # The command line gives the same exports.
    out = tmp_path / "cap.xml"
    env = {"INCIDENT_STORE__URL": settings.store.url, "INCIDENT_NOTIFY__TIMEZONE": "Asia/Shanghai"}
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke,
        main,
        ["timeline", "export", inc["id"], "--format", "cap", "--output", str(out)],
        env=env,
    )
    assert result.exit_code == 0, result.output
    written = await asyncio.to_thread(out.read_text, encoding="utf-8")
    assert [cap(a, "cap:identifier") for a in alerts_of(written)] == [
        cap(a, "cap:identifier") for a in alerts
    ]
    result = await asyncio.to_thread(runner.invoke, main, ["timeline", "export", inc["id"], "--format", "report"],
                                     env=env)  # fmt: skip
    assert result.exit_code == 0 and f"<strong>{len(never)}</strong>" in result.output
    result = await asyncio.to_thread(runner.invoke, main, ["timeline", "export", inc["id"], "--format", "csv"],
                                     env=env)  # fmt: skip
    assert result.exit_code == 0 and result.output.startswith("incident_id,seq,at,type")
    result = await asyncio.to_thread(runner.invoke, main, ["timeline", "export", inc["id"]], env=env)
    exported = json.loads(result.output)
    assert exported["integrity"]["ok"] and exported["incident"]["status"] == "cancelled"
    assert [e["type"] for e in exported["events"]][-1] == "status_changed"
    result = await asyncio.to_thread(runner.invoke, main, ["timeline", "export", "INC-2026-999999"], env=env)
    assert result.exit_code == 1 and "no incident INC-2026-999999" in result.output


async def test_exports_of_an_incident_without_notices(api: Api, schema: etree.XMLSchema) -> None:
    inc = await api.declare()
    status, document = await api.call("GET", f"/api/incidents/{inc['id']}/timeline?format=cap", who="rita")
    assert status == 200 and alerts_of(document) == []
    status, html = await api.call("GET", f"/api/incidents/{inc['id']}/report", who="rita")
    assert status == 200
    assert "No deliveries: no notice was planned." in html and "<strong>0</strong> of 0 households" in html
    status, err = await api.call("GET", f"/api/incidents/{inc['id']}/timeline?format=kml")
    assert status == 422 and "cap (CAP 1.2 alerts)" in err["error"]["message"]
    for path in (
        "/api/incidents/INC-2026-999999/report",
        "/api/incidents/INC-2026-999999/timeline?format=cap",
    ):
        assert (await api.call("GET", path, who="root"))[0] == 404
