"""Health, metrics, the OpenAPI document and who-am-I."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from incident.api.endpoint import ALL_ROLES, Endpoint, json_response
from incident.api.openapi import build_openapi
from incident.api.schemas import Health, Me
from incident.core.errors import StoreError
from incident.keys import ENDPOINTS, KAFKA, METRICS, NOTIFY, PRINCIPAL, STORE

#: How to ask one named part of the service: "ok", what is wrong with it, or None when this
#: instance does not run that part (an API-only instance has no ingest).
HealthCheck = Callable[[web.Application], Awaitable[str | None]]


async def _store_health(app: web.Application) -> str | None:
    try:
        await app[STORE].ping()
    except StoreError as err:
        return err.message
    return "ok"


async def _broker_health(app: web.Application) -> str | None:
    # The monitor checks the broker every second in the background: answering from its last
    # look keeps this unauthenticated endpoint from turning into load on Kafka.
    monitor = app[KAFKA].monitor
    return "ok" if monitor.up else monitor.last_error


async def _ingest_health(app: web.Application) -> str | None:
    runtime = app[KAFKA]
    if runtime.task is None:
        return None
    if runtime.task.done():
        return "stopped: the ingest loop is not running"
    return runtime.ingestor.stall() or "ok"


async def _fanout_health(app: web.Application) -> str | None:
    return app[NOTIFY].engine.stall_reason() or "ok"


#: The parts /healthz names, in order; adding a part is one line here.
HEALTH_CHECKS: tuple[tuple[str, HealthCheck], ...] = (
    ("store", _store_health),
    ("broker", _broker_health),
    ("ingest", _ingest_health),
    ("fanout", _fanout_health),
)


async def healthz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    for name, check in HEALTH_CHECKS:
        answer = await check(request.app)
        if answer is not None:
            checks[name] = answer
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
        "200 when store and broker answer and ingest is not stalled, else 503 naming the part",
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
        uses_store=False,
    ),
    Endpoint("GET", "/api/openapi.json", openapi, "This document", None, tag="system", uses_store=False),
    Endpoint(
        "GET",
        "/api/me",
        me,
        "The caller's name and role",
        ALL_ROLES,
        tag="system",
        response=Me,
        uses_store=False,
    ),
)
