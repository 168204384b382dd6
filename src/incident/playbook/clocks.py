"""What the timeline says about a playbook's clocks, conditions and stages. Pure.

Everything here reads a list of :class:`~incident.core.domain.TimelineEvent` (in ``seq`` order)
and answers one question: when did a milestone happen (:func:`milestone_at`), where does each
SLA clock stand (:func:`sla_clocks`), does a named condition hold (:func:`condition_holds`),
may the current stage be left (:func:`exit_due`). The engine appends the events these answers
call for; nothing here does I/O or keeps state.

Timestamps are ISO strings. Event times come from :func:`incident.core.clock.isoformat`, but a
report's ``observed_at`` may carry any offset, so every comparison is made on datetimes; a
timestamp without an offset is taken as UTC.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from incident.core.clock import Timestamp, isoformat
from incident.core.domain import EventType, Status, TimelineEvent
from incident.playbook.model import (
    Condition,
    ExitRule,
    ExitTrigger,
    Milestone,
    MilestoneEvent,
    Scalar,
    Sla,
    Stage,
)

__all__ = [
    "ClockState",
    "SlaClock",
    "condition_holds",
    "condition_progress",
    "current_stage",
    "due_breaches",
    "exit_due",
    "milestone_at",
    "newly_met",
    "next_deadline",
    "planned_start",
    "report_kind",
    "report_matches",
    "sla_clocks",
]

#: A moment: an aware ``datetime`` or its ISO text.
Instant = datetime | str

# Timeline event types of the playbook engine (issue 6); domain.EventType holds the older ones.
STAGE_ENTERED = "stage_entered"
NOTICE_SENT = "notice_sent"
SLA_MET = "sla_met"
SLA_BREACHED = "sla_breached"


def _dt(value: Instant) -> datetime:
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# --- reports -----------------------------------------------------------------------------------


def report_kind(data: Mapping[str, Any]) -> str:
    """A linked report's kind: ``details.event`` when the report carries one (lab results,
    crew messages), else its ``kind``."""
    details = data.get("details")
    if isinstance(details, Mapping):
        event = details.get("event")
        if isinstance(event, str) and event:
            return event
    return str(data["kind"])


def _same_value(actual: Any, wanted: Scalar) -> bool:
    # Bools first: they are ints to Python, but `true` must not equal 1.
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return _text(actual) == _text(wanted)
    if isinstance(actual, int | float) and isinstance(wanted, int | float):
        return actual == wanted  # 7 == 7.0
    # Reports arrive as JSON from many sources: "7" and 7, "clean" and "clean" are the same.
    return _text(actual) == _text(wanted)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def report_matches(data: Mapping[str, Any], kinds: Collection[str], where: Mapping[str, Scalar]) -> bool:
    """Whether a linked report (``report_linked`` data) is of one of ``kinds`` and its
    ``details`` hold every ``where`` value. Values compare as numbers when both are numbers,
    else as text (booleans as ``true``/``false``); a missing key never matches."""
    if report_kind(data) not in kinds:
        return False
    details = data.get("details")
    details = details if isinstance(details, Mapping) else {}
    return all(key in details and _same_value(details[key], value) for key, value in where.items())


def _observed(event: TimelineEvent) -> datetime:
    # A report without an observation time counts as observed when it was linked.
    observed = event.data.get("observed_at")
    return _dt(observed if isinstance(observed, str) and observed else event.at)


# --- milestones --------------------------------------------------------------------------------


def _is_milestone(milestone: Milestone, event: TimelineEvent) -> bool:
    d, arg = event.data, milestone.arg
    match milestone.event:
        case MilestoneEvent.declared:
            return event.type == EventType.declared
        case MilestoneEvent.first_notice_sent:
            return event.type == NOTICE_SENT
        case MilestoneEvent.notice_sent:
            return event.type == NOTICE_SENT and d.get("template") == arg
        case MilestoneEvent.stage:
            return event.type == STAGE_ENTERED and d.get("stage") == arg
        case MilestoneEvent.report:
            return event.type == EventType.report_linked and report_kind(d) == arg
        case MilestoneEvent.status:
            # An incident is born `declared` without a status_changed event.
            if arg == Status.declared and event.type == EventType.declared:
                return True
            return event.type == EventType.status_changed and d.get("to") == arg
    return False


def milestone_at(
    milestone: Milestone, events: Iterable[TimelineEvent], *, since: Instant | None = None
) -> str | None:
    """The time (the event's ``at``) ``milestone`` first happened at or after ``since``
    (None: ever); None when it has not. For ``report:<kind>`` it is when the report was
    linked, not when it was observed."""
    after = None if since is None else _dt(since)
    for event in events:
        if _is_milestone(milestone, event) and (after is None or _dt(event.at) >= after):
            return event.at
    return None


# --- SLA clocks --------------------------------------------------------------------------------

ClockState = Literal["pending", "running", "met", "breached"]


class SlaClock(msgspec.Struct, frozen=True, kw_only=True):
    """Where one SLA stands, computed from the timeline.

    ``pending``: not started, or a ``before_start`` SLA without a known planned start;
    ``running``: started, not yet met, not yet due; ``met``: stopped by ``due_at``;
    ``breached``: ``due_at`` passed first (``met_at`` shows when it was met late, if it was).
    """

    sla: str
    title: str
    state: ClockState
    started_at: Timestamp | None = None
    due_at: Timestamp | None = None
    met_at: Timestamp | None = None
    #: When the breach became true: ``due_at`` of a breached clock.
    breached_at: Timestamp | None = None
    #: A ``sla_breached`` event for this SLA is already on the timeline.
    breach_recorded: bool = False
    #: Rotas to page on breach (the SLA's ``escalate``), so a breach needs no playbook lookup.
    escalate: tuple[str, ...] = ()


def planned_start(events: Iterable[TimelineEvent]) -> str | None:
    """A planned outage's start: the declaration's, else the first report's ``details.start``
    (free-form in a report: only a timestamp with a time zone counts)."""
    for e in events:
        if e.type == "declared" and e.data.get("start"):
            return _instant(e.data["start"])
        if e.type == "report_linked" and (e.data.get("details") or {}).get("start"):
            found = _instant(e.data["details"]["start"])
            if found is not None:
                return found
    return None


def _instant(value: Any) -> str | None:
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return isoformat(at) if at.tzinfo is not None else None


def _due_at(sla: Sla, started_at: str, start: str | None) -> str | None:
    if sla.within is not None:
        return isoformat(_dt(started_at) + sla.within)
    assert sla.before_start is not None
    return None if start is None else isoformat(_dt(start) - sla.before_start)


def _sla_clock(
    sla: Sla, events: list[TimelineEvent], now: datetime, start: str | None, breached: frozenset[str]
) -> SlaClock:
    base = SlaClock(
        sla=sla.id,
        title=sla.title,
        state="pending",
        breach_recorded=sla.id in breached,
        escalate=sla.escalate,
    )
    started_at = milestone_at(sla.start, events)
    if started_at is None:
        return base
    due_at = _due_at(sla, started_at, start)
    if due_at is None:
        # No deadline to judge against yet; judged once the planned start is known.
        return msgspec.structs.replace(base, started_at=started_at)
    met_at = milestone_at(sla.stop, events, since=started_at)
    due = _dt(due_at)
    base = msgspec.structs.replace(base, started_at=started_at, due_at=due_at, met_at=met_at)
    if met_at is not None and _dt(met_at) <= due:
        return msgspec.structs.replace(base, state="met")
    # The deadline is inclusive for meeting; at due_at itself an unmet clock is breached,
    # so a wake-up timer set for due_at finds the breach.
    if met_at is not None or now >= due:
        return msgspec.structs.replace(base, state="breached", breached_at=due_at)
    return msgspec.structs.replace(base, state="running")


def sla_clocks(
    slas: Iterable[Sla], events: Iterable[TimelineEvent], now: Instant, start: str | None = None
) -> list[SlaClock]:
    """Every SLA's clock, in the playbook's order. ``within`` SLAs are due that long after
    their start milestone; ``before_start`` SLAs that long before the planned ``start``
    (default: :func:`planned_start` of the timeline). A stop counts only at or after the start."""
    timeline = list(events)
    planned = start if start is not None else planned_start(timeline)
    breached = frozenset(str(e.data.get("sla")) for e in timeline if e.type == SLA_BREACHED)
    return [_sla_clock(sla, timeline, _dt(now), planned, breached) for sla in slas]


def due_breaches(clocks: Iterable[SlaClock]) -> list[SlaClock]:
    """Breached clocks with no ``sla_breached`` event yet: the engine appends one for each
    and pages its ``escalate`` rotas. One event per SLA, ever."""
    return [c for c in clocks if c.state == "breached" and not c.breach_recorded]


def newly_met(clocks: Iterable[SlaClock], events: Iterable[TimelineEvent]) -> list[SlaClock]:
    """Clocks met in time with no ``sla_met`` event yet. A clock met late stays breached and
    gets none (its ``met_at`` still shows in the clock view)."""
    recorded = {e.data.get("sla") for e in events if e.type == SLA_MET}
    return [c for c in clocks if c.state == "met" and c.sla not in recorded]


def next_deadline(clocks: Iterable[SlaClock]) -> str | None:
    """The earliest ``due_at`` of the running clocks: when the engine must look again."""
    dues = [c.due_at for c in clocks if c.state == "running" and c.due_at is not None]
    return min(dues, key=_dt, default=None)


# --- conditions --------------------------------------------------------------------------------


def _reports_of(kind: str, events: Iterable[TimelineEvent]) -> list[TimelineEvent]:
    # Samples may arrive out of order: order by when they were taken, then by link order.
    linked = [e for e in events if e.type == EventType.report_linked and report_kind(e.data) == kind]
    return sorted(linked, key=lambda e: (_observed(e), e.seq))


def _run(condition: Condition, events: Iterable[TimelineEvent]) -> list[TimelineEvent]:
    """The matching reports at the end of the ordered reports, newest first: each matches
    and is at least ``min_apart`` after the one before it. A report that does not match, or
    one too soon after the one before, ends the run (the rule counts *consecutive* samples)."""
    wanted = condition.reports
    run: list[TimelineEvent] = []
    for report in reversed(_reports_of(wanted.kind, events)):
        if not report_matches(report.data, (wanted.kind,), wanted.where):
            break
        if (
            run
            and condition.min_apart is not None
            and _observed(run[-1]) - _observed(report) < condition.min_apart
        ):
            break
        run.append(report)
    return run


def condition_holds(condition: Condition, events: Iterable[TimelineEvent]) -> bool:
    """Whether the newest ``consecutive`` reports of the condition's kind all match and are
    each at least ``min_apart`` after the one before (by ``observed_at``)."""
    return len(_run(condition, events)) >= condition.consecutive


def _when(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _label(condition: Condition) -> str:
    kind = condition.reports.kind.replace("_", " ")
    where = ", ".join(f"{k} {_text(v)}" for k, v in condition.reports.where.items())
    return f"{kind} reports" + (f" with {where}" if where else "")


def condition_progress(condition: Condition, events: Iterable[TimelineEvent]) -> str:
    """The condition's progress in plain words for the console, e.g. ``1 of 2 lab result
    reports with result clean; the next at least 1d after 2026-11-22 08:15 UTC``."""
    run = _run(condition, events)
    count = min(len(run), condition.consecutive)
    done = f"{count} of {condition.consecutive} {_label(condition)}"
    if count >= condition.consecutive:
        return f"{done}: holds"
    if not run or condition.min_apart is None:
        return f"{done}; waiting for the next"
    return f"{done}; the next at least {condition.min_apart} after {_when(_observed(run[0]))}"


# --- stages and exits --------------------------------------------------------------------------


def current_stage(events: Iterable[TimelineEvent]) -> tuple[str, str, int] | None:
    """``(stage id, entered_at, visit)`` from the newest ``stage_entered`` event; ``visit``
    counts how many times that stage has been entered (1 on the first visit)."""
    entries = [e for e in events if e.type == STAGE_ENTERED]
    if not entries:
        return None
    last = entries[-1]
    stage = str(last.data["stage"])
    return stage, last.at, sum(1 for e in entries if e.data.get("stage") == stage)


def _linked_since(stage: Stage, entered_at: str, events: list[TimelineEvent]) -> list[TimelineEvent]:
    # A report linked in the same instant as the entry counts only if its seq is later, so
    # the report that led into this stage never also leads out of it.
    entered = _dt(entered_at)
    entry_seq = max(
        (
            e.seq
            for e in events
            if e.type == STAGE_ENTERED and e.data.get("stage") == stage.id and _dt(e.at) == entered
        ),
        default=None,
    )
    return [
        e
        for e in events
        if e.type == EventType.report_linked
        and (_dt(e.at) > entered or (_dt(e.at) == entered and entry_seq is not None and e.seq > entry_seq))
    ]


def _rule_holds(
    rule: ExitRule,
    stage: Stage,
    entered_at: str,
    events: list[TimelineEvent],
    now: datetime,
    conditions: Mapping[str, Condition],
    notices_all_sent: bool,
) -> bool:
    match rule.trigger:
        case ExitTrigger.report:
            assert rule.report is not None
            kinds, where = rule.report.kinds, rule.report.where
            return any(report_matches(e.data, kinds, where) for e in _linked_since(stage, entered_at, events))
        case ExitTrigger.condition:
            assert rule.condition is not None
            return condition_holds(conditions[rule.condition], events)
        case ExitTrigger.notices:
            return notices_all_sent
        case ExitTrigger.after:
            assert rule.after is not None
            return now >= _dt(entered_at) + rule.after
    # Manual exits come through the API, never from the timeline.
    return False


def exit_due(
    stage: Stage,
    entered_at: str,
    events: Iterable[TimelineEvent],
    now: Instant,
    conditions: Mapping[str, Condition],
    notices_all_sent: bool,
) -> ExitRule | None:
    """The first of ``stage``'s exit rules that holds, the stage having been entered at
    ``entered_at``; None when none does. ``notices_all_sent`` is the caller's answer to
    ``notices: sent`` (every notice of this stage approved and handed over)."""
    timeline, at = list(events), _dt(now)
    return next(
        (
            r
            for r in stage.exit
            if _rule_holds(r, stage, entered_at, timeline, at, conditions, notices_all_sent)
        ),
        None,
    )
