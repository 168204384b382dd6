"""Views of incidents and their timelines: parse the request, call the service, answer."""

from __future__ import annotations

import asyncio

from aiohttp import web

from incident.api.endpoint import (
    ALL_ROLES,
    Endpoint,
    Idempotency,
    Query,
    json_response,
    query_int,
    read_body,
)
from incident.api.schemas import HandoverBody, IncidentList, NoteBody, SeverityBody, StatusBody, Timeline
from incident.domain import OPEN_STATUSES, Declaration, Incident, Role, Status, TimelineEvent
from incident.errors import InvalidInput, NotFound
from incident.keys import CLOCK, INCIDENTS, PRINCIPAL, SERVICE_AREA, SETTINGS, STORE, TEMPLATES, TOKENS
from incident.review.cap import alerts_document
from incident.review.exports import after_action_report, cap_export
from incident.review.timeline import timeline_csv
from incident.timeline import Integrity

STEER = frozenset({Role.dispatcher, Role.command, Role.admin})
DECLARE = frozenset({Role.dispatcher, Role.admin})
#: Who reads after-action reports.
REVIEW = frozenset({Role.reviewer, Role.command, Role.admin})

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
        body, request[PRINCIPAL], request.app[SERVICE_AREA].value, buffer_m
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


_TIMELINE_FORMATS = ("json", "csv", "cap")


async def timeline(request: web.Request) -> web.Response:
    incident_id = _incident_id(request)
    fmt = request.query.get("format", "json")
    if fmt not in _TIMELINE_FORMATS:
        raise InvalidInput(f"format must be json or csv (the timeline) or cap (CAP 1.2 alerts); got {fmt!r}")
    after = query_int(request, "after", 0, lo=0, hi=2**62)
    service = request.app[INCIDENTS]
    if fmt == "cap":
        return await _cap(request, incident_id)
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


async def _cap(request: web.Request, incident_id: str) -> web.Response:
    """CAP 1.2: every public notice of the incident as an alert, always the whole timeline.

    By default one XML document holds them all (``<alerts>`` of our namespace around
    complete CAP ``<alert>`` elements; see :func:`incident.review.cap.alerts_document` for
    why); ``alert=IDENTIFIER`` answers that one alert as a standalone CAP document, the form
    a CAP consumer or aggregator takes.
    """
    app = request.app
    alerts = await cap_export(app[STORE], incident_id, app[TEMPLATES], app[SETTINGS].notify.utility_url)
    wanted = request.query.get("alert")
    if wanted is not None:
        found = next((a for a in alerts if a.identifier == wanted), None)
        if found is None:
            known = ", ".join(a.identifier for a in alerts) or "none: no notice was approved"
            raise NotFound(f"{incident_id} has no CAP alert {wanted!r} (alerts: {known})")
        return web.Response(
            text=found.document(),
            content_type="application/cap+xml",
            charset="utf-8",
            headers={"Content-Disposition": f'inline; filename="{found.identifier}.cap.xml"'},
        )
    return web.Response(
        text=alerts_document(incident_id, alerts),
        content_type="application/xml",
        charset="utf-8",
        headers={"Content-Disposition": f'inline; filename="{incident_id}-cap.xml"'},
    )


async def report(request: web.Request) -> web.Response:
    app = request.app
    html = await after_action_report(
        app[STORE], _incident_id(request), app[CLOCK].now(), app[SETTINGS].notify.timezone
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")


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
        idempotent=Idempotency.new_incident,
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
        idempotent=Idempotency.one_append,
    ),
    Endpoint(
        "POST",
        _ID + "/severity",
        change_severity,
        "Change the severity",
        STEER,
        body=SeverityBody,
        response=Incident,
        idempotent=Idempotency.one_append,
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
        idempotent=Idempotency.one_append,
    ),
    Endpoint(
        "POST",
        _ID + "/handover",
        hand_over,
        "Hand the incident over to another person (recorded on the timeline)",
        STEER,
        body=HandoverBody,
        response=Incident,
        idempotent=Idempotency.one_append,
    ),
    Endpoint(
        "POST",
        _ID + "/confirm",
        confirm,
        "Confirm an incident an automatic rule opened; an unowned one becomes the caller's",
        DECLARE,
        response=Incident,
        idempotent=Idempotency.one_append,
    ),
    Endpoint(
        "GET",
        _ID + "/timeline",
        timeline,
        "The full ordered timeline with its integrity check, as JSON or CSV; or the CAP 1.2 alerts "
        "of the incident's public notices (format=cap: application/xml, <alerts> around complete "
        "CAP <alert> elements; with alert=IDENTIFIER one alert as application/cap+xml)",
        ALL_ROLES,
        response=Timeline,
        query=(
            Query(
                "format", "json (default), csv or cap", {"type": "string", "enum": list(_TIMELINE_FORMATS)}
            ),
            Query("after", "only events after this sequence number (json, csv)", {"type": "integer"}),
            Query("alert", "format=cap: only this alert (its CAP identifier), as a standalone document"),
        ),
    ),
    Endpoint(
        "GET",
        _ID + "/report",
        report,
        "The after-action report: summary, response times, deliveries, SLA clocks, households "
        "never reached, the timeline and its integrity check (printable HTML)",
        REVIEW,
        content_type="text/html",
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
