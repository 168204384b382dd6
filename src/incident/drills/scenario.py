"""Drill scenarios as data: timed reports and dispatcher actions played against a running
service (``incident drill run``). Pure, but for reading files.

A scenario file (YAML, ``config/drills/<name>.yaml`` or a shipped one in ``incident/bundled/drills/``)::

    name: main_break                  # must equal the file name without .yaml
    title: Main break on Sycamore Ct
    description: What the trainee practises.
    speed: 60                         # 60: one scenario minute takes one second
    steps:
      - at: 0s                        # offset from the start, in scenario time
        report: {report_id: scada-0042, kind: low_pressure, ...}   # a Kafka report (CONTRACT)
      - at: 2m
        declare: {report: scada-0042} # or {kind, utility, title, severity, playbook?, area?}
      - at: 5m
        wait_for: {stage: notify, timeout: 1m}

Each step has ``at`` and exactly one action (:data:`ACTIONS`). Reports get a per-run suffix
on their ``report_id`` (:func:`run_report_id`) so a scenario can be played again; steps name
reports by their id in the file. ``observed_at`` defaults to the run's scenario time.

Problems name the file and the line (``config/drills/x.yaml:14: steps[3].at: ...``), as the
playbook loader does (its YAML-with-lines helpers are reused).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from incident.core.domain import Kind, Severity, Status, Utility
from incident.core.errors import ConfigError
from incident.deliveries.states import DeliveryState
from incident.households.model import Channel
from incident.incidents.areas import AreaDescription, AreaRequest
from incident.notices.context import TemplateKey
from incident.notices.service import NoticeRequest
from incident.playbook import parse_duration
from incident.playbook.loader import _explain, _line, _read_yaml
from incident.reports.model import Asset, Location

__all__ = [
    "ACTIONS",
    "NOT_HANDED_OVER",
    "SCENARIO_SUFFIXES",
    "DeclareSpec",
    "DeliveryCount",
    "Expect",
    "ReportSpec",
    "Scenario",
    "ScenarioError",
    "StatusChange",
    "Step",
    "WaitFor",
    "find_scenario",
    "format_offset",
    "load_scenario",
    "loads_scenario",
    "parse_offset",
    "report_message",
    "run_report_id",
    "shipped_scenarios",
]

SCENARIO_SUFFIXES = (".yaml", ".yml")

#: Delivery states that mean "not handed to the carrier yet" (``wait_for: deliveries_final``).
NOT_HANDED_OVER = frozenset(
    {DeliveryState.planned, DeliveryState.queued, DeliveryState.claimed, DeliveryState.sending,
     DeliveryState.retry, DeliveryState.unknown}
)  # fmt: skip

#: Room left in a report id for the run suffix (``-r`` and 6 characters) within the contract's 200.
_MAX_REPORT_ID = 190

Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
ReportId = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_REPORT_ID, pattern=r"^\S+$")]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Reason = Annotated[str, msgspec.Meta(max_length=1000)]


class ScenarioError(ConfigError):
    """A scenario file is wrong; each problem reads ``FILE:LINE: PATH: message``."""

    code = "scenario_invalid"

    def __init__(self, problems: list[str] | tuple[str, ...], *, code: str | None = None) -> None:
        super().__init__("\n".join(problems), code=code)
        self.problems = tuple(problems)


# --- offsets -------------------------------------------------------------------------------------

_ZERO = re.compile(r"0+[dhms]?")


def parse_offset(value: str | int) -> timedelta:
    """``"0s"`` -> 0, ``"5m"``, ``"2h"``, ``"1d12h"`` as :func:`incident.playbook.parse_duration`."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"invalid offset {value!r}: write it with a unit, like 0s, 90s, 5m, 2h or 1d")
    if not isinstance(value, str):
        raise ValueError(f"invalid offset {value!r}: write it like 0s, 90s, 5m, 2h or 1d")
    if _ZERO.fullmatch(value.strip()):
        return timedelta(0)
    return parse_duration(value)


def format_offset(offset: timedelta) -> str:
    """Scenario time as a dispatcher reads it: ``+00:05`` (hours:minutes), ``+49:30``."""
    minutes = max(0, int(offset.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    return f"+{hours:02d}:{minutes:02d}"


# --- the parts of a scenario ---------------------------------------------------------------------


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    pass


class ReportSpec(_Spec, frozen=True, kw_only=True):
    """A report as the contract's Kafka message; ``observed_at`` defaults to scenario time."""

    report_id: ReportId
    kind: Kind
    utility: Utility
    source: Short
    severity: Severity
    observed_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    location: Location | None = None
    asset: Asset | None = None
    summary: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    details: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.location is None and self.asset is None:
            raise ValueError("a report needs a location, an asset or both")


class DeclareSpec(_Spec, frozen=True, kw_only=True):
    """Declare the run's incident: from a report of the run (``report``, with an optional
    ``title``/``severity``), or as ``POST /api/incidents``. Always a drill."""

    report: ReportId | None = None
    kind: Kind | None = None
    utility: Utility | None = None
    title: Title | None = None
    severity: Severity | None = None
    playbook: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    area: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.report is not None:
            extra = [k for k in ("kind", "utility", "playbook", "area") if getattr(self, k) is not None]
            if extra:
                raise ValueError(
                    "declaring from a report takes only title and severity besides it"
                    f" (got {', '.join(extra)})"
                )
            return
        missing = [k for k in ("kind", "utility", "title", "severity") if getattr(self, k) is None]
        if missing:
            raise ValueError(
                f"declare needs kind, utility, title and severity, or report (missing: {', '.join(missing)})"
            )

    def body(self) -> dict[str, Any]:
        """The request body (``drill: true`` always)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        data.pop("report", None)
        return {**data, "drill": True}


class StatusChange(_Spec, frozen=True, kw_only=True):
    status: Status
    reason: Reason | None = None


class WaitFor(_Spec, frozen=True, kw_only=True):
    """Poll the service until one condition holds, at most ``timeout`` of real time (the
    service does not run faster in a drill)."""

    stage: Id | None = None
    status: Status | None = None
    #: No delivery of the incident is waiting to be handed to a carrier (optionally only
    #: on ``channels``; voice retries wait minutes, so leave voice out at speed).
    deliveries_final: Literal[True] | None = None
    channels: tuple[Channel, ...] = ()
    timeout: str = "2m"

    def __post_init__(self) -> None:
        given = [k for k in ("stage", "status", "deliveries_final") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "wait_for needs exactly one of stage, status, deliveries_final"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.channels and self.deliveries_final is None:
            raise ValueError("channels: only with deliveries_final")
        try:
            parse_duration(self.timeout)
        except ValueError as err:
            raise ValueError(f"timeout: {err}") from None

    @property
    def timeout_s(self) -> float:
        return parse_duration(self.timeout).total_seconds()

    def describe(self) -> str:
        if self.stage is not None:
            return f"stage {self.stage}"
        if self.status is not None:
            return f"status {self.status.value}"
        on = f" on {', '.join(c.value for c in self.channels)}" if self.channels else ""
        return f"every delivery{on} handed to the carrier"


class DeliveryCount(_Spec, frozen=True, kw_only=True):
    """At least ``at_least`` deliveries in one of ``states`` (on ``channel``, else any)."""

    at_least: Annotated[int, msgspec.Meta(ge=0)]
    states: Annotated[tuple[DeliveryState, ...], msgspec.Meta(min_length=1)]
    channel: Channel | None = None

    def describe(self) -> str:
        on = f" on {self.channel.value}" if self.channel else ""
        return f"at least {self.at_least} deliveries{on} {'|'.join(s.value for s in self.states)}"

    def count(self, counts: dict[str, dict[str, int]]) -> int:
        """Matching deliveries in the API's ``counts`` (channel -> state -> count)."""
        wanted = {s.value for s in self.states}
        return sum(
            n
            for channel, by_state in counts.items()
            if self.channel is None or channel == self.channel.value
            for state, n in by_state.items()
            if state in wanted
        )


class Expect(_Spec, frozen=True, kw_only=True):
    """Assertions about the run's incident when the step is reached (usually the last)."""

    stage: Id | None = None
    status: Status | None = None
    #: Stages the incident must have entered, in any order.
    stages_entered: tuple[Id, ...] = ()
    #: Templates of which a notice was approved.
    notices_approved: tuple[TemplateKey, ...] = ()
    deliveries: tuple[DeliveryCount, ...] = ()

    def __post_init__(self) -> None:
        if not any((self.stage, self.status, self.stages_entered, self.notices_approved, self.deliveries)):
            raise ValueError(
                "expect needs at least one of stage, status, stages_entered, notices_approved, deliveries"
            )


#: Every action a step can take, in the order they are documented.
ACTIONS: tuple[str, ...] = (
    "report", "declare", "confirm", "take", "link", "area", "describe", "notice", "approve", "stage",
    "status", "note", "say", "wait_for", "expect",
)  # fmt: skip


class Step(_Spec, frozen=True, kw_only=True):
    """``at`` (scenario offset) and exactly one action."""

    at: str | int
    #: Produce a report on the reports topic (and wait until the service has stored it).
    report: ReportSpec | None = None
    #: Declare the run's incident (``drill: true``).
    declare: DeclareSpec | None = None
    #: Confirm the incident a rule opened (the caller takes it when nobody owns it).
    confirm: Literal[True] | None = None
    #: Take an incident nobody owns (a rule opened it): a hand-over to the drill's own token.
    take: Literal[True] | None = None
    #: Link a waiting report of the run to the incident (by its id in this file).
    link: ReportId | None = None
    #: ``PUT /api/incidents/{id}/area``.
    area: AreaRequest | None = None
    #: ``PUT /api/incidents/{id}/area/description`` (where, as households know it, per
    #: language), then every held notice is planned again (as a trainee would).
    describe: AreaDescription | None = None
    #: ``POST /api/incidents/{id}/notices`` (planned, not sent).
    notice: NoticeRequest | None = None
    #: ``latest`` or a template: approve the newest planned notice (of that template).
    approve: str | None = None
    #: ``POST /api/incidents/{id}/stage``: move the playbook on by hand.
    stage: Id | None = None
    #: ``POST /api/incidents/{id}/status``: a status, or ``{status, reason}``.
    status: Status | StatusChange | None = None
    #: A note on the timeline.
    note: Text | None = None
    #: Printed for the trainee (a radio call, a phone call); sent nowhere.
    say: Text | None = None
    wait_for: WaitFor | None = None
    expect: Expect | None = None

    def __post_init__(self) -> None:
        try:
            parse_offset(self.at)
        except ValueError as err:
            raise ValueError(f"at: {err}") from None
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a step needs exactly one of {', '.join(ACTIONS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.approve is not None and self.approve != "latest" and self.approve not in _TEMPLATES:
            raise ValueError(
                f"approve: {self.approve!r} is not 'latest' or a template (known: {', '.join(_TEMPLATES)})"
            )

    @property
    def offset(self) -> timedelta:
        return parse_offset(self.at)

    @property
    def action(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)


_TEMPLATES = tuple(t.value for t in TemplateKey)


class Scenario(_Spec, frozen=True, kw_only=True):
    name: Id
    title: Title
    description: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    #: Time compression: 60 means one scenario minute takes one second.
    speed: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 1.0
    steps: Annotated[tuple[Step, ...], msgspec.Meta(min_length=1)]

    @property
    def duration(self) -> timedelta:
        """Scenario time of the last step."""
        return max(s.offset for s in self.steps)

    @property
    def report_ids(self) -> tuple[str, ...]:
        return tuple(s.report.report_id for s in self.steps if s.report is not None)


# --- reports of a run ------------------------------------------------------------------------


def run_report_id(report_id: str, run_id: str) -> str:
    """The id a report gets in one run: the file's id and the run's, so a replay is new."""
    return f"{report_id}-{run_id}"


def report_message(spec: ReportSpec, run_id: str, observed_at: datetime) -> dict[str, Any]:
    """The Kafka message (CONTRACT) for ``spec`` in run ``run_id``; ``observed_at`` is used
    when the file gives none. ``details.drill`` marks it as a drill's."""
    data: dict[str, Any] = msgspec.to_builtins(spec)
    data["report_id"] = run_report_id(spec.report_id, run_id)
    if spec.observed_at is None:
        data["observed_at"] = observed_at.isoformat()
    data["details"] = {**spec.details, "drill": True, "drill_run": run_id}
    return data


# --- reading files ---------------------------------------------------------------------------------

_Problem = tuple[str, str]

_MY_CHOICES: dict[str, tuple[str, Iterable[str]]] = {
    "kind": ("kind", [k.value for k in Kind]),
    "utility": ("utility", [u.value for u in Utility]),
    "severity": ("severity", [s.value for s in Severity]),
    "channel": ("channel", [c.value for c in Channel]),
    "states": ("delivery state", [s.value for s in DeliveryState]),
    "notices_approved": ("template", _TEMPLATES),
}


def _explain_here(err: msgspec.ValidationError, prefix: str) -> _Problem:
    path, msg = _explain(err, prefix)
    if bad := re.fullmatch(r"Invalid enum value (.+)", msg):
        field = re.sub(r"\[\d+\]$", "", path).rpartition(".")[2]
        if field in _MY_CHOICES:
            what, known = _MY_CHOICES[field]
            msg = f"unknown {what} {bad[1]} (known: {', '.join(known)})"
    return path, msg


def _attempt(value: Any, type_: Any, path: str, problems: list[_Problem]) -> Any:
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as err:
        problems.append(_explain_here(err, path))
        return None


def _convert(data: dict[str, Any]) -> tuple[Scenario | None, list[_Problem]]:
    """Part by part (the scenario's own keys, then each step), so every broken step shows."""
    problems: list[_Problem] = []
    steps = data.get("steps")
    top = dict(data)
    if isinstance(steps, list) and steps:
        top["steps"] = [{"at": "0s", "say": "-"}]  # a stand-in: the steps are checked one by one
    _attempt(top, Scenario, "", problems)
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        _attempt(step, Step, f"steps[{i}]", problems)
    if problems:
        return None, problems
    return _attempt(data, Scenario, "", problems), problems


def _cross_check(scenario: Scenario, stem: str | None) -> list[_Problem]:
    p: list[_Problem] = []
    if stem is not None and scenario.name != stem:
        p.append(("name", f"{scenario.name!r} must equal the file name {stem!r}"))
    seen_reports: dict[str, int] = {}
    declared = None
    previous = timedelta(0)
    for i, step in enumerate(scenario.steps):
        base = f"steps[{i}]"
        if step.offset < previous:
            p.append((f"{base}.at", f"{step.at} is before the step above it ({format_offset(previous)}): "
                                    "keep the steps in time order"))  # fmt: skip
        previous = max(previous, step.offset)
        if step.report is not None:
            rid = step.report.report_id
            if rid in seen_reports:
                p.append(
                    (
                        f"{base}.report.report_id",
                        f"report id {rid!r} used twice (first in steps[{seen_reports[rid]}])",
                    )
                )
            seen_reports.setdefault(rid, i)
        ref = (
            (f"{base}.declare.report", step.declare.report)
            if step.declare is not None and step.declare.report is not None
            else (f"{base}.link", step.link)
            if step.link is not None
            else None
        )
        if ref is not None and ref[1] not in seen_reports:
            known = ", ".join(seen_reports) or "none yet"
            p.append((ref[0], f"no report {ref[1]!r} in an earlier step (reports so far: {known})"))
        if step.declare is not None:
            if declared is not None:
                p.append(
                    (f"{base}.declare", f"a scenario runs one incident: it is declared in steps[{declared}]")
                )
            declared = i
    return p


def _problems_of(text: str, file: str, stem: str | None) -> tuple[Scenario | None, list[str]]:
    built = _read_yaml(text)
    if isinstance(built, tuple):
        return None, [f"{file}:{built[0]}: {built[1]}"]
    found = list(built.problems)
    scenario: Scenario | None = None
    if not isinstance(built.value, dict):
        found.append((1, "", "a scenario file must be a mapping of keys (name:, title:, speed:, steps:)"))
    elif not built.broken:
        # Top-level keys starting with "x-" only hold YAML anchors for reuse.
        value = {k: v for k, v in built.value.items() if not k.startswith("x-")}
        scenario, problems = _convert(value)
        if scenario is not None:
            problems = _cross_check(scenario, stem)
        found += [(_line(built.lines, path), path, msg) for path, msg in problems]
    found.sort()
    out = [f"{file}:{line}: {path}: {msg}" if path else f"{file}:{line}: {msg}" for line, path, msg in found]
    return (None if out else scenario), out


def loads_scenario(text: str, file: str = "<scenario>") -> Scenario:
    """Parse a scenario from ``text``; problems name ``file``. When ``file`` is a file name
    (not ``<...>``), the scenario's name must be its stem."""
    stem = None if file.startswith("<") else Path(file).stem
    scenario, problems = _problems_of(text, file, stem)
    if scenario is None:
        raise ScenarioError(problems)
    return scenario


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ScenarioError([f"{path}: no such file"]) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError([f"{path}: cannot read: {err}"]) from err
    return loads_scenario(text, str(path))


def shipped_scenarios(directory: Path) -> list[Path]:
    """The scenario files of ``directory`` (``config/drills``, ``incident/bundled/drills``), by name."""
    if not directory.is_dir():
        return []
    return sorted(f for f in directory.iterdir() if f.suffix in SCENARIO_SUFFIXES and f.is_file())


def find_scenario(name_or_path: str, directories: Iterable[Path]) -> Path:
    """A path to a scenario file, or the name of a shipped one (``main_break``)."""
    path = Path(name_or_path)
    if path.suffix in SCENARIO_SUFFIXES or path.parent != Path("."):
        if path.is_file():
            return path
        raise ScenarioError([f"{path}: no such file"])
    known: list[str] = []
    for directory in directories:
        for file in shipped_scenarios(directory):
            if file.stem == name_or_path:
                return file
            known.append(file.stem)
    shown = ", ".join(sorted(set(known))) or "none found"
    raise ScenarioError([f"unknown scenario {name_or_path!r}: give a file or one of: {shown}"])
