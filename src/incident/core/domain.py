"""Incidents, timeline events and the rules of the lifecycle.

Pure: data in, data out. The current state of an incident is the fold of its timeline
events with :func:`apply_event`; commands (:func:`declare`, :func:`change_status`, ...)
look at the current state and return the events to append, or raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from incident.core.clock import Timestamp
from incident.core.errors import Conflict, IllegalTransition, InvalidInput, NotOwner


class Kind(StrEnum):
    main_break = "main_break"
    unplanned_outage = "unplanned_outage"
    planned_outage = "planned_outage"
    low_pressure = "low_pressure"
    contamination = "contamination"
    gas_leak = "gas_leak"
    heat_outage = "heat_outage"


class Utility(StrEnum):
    water = "water"
    gas = "gas"
    heat = "heat"


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


SEVERITY_ORDER: Mapping[Severity, int] = {
    Severity.low: 0,
    Severity.medium: 1,
    Severity.high: 2,
    Severity.critical: 3,
}


class Status(StrEnum):
    declared = "declared"
    active = "active"
    restoring = "restoring"
    monitoring = "monitoring"
    closed = "closed"
    cancelled = "cancelled"


class Role(StrEnum):
    dispatcher = "dispatcher"
    command = "command"
    reviewer = "reviewer"
    admin = "admin"


OPEN_STATUSES = frozenset({Status.declared, Status.active, Status.restoring, Status.monitoring})

#: Allowed status changes. Closed and cancelled are final: the timeline of a finished
#: incident must not grow new operational facts, so a relapse is a new incident.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.declared: frozenset({Status.active, Status.cancelled}),
    Status.active: frozenset({Status.restoring, Status.monitoring, Status.closed, Status.cancelled}),
    Status.restoring: frozenset({Status.active, Status.monitoring, Status.closed}),
    Status.monitoring: frozenset({Status.active, Status.closed}),
    Status.closed: frozenset(),
    Status.cancelled: frozenset(),
}


class EventType(StrEnum):
    declared = "declared"
    status_changed = "status_changed"
    note_added = "note_added"
    handed_over = "handed_over"
    severity_changed = "severity_changed"
    report_linked = "report_linked"
    confirmed = "confirmed"
    area_changed = "area_changed"
    #: The public description of the area, per language (what notices say for "where").
    area_described = "area_described"
    #: Residents see the incident on the public page and feeds (a dispatcher, or a notice).
    made_public = "made_public"
    #: Residents no longer see it (a dispatcher took it off the public page).
    made_internal = "made_internal"


#: One line a person typed, for residents to read (an area's description, a notice's note):
#: no control characters (C0, DEL, C1: tabs and line breaks too) and no line or paragraph
#: separators. They break email headers and XML feeds, and no one means them. (The pattern
#: ends with a look-ahead for the end: ``$`` would let a final line break through.)
ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*(?![\s\S])"
#: What a person is told when the pattern refused their text.
ONE_LINE_RULE = "must be one line without control characters (no tabs, line breaks or other controls)"
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
IncidentId = Annotated[str, msgspec.Meta(pattern=r"^INC-\d{4}-\d{6,}$")]


class Incident(msgspec.Struct, frozen=True, kw_only=True):
    """The current state of an incident: a projection of its timeline."""

    id: str
    kind: Kind
    utility: Utility
    title: str
    severity: Severity
    status: Status
    owner: str | None
    drill: bool
    playbook: str | None = None
    #: The playbook stage the incident is in (None: no playbook, or not started).
    stage: str | None = None
    #: Estimated time of restoration (ISO), once given.
    etr: Timestamp | None = None
    #: Planned work: start and end (ISO), from the declaration.
    start: Timestamp | None = None
    end: Timestamp | None = None
    #: The affected area as GeoJSON (lon/lat), once drawn or derived.
    area: dict[str, Any] | None = None
    #: How the area was made: parts added or removed (drawn, zones, around, isolation).
    area_parts: list[dict[str, Any]] = msgspec.field(default_factory=list)
    #: Households in the area, when it was last set.
    households: int | None = None
    #: How households know the place, per language ({"en": "Maple St 1-99", "zh-CN": ...}),
    #: as a dispatcher entered it; notices take their "where" from it (never from the title).
    area_description: dict[str, str] = msgspec.field(default_factory=dict)
    declared_at: Timestamp
    updated_at: Timestamp
    closed_at: Timestamp | None = None
    #: Shown to residents (public page, feeds): a dispatcher made it public, or a notice to
    #: households was approved for it. A drill never is.
    public: bool = False
    #: Opened by an automatic rule and waiting for a dispatcher to confirm it.
    awaiting_confirmation: bool = False
    #: Reports linked to this incident.
    reports: int = 0
    #: Sequence number of the newest timeline event.
    last_seq: int = 0
    #: Chain hash of the newest timeline event; a deleted tail event shows up against it.
    head_hash: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class EventDraft(msgspec.Struct, frozen=True, kw_only=True):
    """An event a command wants appended; the store adds sequence, time and hashes."""

    type: str
    actor: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class TimelineEvent(msgspec.Struct, frozen=True, kw_only=True):
    incident_id: str
    seq: int
    type: str
    actor: str
    at: Timestamp
    data: dict[str, Any]
    prev_hash: str
    hash: str


# --- folding events into state ----------------------------------------------------------


def apply_event(state: Incident | None, event: TimelineEvent) -> Incident:
    """The state after ``event``. Unknown event types only move ``last_seq``/``updated_at``,
    so later features can add events without touching this fold."""
    if state is None:
        if event.type != EventType.declared:
            raise InvalidInput(f"the first event of {event.incident_id} must be 'declared'")
        d = event.data
        return Incident(
            id=event.incident_id,
            kind=Kind(d["kind"]),
            utility=Utility(d["utility"]),
            title=d["title"],
            severity=Severity(d["severity"]),
            status=Status.declared,
            owner=d.get("owner"),
            drill=bool(d.get("drill", False)),
            playbook=d.get("playbook"),
            area=d.get("area"),
            start=d.get("start"),
            end=d.get("end"),
            awaiting_confirmation=bool(d.get("awaiting_confirmation", False)),
            declared_at=event.at,
            updated_at=event.at,
            last_seq=event.seq,
            head_hash=event.hash,
        )
    changes: dict[str, Any] = {"updated_at": event.at, "last_seq": event.seq, "head_hash": event.hash}
    match event.type:
        case EventType.status_changed:
            to = Status(event.data["to"])
            changes["status"] = to
            changes["closed_at"] = event.at if to not in OPEN_STATUSES else None
        case EventType.handed_over:
            changes["owner"] = event.data["to"]
        case EventType.severity_changed:
            changes["severity"] = Severity(event.data["to"])
        case EventType.report_linked:
            changes["reports"] = state.reports + 1
        case EventType.confirmed:
            changes["awaiting_confirmation"] = False
        case "etr_set":
            changes["etr"] = event.data["etr"]
        case "stage_entered":
            changes["stage"] = event.data["stage"]
            changes["playbook"] = event.data.get("playbook") or state.playbook
        case EventType.area_changed:
            changes["area"] = event.data["geometry"]
            changes["area_parts"] = event.data["parts"]
            changes["households"] = event.data["households_after"]
        case EventType.area_described:
            changes["area_description"] = dict(event.data["description"])
        case EventType.made_public:
            changes["public"] = True
        case EventType.made_internal:
            changes["public"] = False
    return msgspec.structs.replace(state, **changes)


def fold(events: list[TimelineEvent]) -> Incident | None:
    state: Incident | None = None
    for event in events:
        state = apply_event(state, event)
    return state


def describe(event: TimelineEvent) -> str:
    """One line of plain language for reviewers (CSV exports, reports)."""
    d = event.data
    reason = f" ({d['reason']})" if d.get("reason") else ""
    match event.type:
        case EventType.declared:
            drill = "DRILL: " if d.get("drill") else ""
            return f"{drill}declared {d['kind']} ({d['utility']}), severity {d['severity']}: {d['title']}"
        case EventType.status_changed:
            return f"status {d['from']} -> {d['to']}{reason}"
        case EventType.note_added:
            return str(d["text"])
        case EventType.handed_over:
            return f"handed over from {d['from'] or 'nobody'} to {d['to']}{reason}"
        case EventType.severity_changed:
            return f"severity {d['from']} -> {d['to']}{reason}"
        case EventType.report_linked:
            return f"report {d['report_id']} ({d['kind']}, {d['source']}) linked: {d['reason']}"
        case EventType.confirmed:
            return "confirmed by a dispatcher"
        case EventType.area_changed:
            part = d.get("part") or {}
            how = part.get("method", "area")
            if how == "isolation":
                how = f"isolation of pipe {part.get('pipe')}"
            elif how == "zones":
                how = f"zones {', '.join(part.get('zones', []))}"
            before, after = d.get("households_before"), d.get("households_after")
            return f"area {d.get('op', 'replace')}: {how}; households {before} -> {after}"
        case EventType.area_described:
            texts = "; ".join(f"{lang}: {text}" for lang, text in d.get("description", {}).items())
            return f"area described for households: {texts}"
        case EventType.made_public:
            notice = d.get("notice_id")
            why = f"notice {notice} to households approved" if notice else "by a dispatcher"
            return f"made public ({why}): residents see it on the public page and feeds{reason}"
        case EventType.made_internal:
            return f"made internal: residents no longer see it{reason}"
    return _describe_more(event.type, d) or event.type.replace("_", " ")


def _describe_more(kind: str, d: Mapping[str, Any]) -> str | None:
    """Playbook and notice events, for reviewers."""
    reason = f" ({d['reason']})" if d.get("reason") else ""
    match kind:
        case "stage_entered":
            came = f" from {d['from']}" if d.get("from") else ""
            return f"stage {d.get('title') or d['stage']}{came}{reason}"
        case "notice_planned":
            return (
                f"notice {d['notice_id']} planned: {d.get('template')} by {', '.join(d.get('channels', []))}"
                + (f", {d['households']} households" if "households" in d else "")
            )
        case "notice_approved":
            return f"notice {d['notice_id']} approved: {d.get('deliveries', 0)} messages"
        case "notice_sent":
            return f"notice {d['notice_id']} ({d.get('template')}) handed to the carriers"
        case "sla_started" | "sla_met":
            return (
                f"SLA {d['sla']} met (due {d.get('due_at')})"
                if kind == "sla_met"
                else f"SLA {d['sla']} started"
            )
        case "sla_breached":
            escalated = ", ".join(d.get("escalated_to", [])) or "nobody"
            title = d.get("title") or d["sla"]
            return f"SLA BREACHED: {title} (due {d.get('due_at')}); escalated to {escalated}"
        case "etr_set":
            return f"ETR set to {d['etr']}{reason}"
        case "etr_requested":
            return f"ETR asked for{reason}"
        case "advisory_set":
            return f"advisory in force: {str(d['advisory']).replace('_', '-')}{reason}"
        case "advisory_lifted":
            return f"advisory lifted{reason}"
        case "page_sent":
            return f"paged rota {d['rota']} ({d.get('people', 0)} people): {d.get('text', '')}"
    return None


# --- commands: current state in, events out ----------------------------------------------


class Declaration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Kind
    utility: Utility
    title: Title
    severity: Severity
    drill: bool = False
    playbook: Name | None = None
    #: A drawn area: GeoJSON Polygon or MultiPolygon in lon/lat.
    area: dict[str, Any] | None = None
    #: Planned work: when it starts and ends (with a time zone); playbooks time notices by it.
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2026-11-24T09:00:00+08:00)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")


def declare(
    declaration: Declaration,
    actor: str,
    *,
    owner: str | None,
    auto: dict[str, Any] | None = None,
) -> list[EventDraft]:
    """Open an incident. ``auto`` names the rule and report when a rule declared it; such
    an incident waits for a dispatcher's confirmation when the rule says so."""
    data = msgspec.to_builtins(declaration)
    for optional in ("area", "start", "end"):
        if data.get(optional) is None:
            data.pop(optional, None)
    data["owner"] = owner
    if auto is not None:
        data["auto_declared"] = auto
        data["awaiting_confirmation"] = bool(auto.get("confirm", False))
    return [EventDraft(type=EventType.declared, actor=actor, data=data)]


def change_area(state: Incident, data: dict[str, Any], actor: str) -> list[EventDraft]:
    """``data`` is what the area computation found (parts, geometry, household counts)."""
    _require_open(state, "change the area of")
    return [EventDraft(type=EventType.area_changed, actor=actor, data=data)]


def describe_area(state: Incident, description: Mapping[str, str], actor: str) -> list[EventDraft]:
    """The public description of the area, per language; it replaces the previous one."""
    _require_open(state, "describe the area of")
    texts = {lang: text.strip() for lang, text in description.items() if text.strip()}
    if not texts:
        raise InvalidInput('give the area description in at least one language, e.g. {"en": "Maple St"}')
    if texts == state.area_description:
        raise IllegalTransition(f"{state.id} already has this area description")
    return [EventDraft(type=EventType.area_described, actor=actor, data={"description": texts})]


def set_public(state: Incident, public: bool, actor: str, reason: str | None) -> list[EventDraft]:
    """A dispatcher shows the incident to residents (public page, feeds) or takes it off."""
    _require_open(state, "make public or internal")
    if state.drill:
        raise Conflict(f"{state.id} is a drill: drills are never shown to residents", code="drill_not_public")
    if public == state.public:
        raise IllegalTransition(f"{state.id} is already {'public' if public else 'internal'}")
    data: dict[str, Any] = {"reason": reason} if reason else {}
    if public:
        return [EventDraft(type=EventType.made_public, actor=actor, data=data)]
    return [EventDraft(type=EventType.made_internal, actor=actor, data=data)]


def public_by_notice(state: Incident, notice_id: str, actor: str) -> list[EventDraft]:
    """A notice to households was approved: what they were told is public, so the incident is
    too (said on the timeline). Nothing for a drill, or an incident already public."""
    if state.drill or state.public:
        return []
    return [EventDraft(type=EventType.made_public, actor=actor, data={"notice_id": notice_id})]


def link_report(state: Incident, report: dict[str, Any], actor: str, reason: str) -> list[EventDraft]:
    """``report`` is the report's summary fields (id, kind, source, severity, ...)."""
    _require_open(state, "link a report to")
    return [EventDraft(type=EventType.report_linked, actor=actor, data={**report, "reason": reason})]


def confirm(state: Incident, actor: str, role: Role) -> list[EventDraft]:
    """A dispatcher confirms an incident a rule opened; if nobody owns it, they take it."""
    _require_open(state, "confirm")
    if not state.awaiting_confirmation:
        raise IllegalTransition(f"{state.id} does not await confirmation")
    drafts = [EventDraft(type=EventType.confirmed, actor=actor, data={})]
    if state.owner is None and role in (Role.dispatcher, Role.admin):
        drafts.append(EventDraft(type=EventType.handed_over, actor=actor, data={"from": None, "to": actor}))
    return drafts


def change_status(state: Incident, to: Status, actor: str, reason: str | None) -> list[EventDraft]:
    if to == state.status:
        raise IllegalTransition(f"{state.id} is already {to.value}")
    allowed = TRANSITIONS[state.status]
    if to not in allowed:
        if not allowed:
            hint = (
                f"{state.id} is {state.status.value}; a finished incident cannot change (declare a new one)"
            )
        else:
            options = ", ".join(sorted(s.value for s in allowed))
            hint = f"{state.id} is {state.status.value}; it can move to: {options}"
        raise IllegalTransition(f"cannot move from {state.status.value} to {to.value}: {hint}")
    data: dict[str, Any] = {"from": state.status.value, "to": to.value}
    if reason:
        data["reason"] = reason
    return [EventDraft(type=EventType.status_changed, actor=actor, data=data)]


def add_note(state: Incident, text: str, actor: str) -> list[EventDraft]:
    _require_open(state, "add a note to")
    return [EventDraft(type=EventType.note_added, actor=actor, data={"text": text})]


def change_severity(state: Incident, to: Severity, actor: str, reason: str | None) -> list[EventDraft]:
    _require_open(state, "change the severity of")
    if to == state.severity:
        raise IllegalTransition(f"{state.id} is already of severity {to.value}")
    data: dict[str, Any] = {"from": state.severity.value, "to": to.value}
    if reason:
        data["reason"] = reason
    return [EventDraft(type=EventType.severity_changed, actor=actor, data=data)]


def set_etr(state: Incident, etr: datetime, actor: str, reason: str | None) -> list[EventDraft]:
    _require_open(state, "set the ETR of")
    if etr.tzinfo is None:
        raise InvalidInput("etr needs a time zone (e.g. 2026-11-24T18:00:00+08:00)")
    at = etr.astimezone(UTC).isoformat(timespec="microseconds")
    return [EventDraft(type="etr_set", actor=actor, data={"etr": at, "reason": reason or ""})]


def check_etr(etr: datetime, now: datetime, grace: timedelta, horizon: timedelta) -> None:
    """An ETR is a promise to households: refuse one already past (beyond ``grace``, a time
    that went by while it was typed) or further ahead than ``horizon`` (a wrong year or month)."""
    if etr.tzinfo is None:
        raise InvalidInput("etr needs a time zone (e.g. 2026-11-24T18:00:00+08:00)")
    shown = f"{etr.isoformat()} (now {now.astimezone(UTC).isoformat(timespec='minutes')})"
    if etr < now - grace:
        raise InvalidInput(
            f"the ETR {shown} is in the past; give a restoration time still to come", code="etr_in_past"
        )
    if etr > now + horizon:
        raise InvalidInput(
            f"the ETR {shown} is more than {horizon.total_seconds() / 86400:g} days ahead "
            "([incidents] etr_horizon_days): check the date",
            code="etr_too_far",
        )


def hand_over(state: Incident, to: str, actor: str, role: Role, reason: str | None) -> list[EventDraft]:
    """First-responder ownership: the owner keeps an incident until it is handed over.

    The owner, command staff or an admin may hand it over; a dispatcher may take an
    incident that nobody owns (e.g. one declared by an automatic rule).
    """
    _require_open(state, "hand over")
    if to == state.owner:
        raise IllegalTransition(f"{state.id} is already owned by {to}")
    may = actor == state.owner or role in (Role.command, Role.admin) or (state.owner is None and to == actor)
    if not may:
        raise NotOwner(
            f"{state.id} is owned by {state.owner}; only they, command staff or an admin can hand it over"
        )
    data: dict[str, Any] = {"from": state.owner, "to": to}
    if reason:
        data["reason"] = reason
    return [EventDraft(type=EventType.handed_over, actor=actor, data=data)]


def _require_open(state: Incident, what: str) -> None:
    if not state.is_open:
        raise IllegalTransition(f"cannot {what} {state.id}: it is {state.status.value}")


def incident_id(year: int, number: int) -> str:
    return f"INC-{year:04d}-{number:06d}"
