"""The triage queue over HTTP: reports reach dispatchers, who link, declare or dismiss them."""

from __future__ import annotations

import asyncio
from typing import Any

from incident.adapters.kafka import free_port
from incident.core.domain import Kind, Severity
from incident.settings import Settings, load_settings
from tests.support.app import Api, serve
from tests.support.env import Tokens
from tests.support.ingest import call_centre_report as report
from tests.support.ingest import put_reports as ingest


async def test_unassigned_reports_are_listed_and_reach_the_live_feed(api: Api) -> None:
    async with api.client.ws_connect("/api/live", headers=api.tokens.header("alice")) as ws:
        await ws.receive_json(timeout=5)
        await ingest(api, report("cc-1"), report("cc-2", lon=-84.0))
        seen = [await ws.receive_json(timeout=5), await ws.receive_json(timeout=5)]
    assert [m["type"] for m in seen] == ["report", "report"]
    assert {m["report"]["report"]["report_id"] for m in seen} == {"cc-1", "cc-2"}
    status, body = await api.call("GET", "/api/reports", who="rita")
    assert status == 200
    assert {r["report"]["report_id"] for r in body["reports"]} == {"cc-1", "cc-2"}
    assert all(r["status"] == "unassigned" for r in body["reports"])
    status, one = await api.call("GET", "/api/reports/cc-1")
    assert status == 200 and one["origin"] == "test"
    status, err = await api.call("GET", "/api/reports/nope")
    assert status == 404 and err["error"]["message"] == "no report nope"


async def test_link_declare_and_dismiss(api: Api) -> None:
    await ingest(api, report("cc-1"), report("cc-2", lon=-84.0), report("cc-3", lon=-83.0))
    # Declare from a report: the caller owns it, the report is linked, the timeline names it.
    status, declared = await api.call(
        "POST", "/api/reports/cc-1/declare", json={"title": "No water on Elm St"}
    )
    assert status == 201, declared
    incident = declared["incident"]
    assert (
        incident["title"] == "No water on Elm St"
        and incident["owner"] == "alice"
        and incident["reports"] == 1
    )
    assert declared["report"]["status"] == "linked" and declared["report"]["incident_id"] == incident["id"]
    # Link another report to it.
    status, linked = await api.call(
        "POST", "/api/reports/cc-2/link", json={"incident_id": incident["id"], "reason": "same street"}
    )
    assert status == 200 and linked["status"] == "linked" and linked["note"] == "same street"
    status, again = await api.call("POST", "/api/reports/cc-2/link", json={"incident_id": incident["id"]})
    assert status == 409 and "report cc-2 is linked" in again["error"]["message"]
    # Dismiss the third; a dismissed report cannot be dismissed again.
    status, dismissed = await api.call(
        "POST", "/api/reports/cc-3/dismiss", who="carol", json={"reason": "prank call"}
    )
    assert status == 200 and dismissed["status"] == "dismissed" and dismissed["triaged_by"] == "carol"
    status, _ = await api.call("POST", "/api/reports/cc-3/dismiss", json={"reason": "again"})
    assert status == 409
    _, timeline = await api.call("GET", f"/api/incidents/{incident['id']}/timeline")
    links = [e for e in timeline["events"] if e["type"] == "report_linked"]
    assert [(e["data"]["report_id"], e["actor"]) for e in links] == [("cc-1", "alice"), ("cc-2", "alice")]
    assert timeline["integrity"]["ok"]
    _, queue = await api.call("GET", "/api/reports?status=unassigned")
    assert queue["reports"] == []


async def test_triage_errors(api: Api) -> None:
    await ingest(api, report("cc-1"))
    status, err = await api.call("POST", "/api/reports/cc-1/link", json={"incident_id": "INC-2026-999999"})
    assert status == 404 and "no incident INC-2026-999999" in err["error"]["message"]
    status, err = await api.call("POST", "/api/reports/cc-1/link", json={"incident_id": "elm street"})
    assert status == 422 and "incident_id" in err["error"]["message"]
    status, _ = await api.call("POST", "/api/reports/cc-1/declare", who="rita", json={})
    assert status == 403
    status, err = await api.call("POST", "/api/reports/cc-1/dismiss", json={})
    assert status == 422 and "reason" in err["error"]["message"]
    status, err = await api.call("GET", "/api/reports?status=lost")
    assert status == 422
    got = await api.call("GET", "/api/reports/cc-1")
    assert got[1]["status"] == "unassigned"  # nothing changed


async def test_a_rule_declared_incident_awaits_confirmation(api: Api) -> None:
    await ingest(api, report("lab-1", Kind.contamination, Severity.critical))
    _, incidents = await api.call("GET", "/api/incidents")
    [incident] = incidents["incidents"]
    assert incident["awaiting_confirmation"] is True and incident["owner"] is None
    status, confirmed = await api.call("POST", f"/api/incidents/{incident['id']}/confirm", who="bob")
    assert status == 200 and confirmed["awaiting_confirmation"] is False and confirmed["owner"] == "bob"
    status, err = await api.call("POST", f"/api/incidents/{incident['id']}/confirm", who="bob")
    assert status == 409 and "does not await confirmation" in err["error"]["message"]


async def test_the_service_runs_and_says_so_when_kafka_is_down(
    aiohttp_client: Any, settings: Settings, tokens: Tokens
) -> None:
    dead = await asyncio.to_thread(load_settings, None, {
        "INCIDENT_STORE__URL": settings.store.url, "INCIDENT_AUTH__TOKENS_FILE": str(tokens.path),
        "INCIDENT_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    })  # fmt: skip
    client = await serve(aiohttp_client, dead)
    async with client.get("/healthz") as resp:
        assert resp.status == 503
        body = await resp.json()
    assert body["status"] == "unavailable" and body["checks"]["store"] == "ok"
    assert "does not answer" in body["checks"]["broker"]
    async with client.get("/api/incidents", headers=tokens.header("alice")) as resp:
        assert resp.status == 200  # dispatchers can still work
    async with client.get("/metrics") as resp:
        assert "incident_kafka_up 0.0" in await resp.text()
