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
from incident.api.paging import CURSOR, LIMIT, cut, page_request, pair
from incident.api.schemas import (
    HandoverBody,
    IncidentList,
    NoteBody,
    PublicBody,
    SeverityBody,
    StatusBody,
    Timeline,
)
from incident.core.domain import OPEN_STATUSES, Declaration, Incident, Role, Status, TimelineEvent
from incident.core.errors import InvalidInput, NotFound
from incident.core.timeline import Integrity
from incident.keys import (
    CLOCK,
    INCIDENTS,
    PLAYBOOKS,
    PRINCIPAL,
    SERVICE_AREA,
    SETTINGS,
    STORE,
    TEMPLATES,
    TOKENS,
)
from incident.review.cap import alerts_document
from incident.review.exports import after_action_report, cap_export
from incident.review.timeline import timeline_csv

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


#: Who can be handed an incident: people who can then act on it (a reviewer cannot; an admin
#: runs the system, not incidents).
HANDOVER_TARGETS = frozenset({Role.dispatcher, Role.command})


async def declare(request: web.Request) -> web.Response:
    body = await read_body(request, Declaration)
    known = request.app[PLAYBOOKS].playbooks
    if body.playbook is not None and body.playbook not in known:
        raise InvalidInput(
            f"no playbook {body.playbook!r}; the playbooks are: {', '.join(sorted(known)) or 'none loaded'}"
            " (or leave playbook out: one is chosen by kind and utility)",
            code="unknown_playbook",
        )
    buffer_m = request.app[SETTINGS].area.isolation_buffer_m
    appended = await request.app[INCIDENTS].declare(
        body, request[PRINCIPAL], request.app[SERVICE_AREA].value, buffer_m
    )
    return json_response(appended.incident, status=201)


_STATUS = Query.choice(
    "status", "open (default), closed, all, or one status", _STATUS_FILTERS, default="open"
)


async def list_incidents(request: web.Request) -> web.Response:
    key = request.query.get(_STATUS.name, "open")
    size, after = page_request(request, "incidents", (str, str))
    rows = await request.app[INCIDENTS].list_incidents(_STATUS_FILTERS[key], size + 1, pair(after))
    page, cursor = cut(rows, size, "incidents", lambda i: (i.declared_at, i.id))
    return json_response(IncidentList(page, cursor))


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


async def set_public(request: web.Request) -> web.Response:
    body = await read_body(request, PublicBody)
    appended = await request.app[INCIDENTS].set_public(
        _incident_id(request), body.public, request[PRINCIPAL], body.reason
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
    role = request.app[TOKENS].role_of(body.to)
    if role is None:
        raise InvalidInput(
            f"nobody named {body.to!r} has a token: hand over to a person who can sign in",
            code="unknown_person",
        )
    if role not in HANDOVER_TARGETS:
        raise InvalidInput(
            f"{body.to!r} is a {role.value}, who cannot act on an incident: hand over to a dispatcher "
            "or command staff",
            code="handover_role",
        )
    appended = await request.app[INCIDENTS].hand_over(
        _incident_id(request), body.to, request[PRINCIPAL], body.reason
    )
    return json_response(appended.incident)


_TIMELINE_FORMATS = ("json", "csv", "cap")
_FORMAT = Query.choice(
    "format",
    "json or csv (the timeline; json a page at a time) or cap (CAP 1.2 alerts)",
    _TIMELINE_FORMATS,
    default="json",
)
_AFTER = Query.integer(
    "after", "only events after this sequence number (json, csv)", default=0, lo=0, hi=2**62
)
#: A timeline page is larger than other lists' (the review reads whole timelines).
_EVENTS = Query.integer("limit", "format=json: at most this many events", default=1000, lo=1, hi=5000)


async def timeline(request: web.Request) -> web.Response:
    incident_id = _incident_id(request)
    fmt = request.query.get(_FORMAT.name, "json")
    after = query_int(request, _AFTER.name, 0, lo=0, hi=2**62)
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
    size, cursor = page_request(request, "timeline", (int,), _EVENTS)
    if cursor is not None:
        after = max(after, int(cursor[0]))
    integrity = await service.verify(incident_id)
    incident: Incident = await service.get(incident_id)
    rows = await service.timeline(incident_id, after, size + 1)
    events, next_cursor = cut(rows, size, "timeline", lambda e: (e.seq,))
    return json_response(Timeline(incident, events, integrity, next_cursor))


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
        "Declare an incident; the declaring dispatcher owns it. An unknown playbook is 422"
        " unknown_playbook (GET /api/playbooks lists them)",
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
        "List incidents, newest first, a page at a time",
        ALL_ROLES,
        response=IncidentList,
        query=(_STATUS, LIMIT, CURSOR),
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
        _ID + "/public",
        set_public,
        "Show the incident to residents on the public page and feeds (public: true) or take it off"
        " (false); approving a notice to households also makes it public. A drill is 409"
        " drill_not_public",
        STEER,
        body=PublicBody,
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
        "Hand the incident over to another person, a dispatcher or command staff (recorded on the"
        " timeline); anyone else is 422 (unknown_person, handover_role)",
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
        "The ordered timeline with its integrity check: as JSON a page at a time (limit, cursor), "
        "as CSV whole (text/csv); or the CAP 1.2 alerts of the incident's public notices (format=cap: "
        "application/xml, <alerts> around complete CAP <alert> elements; with alert=IDENTIFIER one "
        "alert as application/cap+xml)",
        ALL_ROLES,
        response=Timeline,
        alternatives=("text/csv", "application/xml", "application/cap+xml"),
        query=(
            _FORMAT,
            _AFTER,
            _EVENTS,
            CURSOR,
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
