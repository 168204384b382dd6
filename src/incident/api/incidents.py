"""Views of incidents and their timelines: parse the request, call the service, answer."""

from __future__ import annotations

import asyncio
import csv
import io

import orjson
from aiohttp import web

from incident.api.endpoint import ALL_ROLES, Endpoint, Query, json_response, query_int, read_body
from incident.api.schemas import HandoverBody, IncidentList, NoteBody, SeverityBody, StatusBody, Timeline
from incident.domain import OPEN_STATUSES, Declaration, Incident, Role, Status, TimelineEvent, describe
from incident.errors import InvalidInput
from incident.keys import INCIDENTS, PRINCIPAL, SERVICE_AREA, SETTINGS, TOKENS
from incident.timeline import Integrity

STEER = frozenset({Role.dispatcher, Role.command, Role.admin})
DECLARE = frozenset({Role.dispatcher, Role.admin})

_STATUS_FILTERS: dict[str, frozenset[Status] | None] = {
    "open": OPEN_STATUSES,
    "closed": frozenset({Status.closed, Status.cancelled}),
    "all": None,
    **{s.value: frozenset({s}) for s in Status},
}


def _incident_id(request: web.Request) -> str:
    return request.match_info["incident_id"]


async def declare(request: web.Request) -> web.Response:
    body = await read_body(request, Declaration)
    buffer_m = request.app[SETTINGS].area.isolation_buffer_m
    appended = await request.app[INCIDENTS].declare(
        body, request[PRINCIPAL], request.app[SERVICE_AREA], buffer_m
    )
    return json_response(appended.incident, status=201)


async def list_incidents(request: web.Request) -> web.Response:
    key = request.query.get("status", "open")
    if key not in _STATUS_FILTERS:
        raise InvalidInput(f"status must be one of: {', '.join(_STATUS_FILTERS)}; got {key!r}")
    limit = query_int(request, "limit", 100, lo=1, hi=1000)
    incidents = await request.app[INCIDENTS].list_incidents(_STATUS_FILTERS[key], limit)
    return json_response(IncidentList(incidents))


async def get_incident(request: web.Request) -> web.Response:
    return json_response(await request.app[INCIDENTS].get(_incident_id(request)))


async def change_status(request: web.Request) -> web.Response:
    body = await read_body(request, StatusBody)
    appended = await request.app[INCIDENTS].change_status(
        _incident_id(request), body.status, request[PRINCIPAL], body.reason
    )
    return json_response(appended.incident)


async def change_severity(request: web.Request) -> web.Response:
    body = await read_body(request, SeverityBody)
    appended = await request.app[INCIDENTS].change_severity(
        _incident_id(request), body.severity, request[PRINCIPAL], body.reason
    )
    return json_response(appended.incident)


async def add_note(request: web.Request) -> web.Response:
    body = await read_body(request, NoteBody)
    appended = await request.app[INCIDENTS].add_note(_incident_id(request), body.text, request[PRINCIPAL])
    return json_response(appended.events[-1], status=201)


async def confirm(request: web.Request) -> web.Response:
    appended = await request.app[INCIDENTS].confirm(_incident_id(request), request[PRINCIPAL])
    return json_response(appended.incident)


async def hand_over(request: web.Request) -> web.Response:
    body = await read_body(request, HandoverBody)
    if body.to not in request.app[TOKENS].names():
        raise InvalidInput(f"nobody named {body.to!r} has a token: hand over to a person who can sign in")
    appended = await request.app[INCIDENTS].hand_over(
        _incident_id(request), body.to, request[PRINCIPAL], body.reason
    )
    return json_response(appended.incident)


_CSV_COLUMNS = ("incident_id", "seq", "at", "type", "actor", "summary", "data", "prev_hash", "hash")


def _cell(value: str) -> str:
    # Spreadsheets run cells that start with these as formulas; a note must stay text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def timeline_csv(events: list[TimelineEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for e in events:
        data = orjson.dumps(e.data, option=orjson.OPT_SORT_KEYS).decode()
        writer.writerow(
            [
                e.incident_id,
                e.seq,
                e.at,
                _cell(e.type),
                _cell(e.actor),
                _cell(describe(e)),
                _cell(data),
                e.prev_hash,
                e.hash,
            ]
        )
    return out.getvalue()


async def timeline(request: web.Request) -> web.Response:
    incident_id = _incident_id(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidInput(f"format must be json or csv; got {fmt!r}")
    after = query_int(request, "after", 0, lo=0, hi=2**62)
    service = request.app[INCIDENTS]
    if fmt == "csv":
        events = await service.timeline(incident_id, after)
        return web.Response(
            text=await asyncio.to_thread(timeline_csv, events),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{incident_id}-timeline.csv"'},
        )
    integrity = await service.verify(incident_id)
    incident: Incident = await service.get(incident_id)
    events = await service.timeline(incident_id, after)
    return json_response(Timeline(incident=incident, events=events, integrity=integrity))


async def integrity(request: web.Request) -> web.Response:
    return json_response(await request.app[INCIDENTS].verify(_incident_id(request)))


_ID = "/api/incidents/{incident_id}"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/api/incidents",
        declare,
        "Declare an incident; the declaring dispatcher owns it",
        DECLARE,
        body=Declaration,
        response=Incident,
        status=201,
    ),
    Endpoint(
        "GET",
        "/api/incidents",
        list_incidents,
        "List incidents, newest first",
        ALL_ROLES,
        response=IncidentList,
        query=(
            Query(
                "status",
                "open (default), closed, all, or one status",
                {"type": "string", "enum": list(_STATUS_FILTERS)},
            ),
            Query("limit", "at most this many (1-1000, default 100)", {"type": "integer"}),
        ),
    ),
    Endpoint("GET", _ID, get_incident, "One incident's current state", ALL_ROLES, response=Incident),
    Endpoint(
        "POST",
        _ID + "/status",
        change_status,
        "Move an incident through its lifecycle (illegal moves are 409)",
        STEER,
        body=StatusBody,
        response=Incident,
    ),
    Endpoint(
        "POST",
        _ID + "/severity",
        change_severity,
        "Change the severity",
        STEER,
        body=SeverityBody,
        response=Incident,
    ),
    Endpoint(
        "POST",
        _ID + "/notes",
        add_note,
        "Add a note to the timeline",
        STEER,
        body=NoteBody,
        response=TimelineEvent,
        status=201,
    ),
    Endpoint(
        "POST",
        _ID + "/handover",
        hand_over,
        "Hand the incident over to another person (recorded on the timeline)",
        STEER,
        body=HandoverBody,
        response=Incident,
    ),
    Endpoint(
        "POST",
        _ID + "/confirm",
        confirm,
        "Confirm an incident an automatic rule opened; an unowned one becomes the caller's",
        DECLARE,
        response=Incident,
    ),
    Endpoint(
        "GET",
        _ID + "/timeline",
        timeline,
        "The full ordered timeline with its integrity check, as JSON or CSV",
        ALL_ROLES,
        response=Timeline,
        query=(
            Query("format", "json (default) or csv", {"type": "string", "enum": ["json", "csv"]}),
            Query("after", "only events after this sequence number", {"type": "integer"}),
        ),
    ),
    Endpoint(
        "GET",
        _ID + "/integrity",
        integrity,
        "Verify the timeline's hash chain",
        ALL_ROLES,
        response=Integrity,
    ),
)
