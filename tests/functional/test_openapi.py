"""The OpenAPI document matches the routes the app really serves."""

from __future__ import annotations

import re

from incident.core.domain import Role
from incident.keys import ENDPOINTS
from tests.support.app import Api


async def test_openapi_lists_every_route_and_only_those(api: Api) -> None:
    status, doc = await api.call("GET", "/api/openapi.json", who=None)
    assert status == 200 and doc["openapi"].startswith("3.1")
    served = set()
    for route in api.client.app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD next to every GET
            continue
        served.add((route.method.lower(), route.resource.canonical))
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == served


async def test_every_protected_operation_states_its_roles(api: Api) -> None:
    _, doc = await api.call("GET", "/api/openapi.json", who=None)
    # Public: health, metrics, this document, the carrier webhooks (their signature is the check)
    # and the residents' side (/public/...).
    public = {"/healthz", "/metrics", "/api/openapi.json", "/hooks/twilio/status", "/hooks/twilio/gather",
              "/hooks/twilio/inbound", "/", "/console/{file}", "/console/vendor/{package}/{file}"}  # fmt: skip
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path in public or path.startswith("/public/"):  # the residents' side: no token
                assert op["security"] == [], (method, path)
            else:
                assert op["security"] == [{"bearer": []}], (method, path)
                assert set(op["x-roles"]) <= {r.value for r in Role} and op["x-roles"]


async def test_documented_roles_are_enforced(api: Api) -> None:
    """For each operation, a role outside x-roles gets 403 before anything else happens."""
    _, doc = await api.call("GET", "/api/openapi.json", who=None)
    person = {"dispatcher": "alice", "command": "carol", "reviewer": "rita", "admin": "root"}
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for role in set(person) - set(op.get("x-roles", person)):
                url = path.replace("{notice_id}", "INC-2026-000001-N1")
                url = re.sub(r"\{\w+\}", "INC-2026-000001", url)
                status, _ = await api.call(method.upper(), url, who=person[role], json={})
                assert status == 403, (method, path, role)
                checked += 1
    assert checked > 0


async def test_a_fixed_word_in_a_path_is_not_read_as_an_id(api: Api) -> None:
    """``…/notices/preview`` takes POST only: a GET is a 405 naming POST, not a look-up of a
    notice called "preview" (a notice id has the form ``<incident>-N<number>``)."""
    _, doc = await api.call("GET", "/api/openapi.json", who=None)
    param = doc["paths"]["/api/incidents/{incident_id}/notices/{notice_id}"]["get"]["parameters"][1]
    assert param["schema"] == {"type": "string", "pattern": "^[^/]+-N[0-9]+$"}
    resp = await api.client.get(
        "/api/incidents/INC-2026-000001/notices/preview", headers=api.tokens.header("alice")
    )
    assert resp.status == 405 and resp.headers["Allow"] == "POST"


async def test_path_parameters_and_bodies_are_described(api: Api) -> None:
    _, doc = await api.call("GET", "/api/openapi.json", who=None)
    op = doc["paths"]["/api/incidents/{incident_id}/status"]["post"]
    assert op["parameters"][0] == {
        "name": "incident_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    body_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = doc["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert body["required"] == ["status"]
    assert set(doc["components"]["schemas"]["Status"]["enum"]) >= {"declared", "closed"}
    assert len(api.client.app[ENDPOINTS]) == sum(len(ops) for ops in doc["paths"].values())


async def test_timestamps_bounds_and_content_types_are_stated(api: Api) -> None:
    """What schemathesis cannot miss-detect by itself: a field the document leaves vague."""
    _, doc = await api.call("GET", "/api/openapi.json", who=None)
    schemas = doc["components"]["schemas"]
    timestamps = 0
    for name, schema in schemas.items():
        for prop, spec in schema.get("properties", {}).items():
            if prop.endswith("_at") or prop in ("etr", "start", "end", "at"):
                strings = [s for s in spec.get("anyOf", [spec]) if s.get("type") == "string"]
                assert strings and all(s.get("format") == "date-time" for s in strings), (name, prop)
                timestamps += 1
    assert timestamps > 10
    for path in ("/api/incidents", "/api/reports", "/api/incidents/{incident_id}/deliveries"):
        limit = next(p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "limit")
        assert limit["schema"] | {"default": 0} == {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "default": 0,
        }
    timeline = doc["paths"]["/api/incidents/{incident_id}/timeline"]["get"]["responses"]["200"]["content"]
    assert set(timeline) == {"application/json", "text/csv", "application/xml", "application/cap+xml"}
    hook = doc["paths"]["/hooks/twilio/status"]["post"]["responses"]
    assert {"403", "413"} <= set(hook) and "401" not in hook
    live = doc["paths"]["/api/live"]["get"]["responses"]
    assert {"101", "400", "401", "403"} <= set(live)
