"""Views of areas: set an incident's area, read it as GeoJSON, the zone layers, a pipe."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web
from shapely.geometry import mapping

from incident.api.endpoint import ALL_ROLES, Endpoint, Idempotency, Query, json_response, read_body
from incident.api.incidents import STEER
from incident.core.domain import Incident
from incident.core.errors import NotFound
from incident.geo import GeoError, isolate
from incident.households import ServiceArea, households_on_links
from incident.incidents.areas import (
    AreaDescription,
    AreaRequest,
    Deadline,
    area_features,
    counts,
    pipe_feature,
)
from incident.keys import INCIDENTS, PRINCIPAL, SERVICE_AREA, SETTINGS


class AreaResult(msgspec.Struct, frozen=True):
    incident_id: str
    area: dict[str, Any] | None
    parts: list[dict[str, Any]]
    households: int
    by_priority: dict[str, int]
    by_language: dict[str, int]
    valves_to_close: list[str]
    affected_pipes: list[str]


def _incident_id(request: web.Request) -> str:
    return request.match_info["incident_id"]


async def put_area(request: web.Request) -> web.Response:
    body = await read_body(request, AreaRequest)
    body.method()  # exactly one way to give the area, checked before any work
    settings = request.app[SETTINGS].area
    appended, resolved = await request.app[INCIDENTS].set_area(
        _incident_id(request),
        body,
        request[PRINCIPAL],
        request.app[SERVICE_AREA].value,
        settings.isolation_buffer_m,
    )
    data = appended.events[-1].data
    return json_response(
        AreaResult(
            incident_id=appended.incident.id,
            area=resolved.geometry,
            parts=data["parts"],
            households=data["households_after"],
            by_priority=data["by_priority"],
            by_language=data["by_language"],
            valves_to_close=list(resolved.valves_to_close),
            affected_pipes=list(resolved.affected_pipes),
        )
    )


async def put_description(request: web.Request) -> web.Response:
    body = await read_body(request, AreaDescription)
    appended = await request.app[INCIDENTS].describe_area(
        _incident_id(request), dict(body), request[PRINCIPAL]
    )
    return json_response(appended.incident)


async def get_area(request: web.Request) -> web.Response:
    incident = await request.app[INCIDENTS].get(_incident_id(request))
    return json_response(area_features(request.app[SERVICE_AREA].value, incident))


async def layers(request: web.Request) -> web.Response:
    service = request.app[SERVICE_AREA].value

    def build() -> dict[str, Any]:
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": mapping(z.geometry),
                    "properties": {"id": z.id, "layer": z.layer, "name": z.name, "repaired": z.repaired},
                }
                for z in service.zones.zones
            ],
        }

    return json_response(await asyncio.to_thread(build))


def _pipe_look_up(
    service: ServiceArea, pipe_id: str, inoperable: list[str], deadline: Deadline
) -> dict[str, Any]:
    """The pipe, its households, and what a break there would isolate with ``inoperable``
    valves left open: the same trace as ``PUT …/area`` with ``isolate``."""
    assert service.segments is not None
    try:
        trace = isolate(service.segments, pipe_id, inoperable)
        deadline.check()
        on_pipe = households_on_links(service.households, [pipe_id])
        dry = counts(service, households_on_links(service.households, trace.affected_links))
    except GeoError as err:
        if err.code == "unknown_pipe":
            raise NotFound(err.message) from err
        raise
    if_broken = {
        "valves_to_close": list(trace.valves_to_close),
        "affected_pipes": len(trace.affected_links),
        "inoperable": inoperable,
        **dry,
    }
    return pipe_feature(service, pipe_id, households=len(on_pipe), if_broken=if_broken)


async def pipe(request: web.Request) -> web.Response:
    service = request.app[SERVICE_AREA].value
    pipe_id = request.match_info["pipe_id"]
    if service.network is None or service.segments is None:
        raise NotFound("no pipe network is loaded ([area] network)")
    if pipe_id not in service.network.link_index:
        raise NotFound(f"no pipe {pipe_id} in the network")
    inoperable = list(dict.fromkeys(request.query.getall("inoperable", [])))
    feature = await request.app[INCIDENTS].area_worker.run(
        lambda deadline: _pipe_look_up(service, pipe_id, inoperable, deadline)
    )
    return json_response(feature)


async def network(request: web.Request) -> web.Response:
    """Every pipe (and pump and valve link) as GeoJSON lines: the console's base map."""
    service = request.app[SERVICE_AREA].value

    def build() -> dict[str, Any]:
        links = service.network.links if service.network is not None else ()
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "LineString",
                        "coordinates": [[round(x, 6), round(y, 6)] for x, y in link.path],
                    },
                    "properties": {"id": link.id, "kind": link.kind.value},
                }
                for link in links
            ],
        }

    return json_response(await asyncio.to_thread(build))


_AREA = "/api/incidents/{incident_id}/area"
#: 422 area_too_complex past the time limit; 503 area_busy when no area worker was free.
#: Beyond what the route's shape implies: refused areas and a busy area worker.
_AREA_ERRORS = (422, 503)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "PUT", _AREA, put_area,
        "Set the area (geometry | zone(s) | around a point | isolate a pipe), or add/remove a part;"
        " answers with the households affected",
        STEER, tag="areas", body=AreaRequest, response=AreaResult, errors=_AREA_ERRORS,
    ),
    Endpoint(
        "PUT", _AREA + "/description", put_description,
        "Describe the area as households know it, per language ({\"en\": \"Maple St 1-99\", \"zh-CN\": ...}):"
        " notices say this for \"where\"; it replaces the previous description (on the timeline)",
        STEER, tag="areas", body=AreaDescription, response=Incident, idempotent=Idempotency.one_append,
    ),
    Endpoint("GET", _AREA, get_area, "The area, valves to close and dry pipes as GeoJSON", ALL_ROLES,
             tag="areas"),
    Endpoint("GET", "/api/layers", layers, "Zone layers (pressure zones, DMAs) as GeoJSON", ALL_ROLES,
             tag="areas", uses_store=False),
    Endpoint("GET", "/api/network", network,
             "The pipe network as GeoJSON lines with their ids (empty when none is loaded)", ALL_ROLES,
             tag="areas", uses_store=False),
    Endpoint("GET", "/api/network/pipes/{pipe_id}", pipe,
             "A pipe as GeoJSON, with its households and what a break there would isolate"
             " (if_broken: valves to close, dry pipes, households), the same trace as PUT"
             " /api/incidents/{incident_id}/area with isolate", ALL_ROLES, tag="areas",
             query=(Query("inoperable", "a valve that cannot be closed (stuck, paved over); repeat for"
                          " each: the isolation widens across it, as with isolate.inoperable",
                          repeated=True),),
             errors=_AREA_ERRORS),
)  # fmt: skip
