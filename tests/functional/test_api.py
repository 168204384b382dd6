"""The HTTP API on the real app and a real store (both stores)."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from tests.support.app import Api

pytestmark = pytest.mark.usefixtures("blockbuster")


async def test_health_and_metrics_need_no_token(api: Api) -> None:
    status, body = await api.call("GET", "/healthz", who=None)
    assert status == 200 and body == {
        "status": "ok",
        "checks": {"store": "ok", "broker": "ok", "fanout": "ok"},
    }
    await api.declare()
    status, text = await api.call("GET", "/metrics", who=None)
    assert status == 200
    assert 'incident_incidents_declared_total{kind="main_break",utility="water"} 1.0' in text
    assert 'incident_http_requests_total{method="POST",route="/api/incidents",status="201"} 1.0' in text


async def test_declare_get_and_list(api: Api) -> None:
    inc = await api.declare(title="No water on Oak Ave", severity="critical", drill=True)
    assert inc["id"].startswith("INC-2026-")
    assert inc["status"] == "declared" and inc["owner"] == "alice" and inc["drill"] is True
    status, got = await api.call("GET", f"/api/incidents/{inc['id']}", who="rita")
    assert status == 200 and got == inc
    status, listed = await api.call("GET", "/api/incidents?status=open", who="carol")
    assert status == 200 and [i["id"] for i in listed["incidents"]] == [inc["id"]]
    status, listed = await api.call("GET", "/api/incidents?status=closed", who="carol")
    assert listed["incidents"] == []


async def test_declare_with_a_drawn_area(api: Api) -> None:
    ring = [[-85.62, 38.03], [-85.60, 38.03], [-85.60, 38.05], [-85.62, 38.05], [-85.62, 38.03]]
    inc = await api.declare(area={"type": "Polygon", "coordinates": [ring]})
    assert inc["area"]["type"] == "Polygon"
    status, err = await api.call(
        "POST",
        "/api/incidents",
        json={
            "kind": "main_break",
            "utility": "water",
            "title": "x",
            "severity": "low",
            "area": {
                "type": "Polygon",
                "coordinates": [[[-85.6, 38.0], [200, 38.0], [-85.6, 38.1], [-85.6, 38.0]]],
            },
        },
    )
    assert status == 422 and err["error"]["code"] == "not_lonlat"
    assert "coordinates are not lon/lat" in err["error"]["message"]


async def test_tokens_and_roles(api: Api) -> None:
    body = {"kind": "main_break", "utility": "water", "title": "t", "severity": "low"}
    status, err = await api.call("POST", "/api/incidents", who=None, json=body)
    assert status == 401 and err["error"]["code"] == "unauthenticated"
    async with api.client.get("/api/incidents", headers={"Authorization": "Bearer nope"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["message"].startswith("unknown token")
    status, err = await api.call("POST", "/api/incidents", who="rita", json=body)
    assert status == 403 and err["error"]["code"] == "forbidden"
    assert "reviewer" in err["error"]["message"]
    status, me = await api.call("GET", "/api/me", who="carol")
    assert me == {"name": "carol", "role": "command"}


@pytest.mark.parametrize(
    ("payload", "status", "code", "fragment"),
    [
        (b"{not json", 400, "malformed_json", "not valid JSON"),
        (b"", 400, "empty_body", "empty"),
        (
            b'{"kind":"main_break","utility":"water","title":"t","severity":"high","colour":"red"}',
            422,
            "invalid_request",
            "unknown field `colour`",
        ),
        (
            b'{"kind":"flood","utility":"water","title":"t","severity":"high"}',
            422,
            "invalid_request",
            "kind: Invalid enum value 'flood' (one of: main_break",
        ),
        (
            b'{"utility":"water","title":"t","severity":"high"}',
            422,
            "invalid_request",
            "missing required field `kind`",
        ),
        (
            b'{"kind":"main_break","utility":"water","title":"","severity":"high"}',
            422,
            "invalid_request",
            "title",
        ),
        (b"[1, 2]", 422, "invalid_request", "Expected `object`"),
        (
            b'{"kind":"main_break","utility":"water","severity":"high","title":"' + b"x" * 5000 + b'"}',
            413,
            "payload_too_large",
            "larger than the limit of 4096 bytes",
        ),
    ],
    ids=[
        "malformed",
        "empty",
        "unknown-field",
        "bad-enum",
        "missing",
        "empty-title",
        "not-object",
        "oversized",
    ],
)
async def test_bad_declarations_get_a_clear_4xx_and_store_nothing(
    api: Api, payload: bytes, status: int, code: str, fragment: str
) -> None:
    got, err = await api.call("POST", "/api/incidents", data=payload)
    assert got == status, err
    assert err["error"]["code"] == code
    assert fragment in err["error"]["message"]
    _, listed = await api.call("GET", "/api/incidents?status=all")
    assert listed["incidents"] == []


async def test_bad_query_parameters(api: Api) -> None:
    status, err = await api.call("GET", "/api/incidents?status=sideways")
    assert status == 422 and "status must be one of" in err["error"]["message"]
    status, err = await api.call("GET", "/api/incidents?limit=lots")
    assert status == 422 and "'limit' must be a whole number" in err["error"]["message"]
    # The bounds the OpenAPI document states are the ones enforced, on every route that declares them.
    for path in ("/api/incidents", "/api/reports"):
        status, err = await api.call("GET", f"{path}?limit=0")
        assert status == 422 and "between 1 and 1000" in err["error"]["message"], path
    status, err = await api.call("GET", "/api/incidents?cursor=bm90LWEtY3Vyc29y")
    assert status == 422 and err["error"]["code"] == "invalid_cursor"


async def test_unknown_incident_and_route(api: Api) -> None:
    status, err = await api.call("GET", "/api/incidents/INC-2026-999999")
    assert status == 404 and err["error"]["message"] == "no incident INC-2026-999999"
    status, err = await api.call("POST", "/api/incidents/INC-2026-999999/notes", json={"text": "hi"})
    assert status == 404
    status, err = await api.call("GET", "/api/nowhere")
    assert status == 404 and err["error"]["code"] == "not_found"
    status, err = await api.call("DELETE", "/api/incidents")
    assert status == 405 and err["error"]["code"] == "method_not_allowed"
    async with api.client.request("DELETE", "/api/incidents", headers=api.tokens.header("alice")) as resp:
        assert resp.status == 405 and set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}


async def test_lifecycle_and_illegal_transitions(api: Api) -> None:
    inc = await api.declare()
    path = f"/api/incidents/{inc['id']}/status"
    status, err = await api.call("POST", path, json={"status": "restoring"})
    assert status == 409 and err["error"]["code"] == "illegal_transition"
    assert "it can move to: active, cancelled" in err["error"]["message"]
    for to in ("active", "restoring", "monitoring", "closed"):
        status, body = await api.call("POST", path, json={"status": to, "reason": f"now {to}"})
        assert status == 200 and body["status"] == to, body
    assert body["closed_at"] is not None
    status, err = await api.call("POST", path, json={"status": "active"})
    assert status == 409 and "finished incident cannot change" in err["error"]["message"]
    status, err = await api.call("POST", f"/api/incidents/{inc['id']}/notes", json={"text": "late"})
    assert status == 409
    _, listed = await api.call("GET", "/api/incidents?status=closed")
    assert [i["id"] for i in listed["incidents"]] == [inc["id"]]


async def test_first_responder_ownership_and_hand_over(api: Api) -> None:
    inc = await api.declare(who="alice")
    base = f"/api/incidents/{inc['id']}"
    status, err = await api.call("POST", base + "/status", who="bob", json={"status": "active"})
    assert status == 403 and err["error"]["code"] == "not_owner"
    assert "owned by alice" in err["error"]["message"]
    status, err = await api.call("POST", base + "/handover", who="bob", json={"to": "bob"})
    assert status == 403
    status, _ = await api.call("POST", base + "/notes", who="bob", json={"text": "I can help"})
    assert status == 201  # anyone steering may add facts
    status, body = await api.call(
        "POST", base + "/handover", who="alice", json={"to": "bob", "reason": "shift end"}
    )
    assert status == 200 and body["owner"] == "bob"
    status, _ = await api.call("POST", base + "/status", who="bob", json={"status": "active"})
    assert status == 200
    status, body = await api.call("POST", base + "/handover", who="carol", json={"to": "alice"})
    assert status == 200 and body["owner"] == "alice"  # command staff may reassign
    status, err = await api.call("POST", base + "/handover", who="carol", json={"to": "alcie"})
    assert status == 422 and "nobody named 'alcie'" in err["error"]["message"]
    status, _ = await api.call("POST", base + "/severity", who="carol", json={"severity": "critical"})
    assert status == 200
    _, timeline = await api.call("GET", base + "/timeline")
    handovers = [e for e in timeline["events"] if e["type"] == "handed_over"]
    assert [(e["actor"], e["data"]["from"], e["data"]["to"]) for e in handovers] == [
        ("alice", "alice", "bob"),
        ("carol", "bob", "alice"),
    ]


async def test_timeline_json_and_csv(api: Api) -> None:
    inc = await api.declare()
    base = f"/api/incidents/{inc['id']}"
    await api.call("POST", base + "/notes", json={"text": '=HYPERLINK("http://x")'})
    await api.call("POST", base + "/status", json={"status": "active"})
    status, tl = await api.call("GET", base + "/timeline", who="rita")
    assert status == 200
    assert [e["seq"] for e in tl["events"]] == [1, 2, 3]
    assert [e["type"] for e in tl["events"]] == ["declared", "note_added", "status_changed"]
    assert tl["integrity"]["ok"] is True and tl["integrity"]["events"] == 3
    assert tl["incident"]["status"] == "active"
    _, tail = await api.call("GET", base + "/timeline?after=2", who="rita")
    assert [e["seq"] for e in tail["events"]] == [3]

    async with api.client.get(base + "/timeline?format=csv", headers=api.tokens.header("rita")) as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        assert inc["id"] in resp.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["seq"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["summary"] == '\'=HYPERLINK("http://x")'  # a spreadsheet must not run it
    assert rows[2]["summary"] == "status declared -> active"
    assert rows[2]["hash"] == tl["events"][2]["hash"]
    status, err = await api.call("GET", base + "/timeline?format=xml")
    assert status == 422 and "json or csv" in err["error"]["message"]


async def test_integrity_endpoint(api: Api) -> None:
    inc = await api.declare()
    status, result = await api.call("GET", f"/api/incidents/{inc['id']}/integrity", who="rita")
    assert status == 200 and result["ok"] is True and result["head_hash"] == inc["head_hash"]


async def test_concurrent_requests_keep_the_chain(api: Api) -> None:
    inc = await api.declare()
    base = f"/api/incidents/{inc['id']}"
    results = await asyncio.gather(
        *(api.call("POST", base + "/notes", json={"text": f"n{i}"}) for i in range(50))
    )
    assert all(status == 201 for status, _ in results)
    assert sorted(body["seq"] for _, body in results) == list(range(2, 52))
    _, result = await api.call("GET", base + "/integrity")
    assert result["ok"] and result["events"] == 51


async def test_an_unknown_playbook_is_refused_naming_the_known_ones(api: Api) -> None:
    status, err = await api.call(
        "POST",
        "/api/incidents",
        json={"kind": "main_break", "utility": "water", "title": "t", "severity": "high", "playbook": "nope"},
    )
    assert status == 422, err
    assert err["error"]["code"] == "unknown_playbook"
    assert "'nope'" in err["error"]["message"] and "water_main_break" in err["error"]["message"]
    _, listed = await api.call("GET", "/api/incidents?status=all")
    assert listed["incidents"] == []
    inc = await api.declare(playbook="water_main_break")  # a known one is taken
    assert inc["playbook"] == "water_main_break"


@pytest.mark.parametrize(
    ("to", "code"),
    [("rita", "handover_role"), ("root", "handover_role"), ("nobody", "unknown_person")],
    ids=["reviewer", "admin", "unknown"],
)
async def test_hand_over_only_to_a_dispatcher_or_command(api: Api, to: str, code: str) -> None:
    inc = await api.declare(who="alice")
    base = f"/api/incidents/{inc['id']}"
    status, err = await api.call("POST", base + "/handover", who="alice", json={"to": to})
    assert status == 422, err
    assert err["error"]["code"] == code and repr(to) in err["error"]["message"]
    _, again = await api.call("GET", base)
    assert again["owner"] == "alice" and again["last_seq"] == 1
    for ok in ("carol", "bob"):  # command staff, then a dispatcher
        status, body = await api.call("POST", base + "/handover", who="carol", json={"to": ok})
        assert status == 200 and body["owner"] == ok, body


@pytest.mark.parametrize(
    ("etr", "code"),
    [
        ("0001-01-01T00:00:00+00:00", "etr_in_past"),
        ("1970-01-01T00:00:00+00:00", "etr_in_past"),
        ("2026-11-22T07:00:00+00:00", "etr_in_past"),  # 75 min before the test clock's 08:15
        ("2026-12-23T08:15:00+00:00", "etr_too_far"),  # 31 days ahead
        ("9999-12-31T23:59:59+00:00", "etr_too_far"),
    ],
    ids=["year-1", "1970", "past-beyond-grace", "31-days", "year-9999"],
)
async def test_an_etr_in_the_past_or_too_far_ahead_is_refused(api: Api, etr: str, code: str) -> None:
    inc = await api.declare()
    base = f"/api/incidents/{inc['id']}"
    status, err = await api.call("POST", base + "/etr", json={"etr": etr})
    assert status == 422, err
    assert err["error"]["code"] == code and err["error"]["message"]
    _, again = await api.call("GET", base)
    assert again["etr"] is None and again["last_seq"] == 1


async def test_an_etr_just_past_within_the_grace_or_weeks_ahead_is_taken(api: Api) -> None:
    inc = await api.declare()
    base = f"/api/incidents/{inc['id']}"
    for etr in ("2026-11-22T08:05:00+00:00", "2026-12-20T08:00:00+08:00"):
        status, body = await api.call("POST", base + "/etr", json={"etr": etr})
        assert status == 200, body
