"""Health, metrics, the OpenAPI document and who-am-I."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from incident.api.endpoint import ALL_ROLES, Endpoint, json_response
from incident.api.openapi import build_openapi
from incident.api.schemas import Health, Me
from incident.errors import StoreError
from incident.keys import ENDPOINTS, KAFKA, METRICS, NOTIFY, PRINCIPAL, STORE


async def healthz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        await request.app[STORE].ping()
        checks["store"] = "ok"
    except StoreError as err:
        checks["store"] = err.message
    # The monitor checks the broker every second in the background: answering from its last
    # look keeps this unauthenticated endpoint from turning into load on Kafka.
    monitor = request.app[KAFKA].monitor
    checks["broker"] = "ok" if monitor.up else monitor.last_error
    checks["fanout"] = request.app[NOTIFY].engine.stall_reason() or "ok"
    ok = all(v == "ok" for v in checks.values())
    return json_response(Health("ok" if ok else "unavailable", checks), status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return json_response(build_openapi(request.app[ENDPOINTS].values()))


async def me(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    return json_response(Me(principal.name, principal.role.value))


ENDPOINTS_: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/healthz",
        healthz,
        "200 when the store and the Kafka broker answer, else 503 naming what does not",
        None,
        tag="system",
        response=Health,
        errors=(503,),
    ),
    Endpoint(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics",
        None,
        tag="system",
        response=None,
        content_type="text/plain",
        errors=(),
    ),
    Endpoint("GET", "/api/openapi.json", openapi, "This document", None, tag="system", errors=()),
    Endpoint(
        "GET",
        "/api/me",
        me,
        "The caller's name and role",
        ALL_ROLES,
        tag="system",
        response=Me,
        errors=(401,),
    ),
)
