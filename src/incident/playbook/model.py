"""Playbooks as data: what to do, stage by stage, for an incident of a kind. Pure.

A playbook is an ordered list of stages. The first stage is entered on declaration; each
stage runs its ``on_enter`` actions once, in order, arms its timers, and is left by the
first of its exit rules that holds: to the stage its rule names (``to:``) or else to the
next stage. SLA clocks run across stages, from one milestone to another.

The file format (YAML, ``<[playbooks] dir>/<name>.yaml``; shipped in ``incident/bundled/``)
is the one of issue 6; this module
holds the typed form the engine runs and the checks that need no other file. Durations are
written ``90s``, ``30m``, ``2h``, ``1d`` or ``1d12h`` and become :class:`Duration` (a
``timedelta``); SLA milestones are written ``declared``, ``first_notice_sent``,
``follow_up_sent``, ``notice_sent:<template>``, ``stage:<id>``, ``report:<kind>`` or
``status:<status>`` and become :class:`Milestone`.

Build a playbook (or any part of one) from plain data with :func:`convert`; the loader
(:mod:`incident.playbook.loader`) adds files, line numbers and the checks across parts.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from incident.core.domain import Kind, Status, Utility
from incident.households.model import Channel, Priority
from incident.notices.context import Advisory, TemplateKey

__all__ = [
    "ACTIONS",
    "PAGE_FIELDS",
    "Action",
    "Approval",
    "AreaMethod",
    "AskEtr",
    "Audience",
    "ComputeArea",
    "Condition",
    "ConditionReports",
    "Duration",
    "ExitRule",
    "ExitTrigger",
    "LiftAdvisory",
    "Match",
    "Milestone",
    "MilestoneEvent",
    "Note",
    "Page",
    "PlanNotice",
    "Playbook",
    "ReportFilter",
    "SetAdvisory",
    "SetEtr",
    "SetStatus",
    "Sla",
    "Stage",
    "Timer",
    "TimerSchedule",
    "convert",
    "exit_target",
    "find_stage",
    "parse_duration",
    "select_playbook",
    "stage_after",
    "to_data",
]

T = TypeVar("T")

#: Names of stages, timers, SLAs, conditions, rotas and playbooks.
Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
#: A report's ``kind`` (``main_break``, ...) or its ``details.event`` (``field_crew_repair_done``).
ReportKind = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Reason = Annotated[str, msgspec.Meta(max_length=500)]
#: Values a report's ``details`` are compared with (``where: {result: clean}``).
Scalar = str | int | float | bool


# --- durations and milestones --------------------------------------------------------------

_DURATION = re.compile(r"(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?")
_MAX_DURATION = timedelta(days=366)


class Duration(timedelta):
    """A ``timedelta`` written ``90s``, ``30m``, ``2h``, ``1d`` or ``1d12h`` in playbooks."""

    def __str__(self) -> str:
        rest = int(self.total_seconds())
        parts = []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            count, rest = divmod(rest, size)
            if count:
                parts.append(f"{count}{unit}")
        return "".join(parts) or "0s"


def parse_duration(text: str) -> Duration:
    """``"1d12h"`` -> ``Duration(days=1, hours=12)``; ``ValueError`` for anything else."""
    m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None or not any(m.groupdict().values()):
        raise ValueError(f"invalid duration {text!r}: write it like 90s, 30m, 2h, 1d or 1d12h")
    d, h, mi, s = (int(m[g] or 0) for g in "dhms")
    value = Duration(days=d, hours=h, minutes=mi, seconds=s)
    if not timedelta(0) < value <= _MAX_DURATION:
        raise ValueError(f"duration {text!r} must be more than 0s and at most 366d")
    return value


class MilestoneEvent(StrEnum):
    """What starts or stops an SLA clock."""

    #: The incident was declared.
    declared = "declared"
    #: The incident's first notice (any template) was approved and handed over.
    first_notice_sent = "first_notice_sent"
    #: A notice of the template ``arg`` was approved and handed over.
    notice_sent = "notice_sent"
    #: The stage ``arg`` was entered.
    stage = "stage"
    #: A report of the kind ``arg`` (``report.kind`` or ``details.event``) was linked.
    report = "report"
    #: The incident's status became ``arg``.
    status = "status"


_WITH_ARG = frozenset({MilestoneEvent.notice_sent, MilestoneEvent.stage, MilestoneEvent.report,
                       MilestoneEvent.status})  # fmt: skip
_ID = re.compile(r"[a-z][a-z0-9_]*")


class Milestone:
    """An SLA's start or stop: ``event`` and, for some events, its ``arg``.

    Written ``declared``, ``first_notice_sent``, ``follow_up_sent`` (short for
    ``notice_sent:follow_up``), ``notice_sent:<template>``, ``stage:<id>``,
    ``report:<kind>`` or ``status:<status>``; ``str()`` gives that text back.
    """

    __slots__ = ("_arg", "_event")
    _event: MilestoneEvent
    _arg: str | None

    def __init__(self, event: MilestoneEvent, arg: str | None = None) -> None:
        if (arg is None) == (event in _WITH_ARG):
            raise ValueError(f"milestone {event.value} {'needs' if arg is None else 'takes no'} argument")
        object.__setattr__(self, "_event", event)
        object.__setattr__(self, "_arg", arg)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Milestone is immutable")

    @property
    def event(self) -> MilestoneEvent:
        return self._event

    @property
    def arg(self) -> str | None:
        return self._arg

    @classmethod
    def parse(cls, text: str) -> Milestone:
        if not isinstance(text, str):
            raise TypeError(f"Expected `str`, got `{type(text).__name__}`")
        if text == "follow_up_sent":
            return cls(MilestoneEvent.notice_sent, TemplateKey.follow_up.value)
        head, sep, arg = text.partition(":")
        known = ", ".join(
            f"{e.value}:<{_ARG_NAMES[e]}>" if e in _WITH_ARG else e.value for e in MilestoneEvent
        )
        try:
            event = MilestoneEvent(head)
        except ValueError:
            raise ValueError(f"unknown milestone {text!r} (known: {known}, follow_up_sent)") from None
        if (event in _WITH_ARG) != bool(sep):
            raise ValueError(f"unknown milestone {text!r} (known: {known}, follow_up_sent)")
        if event is MilestoneEvent.notice_sent and arg not in {t.value for t in TemplateKey}:
            raise ValueError(f"unknown template {arg!r} in milestone {text!r} (known: {_known(TemplateKey)})")
        if event is MilestoneEvent.status and arg not in {t.value for t in Status}:
            raise ValueError(f"unknown status {arg!r} in milestone {text!r} (known: {_known(Status)})")
        if event in (MilestoneEvent.stage, MilestoneEvent.report) and not _ID.fullmatch(arg):
            raise ValueError(f"milestone {text!r}: {_ARG_NAMES[event]} must match [a-z][a-z0-9_]*")
        return cls(event, arg if sep else None)

    def __str__(self) -> str:
        return self.event.value if self.arg is None else f"{self.event.value}:{self.arg}"

    def __repr__(self) -> str:
        return f"Milestone({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Milestone):
            return NotImplemented
        return (self.event, self.arg) == (other.event, other.arg)

    def __hash__(self) -> int:
        return hash((self.event, self.arg))


_ARG_NAMES = {
    MilestoneEvent.notice_sent: "template",
    MilestoneEvent.stage: "stage",
    MilestoneEvent.report: "kind",
    MilestoneEvent.status: "status",
}

DECLARED = Milestone(MilestoneEvent.declared)


def _known(enum: type[StrEnum]) -> str:
    return ", ".join(m.value for m in enum)


# --- actions -------------------------------------------------------------------------------


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    pass


class _Action(_Spec, frozen=True, kw_only=True, tag_field="do"):
    pass


class AreaMethod(StrEnum):
    #: Valves to close around the reported pipe, and the households behind them.
    isolation = "isolation"
    #: Pressure zones / DMAs: ``zones``, or the zones of the declaring report's place.
    zones = "zones"
    #: A disc of ``radius_m`` around the declaring report's location.
    around = "around"
    #: Wait for the dispatcher to draw it.
    drawn = "drawn"


class Approval(StrEnum):
    #: Approved as soon as it is planned (the notice goes out without a person in the loop).
    auto = "auto"
    #: Waits for a dispatcher's approval.
    required = "required"


class ComputeArea(_Action, frozen=True, kw_only=True, tag="compute_area"):
    """Find the affected area and its households."""

    method: AreaMethod
    radius_m: Annotated[float, msgspec.Meta(gt=0, le=50_000)] | None = None
    zones: tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=100)], ...] = ()

    def __post_init__(self) -> None:
        if (self.method is AreaMethod.around) != (self.radius_m is not None):
            raise ValueError("radius_m is required with method: around, and only there")
        if self.zones and self.method is not AreaMethod.zones:
            raise ValueError("zones is allowed only with method: zones")


#: Placeholders a page's text may use; the engine fills them in (see :meth:`Page.render`).
PAGE_FIELDS = frozenset(
    {"incident_id", "title", "kind", "kind_name", "utility", "severity", "status", "stage", "playbook",
     "households", "affected", "etr", "owner"}
)  # fmt: skip


class Page(_Action, frozen=True, kw_only=True, tag="page"):
    """Text the on-call staff of ``rota`` (the ``[playbooks] oncall`` file) by SMS."""

    rota: Id
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]

    def __post_init__(self) -> None:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.text) if f is not None]
        except ValueError as err:
            raise ValueError(f"text: {err} (write {{{{ and }}}} for a literal brace)") from None
        for name in fields:
            if name not in PAGE_FIELDS:
                raise ValueError(
                    f"text: unknown placeholder {{{name}}} (known: {', '.join(sorted(PAGE_FIELDS))})"
                )

    def render(self, facts: Mapping[str, object]) -> str:
        """The text with its placeholders filled from ``facts``; a missing fact says so."""
        values = {
            name: ("(not known yet)" if facts.get(name) is None else facts[name]) for name in PAGE_FIELDS
        }
        return self.text.format_map(values)


class AskEtr(_Action, frozen=True, kw_only=True, tag="ask_etr"):
    """Record that an estimated time of restoration is wanted (``etr_requested``)."""

    reason: Reason = ""


class SetEtr(_Action, frozen=True, kw_only=True, tag="set_etr"):
    """Set the ETR to now plus ``in`` (written ``in: 4h``)."""

    in_: Duration = msgspec.field(name="in")
    reason: Reason = ""


class Audience(_Spec, frozen=True, kw_only=True):
    """Who of the area's households a notice goes to (as the notices API)."""

    #: Only households of these priorities; ``None``: everyone.
    priority: tuple[Priority, ...] | None = None


class PlanNotice(_Action, frozen=True, kw_only=True, tag="plan_notice"):
    """Plan a notice to the incident's area; ``approval: auto`` sends it at once."""

    template: TemplateKey
    channels: Annotated[tuple[Channel, ...], msgspec.Meta(min_length=1)]
    audience: Audience | None = None
    approval: Approval = Approval.required
    #: The dispatcher's extra sentence, as the notices API's ``facts.note``.
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""

    def __post_init__(self) -> None:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels: each channel at most once")


class SetAdvisory(_Action, frozen=True, kw_only=True, tag="set_advisory"):
    """Put a water-quality advisory in force; without ``advisory``, the playbook's."""

    advisory: Advisory | None = None
    reason: Reason = ""


class LiftAdvisory(_Action, frozen=True, kw_only=True, tag="lift_advisory"):
    """End the advisory in force."""

    reason: Reason = ""


class Note(_Action, frozen=True, kw_only=True, tag="note"):
    """Add a note to the timeline."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


class SetStatus(_Action, frozen=True, kw_only=True, tag="set_status"):
    """Move the incident to ``status`` (a lifecycle move; an illegal one is refused)."""

    status: Status
    reason: Reason = ""


Action = ComputeArea | Page | AskEtr | SetEtr | PlanNotice | SetAdvisory | LiftAdvisory | Note | SetStatus

#: Every ``do:`` value.
ACTIONS: tuple[str, ...] = (
    "compute_area", "page", "ask_etr", "set_etr", "plan_notice", "set_advisory", "lift_advisory",
    "note", "set_status",
)  # fmt: skip


# --- stages, exits, timers -----------------------------------------------------------------


class ReportFilter(_Spec, frozen=True, kw_only=True):
    """Reports whose kind (``report.kind`` or ``details.event``) is one of ``kinds`` and
    whose ``details`` hold every ``where`` value."""

    kinds: Annotated[tuple[ReportKind, ...], msgspec.Meta(min_length=1)]
    where: dict[str, Scalar] = msgspec.field(default_factory=dict)


class ExitTrigger(StrEnum):
    manual = "manual"
    report = "report"
    notices = "notices"
    condition = "condition"
    after = "after"


class ExitRule(_Spec, frozen=True, kw_only=True):
    """One way out of a stage: exactly one trigger, and where to go (``to``, else the next stage).

    - ``manual: true`` — a dispatcher moves it on (``POST /api/incidents/{id}/stage``);
    - ``report: {kinds: [...], where: {...}}`` — a matching report is linked;
    - ``notices: sent`` — every notice planned in this stage is approved and handed over;
    - ``condition: NAME`` — the playbook's named condition holds;
    - ``after: 6h`` — this long after entering the stage.
    """

    manual: Literal[True] | None = None
    report: ReportFilter | None = None
    notices: Literal["sent"] | None = None
    condition: Id | None = None
    after: Duration | None = None
    to: Id | None = None

    def __post_init__(self) -> None:
        given = [t.value for t in ExitTrigger if getattr(self, t.value) is not None]
        if len(given) != 1:
            raise ValueError(
                "an exit rule needs exactly one of manual, report, notices, condition, after"
                + (f" (got {', '.join(given)})" if given else "")
            )

    @property
    def trigger(self) -> ExitTrigger:
        return next(t for t in ExitTrigger if getattr(self, t.value) is not None)


class TimerSchedule(StrEnum):
    #: Repeats every so long while the stage lasts (first time one period after entry).
    every = "every"
    #: Fires once, this long after entering the stage.
    after = "after"
    #: Fires once, this long before the incident's planned start (planned outages).
    at_before_start = "at_before_start"


class Timer(_Spec, frozen=True, kw_only=True):
    """A durable timer of a stage that runs ``action`` when it fires. Cancelled when the
    stage is left. In files the action's keys sit beside the timer's own
    (``{id: etr_cadence, every: 2h, do: plan_notice, template: etr_update, ...}``)."""

    id: Id
    every: Duration | None = None
    after: Duration | None = None
    at_before_start: Duration | None = None
    action: Action

    def __post_init__(self) -> None:
        given = [s.value for s in TimerSchedule if getattr(self, s.value) is not None]
        if len(given) != 1:
            raise ValueError(
                "a timer needs exactly one of every, after, at_before_start"
                + (f" (got {', '.join(given)})" if given else "")
            )

    @property
    def schedule(self) -> TimerSchedule:
        return next(s for s in TimerSchedule if getattr(self, s.value) is not None)

    @property
    def delay(self) -> Duration:
        """The duration of the schedule (``every``, ``after`` or ``at_before_start``)."""
        value = getattr(self, self.schedule.value)
        assert isinstance(value, Duration)
        return value


#: The keys of a timer itself; the rest of a timer's mapping is its action.
TIMER_KEYS = frozenset({"id", "every", "after", "at_before_start"})


class Stage(_Spec, frozen=True, kw_only=True):
    id: Id
    title: Annotated[str, msgspec.Meta(max_length=200)] = ""
    #: Incident status to move to on entry (skipped when it already is).
    status: Status | None = None
    on_enter: tuple[Action, ...] = ()
    #: The first rule that holds moves on; none: the stage lasts until a dispatcher moves it.
    exit: tuple[ExitRule, ...] = ()
    timers: tuple[Timer, ...] = ()

    @property
    def label(self) -> str:
        return self.title or self.id


# --- SLAs, conditions, the playbook -----------------------------------------------------------


class Sla(_Spec, frozen=True, kw_only=True):
    """An SLA clock: starts at ``start``, met at ``stop``; due ``within`` after the start, or
    ``before_start`` ahead of the incident's planned start. A breach pages ``escalate``."""

    id: Id
    title: Title
    start: Milestone = DECLARED
    stop: Milestone
    within: Duration | None = None
    before_start: Duration | None = None
    escalate: tuple[Id, ...] = ()

    def __post_init__(self) -> None:
        if (self.within is None) == (self.before_start is None):
            raise ValueError("an SLA needs exactly one of within, before_start")


class ConditionReports(_Spec, frozen=True, kw_only=True):
    kind: ReportKind
    where: dict[str, Scalar] = msgspec.field(default_factory=dict)


class Condition(_Spec, frozen=True, kw_only=True):
    """Holds when the newest ``consecutive`` reports of ``reports.kind`` linked to the
    incident all match ``reports.where``, each at least ``min_apart`` after the one before
    (by ``observed_at``). A report of that kind that does not match starts the count again.
    The contamination lifting rule: two clean lab samples at least 24 hours apart."""

    reports: ConditionReports
    consecutive: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    min_apart: Duration | None = None


class Match(_Spec, frozen=True, kw_only=True):
    """Which declarations a playbook is chosen for (unless the dispatcher names one)."""

    kinds: Annotated[tuple[Kind, ...], msgspec.Meta(min_length=1)]
    #: Empty: any utility.
    utilities: tuple[Utility, ...] = ()


class Playbook(_Spec, frozen=True, kw_only=True):
    name: Id
    title: Title
    version: Annotated[int, msgspec.Meta(ge=1)] = 1
    description: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    #: None: chosen only when a dispatcher names it.
    match: Match | None = None
    #: The advisory ``set_advisory`` puts in force when it names none (contamination).
    advisory: Advisory | None = None
    stages: tuple[Stage, ...]
    slas: tuple[Sla, ...] = ()
    conditions: dict[Id, Condition] = msgspec.field(default_factory=dict)


# --- building from data ----------------------------------------------------------------------


def _dec_hook(type_: type[Any], obj: Any) -> Any:
    if type_ is Duration:
        if not isinstance(obj, str):
            raise TypeError(f"Expected a duration like 30m or 2h, got `{type(obj).__name__}`")
        return parse_duration(obj)
    if type_ is Milestone:
        return Milestone.parse(obj)
    raise NotImplementedError(f"no conversion to {type_!r}")


def _nest_timer(raw: Any) -> Any:
    if not isinstance(raw, Mapping) or "action" in raw:
        return raw
    own = {k: v for k, v in raw.items() if k in TIMER_KEYS}
    rest = {k: v for k, v in raw.items() if k not in TIMER_KEYS}
    return {**own, "action": rest}


def _nest_stage(raw: Any) -> Any:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("timers"), list):
        return raw
    return {**raw, "timers": [_nest_timer(t) for t in raw["timers"]]}


def _prepare(value: Any, type_: Any) -> Any:
    if type_ is Timer:
        return _nest_timer(value)
    if type_ is Stage:
        return _nest_stage(value)
    if type_ is Playbook and isinstance(value, Mapping) and isinstance(value.get("stages"), list):
        return {**value, "stages": [_nest_stage(s) for s in value["stages"]]}
    return value


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Duration | Milestone):
        return str(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def to_data(value: Any) -> Any:
    """A playbook (or a part) as plain data in the file's form (durations ``2h``, timers
    flat, defaults left out), e.g. for JSON; ``convert(to_data(p), Playbook) == p``."""
    data = _flatten_timers(msgspec.to_builtins(value, enc_hook=_enc_hook))
    return _flat_timer(data) if isinstance(value, Timer) else data


def _flat_timer(timer: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in timer.items() if k != "action"}, **timer.get("action", {})}


def _flatten_timers(data: Any) -> Any:
    if isinstance(data, list | tuple):
        return [_flatten_timers(v) for v in data]
    if not isinstance(data, dict):
        return data
    out = {k: _flatten_timers(v) for k, v in data.items()}
    if "timers" in out:
        out["timers"] = [_flat_timer(t) for t in out["timers"]]
    return out


def convert(value: Any, type_: type[T]) -> T:
    """Build a :class:`Playbook` (or a part: :class:`Stage`, :class:`Timer`, ``Action``, ...)
    from plain data as a playbook file holds it. Raises ``msgspec.ValidationError``; a
    timer's action fields show in its path as ``.action`` (the loader hides that again)."""
    return msgspec.convert(_prepare(value, type_), type_, dec_hook=_dec_hook)


# --- what the engine asks ----------------------------------------------------------------------


def _specificity(playbook: Playbook) -> tuple[int, int, int, str]:
    m = playbook.match
    assert m is not None
    # Naming the utility beats allowing any; fewer utilities and fewer kinds are narrower;
    # the name breaks ties so the choice never depends on file order.
    return (0 if m.utilities else 1, len(m.utilities), len(m.kinds), playbook.name)


def select_playbook(playbooks: Iterable[Playbook], kind: Kind, utility: Utility) -> Playbook | None:
    """The most specific playbook whose ``match`` covers ``kind`` and ``utility``, or None."""
    candidates = [
        p
        for p in playbooks
        if p.match is not None
        and kind in p.match.kinds
        and (not p.match.utilities or utility in p.match.utilities)
    ]
    return min(candidates, key=_specificity, default=None)


def find_stage(playbook: Playbook, stage_id: str) -> Stage | None:
    return next((s for s in playbook.stages if s.id == stage_id), None)


def stage_after(playbook: Playbook, stage_id: str) -> Stage | None:
    """The stage that follows ``stage_id`` in order; None after the last (or when unknown)."""
    ids = [s.id for s in playbook.stages]
    if stage_id not in ids:
        return None
    i = ids.index(stage_id)
    return playbook.stages[i + 1] if i + 1 < len(ids) else None


def exit_target(playbook: Playbook, stage_id: str, rule: ExitRule) -> Stage | None:
    """Where ``rule`` leads from ``stage_id``: its ``to`` stage, else the next one."""
    return find_stage(playbook, rule.to) if rule.to is not None else stage_after(playbook, stage_id)
