"""Views of playbooks: the stage an incident is in, its SLA clocks, moving it on by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from aiohttp import web

import incident.playbook.clocks as clocks
from incident.api.endpoint import ALL_ROLES, Endpoint, Idempotency, json_response, read_body
from incident.api.incidents import STEER
from incident.core.clock import Timestamp
from incident.core.domain import Incident, check_etr
from incident.core.errors import NotFound
from incident.keys import CLOCK, INCIDENTS, PLAYBOOKS, PRINCIPAL, SETTINGS, STORE
from incident.playbook.engine import advisory_in_force
from incident.playbook.model import to_data

_ID = "/api/incidents/{incident_id}"


class StageBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    stage: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    reason: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class EtrBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: The estimated time of restoration, with a time zone.
    etr: datetime
    reason: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class StageView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str
    status: str | None
    #: How the stage is left: "manual", "report", "notices", "condition", "after".
    exits: list[str]
    current: bool


class TimerView(msgspec.Struct, frozen=True, kw_only=True):
    timer: str
    due_at: Timestamp
    state: str


class PlaybookView(msgspec.Struct, frozen=True, kw_only=True):
    incident_id: str
    playbook: str | None
    title: str | None
    stage: str | None
    entered_at: Timestamp | None
    stages: list[StageView]
    slas: list[clocks.SlaClock]
    timers: list[TimerView]
    advisory: str | None
    etr: Timestamp | None


class PlaybookSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    title: str
    kinds: list[str]
    utilities: list[str]
    stages: list[str]


class PlaybookList(msgspec.Struct, frozen=True):
    playbooks: list[PlaybookSummary]


async def incident_playbook(request: web.Request) -> web.Response:
    incident_id = request.match_info["incident_id"]
    incident = await request.app[INCIDENTS].get(incident_id)
    events = await request.app[STORE].timeline(incident_id)
    engine = request.app[PLAYBOOKS]
    playbook = engine.playbook_for(incident)
    current = clocks.current_stage(events)
    now = request.app[CLOCK].now()
    slas = clocks.sla_clocks(playbook.slas, events, now) if playbook else []
    stages = [
        StageView(id=s.id, title=s.label, status=s.status.value if s.status else None,
                  exits=[r.trigger.value for r in s.exit], current=current is not None and current[0] == s.id)
        for s in (playbook.stages if playbook else ())
    ]  # fmt: skip
    timers = [
        TimerView(timer=t.timer_id.removeprefix(f"{incident_id}:"), due_at=t.due_at, state=t.state)
        for t in await request.app[STORE].list_timers(incident_id)
        if t.state in ("pending", "claimed")
    ]
    advisory = advisory_in_force(events)
    etr = next((str(e.data["etr"]) for e in reversed(events) if e.type == "etr_set"), None)
    view = PlaybookView(
        incident_id=incident_id, playbook=playbook.name if playbook else None,
        title=playbook.title if playbook else None, stage=current[0] if current else None,
        entered_at=current[1] if current else None, stages=stages, slas=slas, timers=timers,
        advisory=advisory.value if advisory else None, etr=etr,
    )  # fmt: skip
    return json_response(view)


async def move_stage(request: web.Request) -> web.Response:
    incident_id = request.match_info["incident_id"]
    body = await read_body(request, StageBody)
    engine = request.app[PLAYBOOKS]
    await engine.enter_by_hand(incident_id, body.stage, request[PRINCIPAL], body.reason)
    return json_response(await request.app[INCIDENTS].get(incident_id))


def check_etr_now(request: web.Request, etr: datetime) -> None:
    """Refuse an ETR in the past or too far ahead ([incidents] etr_grace_s, etr_horizon_days)."""
    limits = request.app[SETTINGS].incidents
    check_etr(
        etr,
        request.app[CLOCK].now(),
        timedelta(seconds=limits.etr_grace_s),
        timedelta(days=limits.etr_horizon_days),
    )


async def set_etr(request: web.Request) -> web.Response:
    body = await read_body(request, EtrBody)
    check_etr_now(request, body.etr)
    appended = await request.app[INCIDENTS].set_etr(
        request.match_info["incident_id"], body.etr, request[PRINCIPAL], body.reason
    )
    return json_response(appended.incident)


async def list_playbooks(request: web.Request) -> web.Response:
    found = [
        PlaybookSummary(
            name=p.name,
            title=p.title,
            kinds=[k.value for k in p.match.kinds] if p.match else [],
            utilities=[u.value for u in p.match.utilities] if p.match else [],
            stages=[s.id for s in p.stages],
        )
        for p in sorted(request.app[PLAYBOOKS].playbooks.values(), key=lambda p: p.name)
    ]
    return json_response(PlaybookList(found))


async def get_playbook(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    playbook = request.app[PLAYBOOKS].playbooks.get(name)
    if playbook is None:
        raise NotFound(f"no playbook {name!r}")
    return web.json_response(to_data(playbook))


ENDPOINTS = (
    Endpoint(
        "GET", "/api/playbooks", list_playbooks, "The playbooks loaded", ALL_ROLES, response=PlaybookList
    ),
    Endpoint("GET", "/api/playbooks/{name}", get_playbook, "One playbook, as its file says", ALL_ROLES),
    Endpoint(
        "GET",
        _ID + "/playbook",
        incident_playbook,
        "The incident's playbook: stages, the current one, SLA clocks (running, met, breached), "
        "pending timers, the advisory in force and the ETR",
        ALL_ROLES,
        response=PlaybookView,
    ),
    Endpoint(
        "POST",
        _ID + "/etr",
        set_etr,
        "Set the estimated time of restoration (notices and pages name it); one in the past"
        " (422 etr_in_past, beyond [incidents] etr_grace_s) or too far ahead (422 etr_too_far,"
        " beyond [incidents] etr_horizon_days) is refused",
        STEER,
        body=EtrBody,
        response=Incident,
        idempotent=Idempotency.incident,
    ),
    Endpoint(
        "POST",
        _ID + "/stage",
        move_stage,
        "Move the incident to a stage of its playbook by hand (its entry actions then run)",
        STEER,
        body=StageBody,
        response=Incident,
        idempotent=Idempotency.incident,
    ),
)
