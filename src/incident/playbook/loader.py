"""Read playbook files (YAML) into :class:`~incident.playbook.model.Playbook`, naming the file
and the line of every problem.

YAML is composed into PyYAML's node tree with the safe loader (no Python tags), then built
into plain values while a map from each value's path (``stages[1].on_enter[0].template``)
to its line is kept. The values are converted with msgspec part by part (the playbook's own
keys, each stage, action, exit rule, timer, SLA and condition), so one run finds a problem
in every part rather than only the first; then the checks across parts run (names, stage
references, rotas, status moves). Every problem becomes one line::

    playbooks/gas_leak.yaml:14: stages[1].on_enter[0].template: unknown template 'gas_leek' (...)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import msgspec
import yaml

from incident.core.domain import TRANSITIONS, Kind, Status, Utility
from incident.core.errors import PlaybookError
from incident.households.model import Channel, Priority
from incident.notices.context import Advisory, TemplateKey
from incident.playbook.model import (
    ACTIONS,
    Action,
    Approval,
    AreaMethod,
    Condition,
    ExitRule,
    MilestoneEvent,
    Page,
    PlanNotice,
    Playbook,
    SetAdvisory,
    SetStatus,
    Sla,
    Stage,
    Timer,
    convert,
)
from incident.playbook.oncall import OnCall

__all__ = ["PLAYBOOK_SUFFIXES", "load_playbook", "load_playbooks", "loads_playbook"]

PLAYBOOK_SUFFIXES = (".yaml", ".yml")

#: A problem inside one file: (path, message); the line comes from the path.
_Problem = tuple[str, str]

_ID = re.compile(r"[a-z][a-z0-9_]*")
_MAX_DEPTH = 50


# --- YAML with lines -------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and key else path or key


class _Built:
    """Plain values of a YAML document with the line of every path."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.value: Any = None
        self.lines: dict[str, int] = {}
        self.problems: list[tuple[int, str, str]] = []
        #: Some value could not be built at all (an unknown tag): its place holds None.
        self.broken = False

    def build(self, node: yaml.Node, path: str, depth: int = 0) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        if depth > _MAX_DEPTH:
            self.problems.append((line, path, "nested too deeply (a recursive alias?)"))
            return None
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node.value)]
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            self.problems.append((mark.line + 1 if mark else line, path, _yaml_message(err)))
            self.broken = True
            return None

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, Any]:
        self.loader.flatten_mapping(node)  # YAML merge keys (<<: *defaults)
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                self.problems.append((key_line, path, f"key {key!r} is not text (put it in quotes)"))
                continue
            sub = _join(path, key)
            if key in first:
                self.problems.append((key_line, sub, f"key {key!r} given twice (first at line {first[key]})"))
                continue
            first[key] = key_line
            self.lines[sub] = key_line
            out[key] = self.build(value_node, sub, depth + 1)
        return out


def _yaml_message(err: yaml.MarkedYAMLError) -> str:
    context = err.context or ""
    if context and err.context_mark and err.problem_mark and err.context_mark.line != err.problem_mark.line:
        context += f" (from line {err.context_mark.line + 1})"
    parts = [p for p in (context, err.problem) if p]
    return "YAML: " + (", ".join(parts) if parts else str(err).splitlines()[0])


def _read_yaml(text: str) -> _Built | tuple[int, str]:
    """The built document, or (line, message) when the YAML itself is broken."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return (1, "the file is empty")
        built = _Built(loader)
        built.value = built.build(node, "")
        return built
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        return (mark.line + 1 if mark else 1, _yaml_message(err))
    except yaml.YAMLError as err:
        return (1, f"YAML: {err}")
    finally:
        loader.dispose()


def _line(lines: dict[str, int], path: str) -> int:
    """The line of ``path``, or of the nearest enclosing value the file has."""
    while path and path not in lines:
        last = re.search(r"(\.[^.\[\]]+|\[\d+\])$", path)
        path = path[: last.start()] if last else ""
    return lines.get(path, 1)


# --- msgspec errors as sentences -------------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*) - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`$", re.DOTALL)
_NAME_RULE = "must be a name of lower-case letters, digits and _, starting with a letter"
_CHOICES: dict[str, tuple[str, Iterable[str]]] = {
    "template": ("template", [t.value for t in TemplateKey]),
    "channels": ("channel", [c.value for c in Channel]),
    "kinds": ("kind", [k.value for k in Kind]),
    "utilities": ("utility", [u.value for u in Utility]),
    "status": ("status", [s.value for s in Status]),
    "advisory": ("advisory", [a.value for a in Advisory]),
    "method": ("area method", [m.value for m in AreaMethod]),
    "approval": ("approval", [a.value for a in Approval]),
    "priority": ("priority", [p.value for p in Priority]),
    "do": ("action", ACTIONS),
}
_LITERALS = {"manual": "must be true", "notices": "must be 'sent'"}


def _explain(err: msgspec.ValidationError, prefix: str) -> _Problem:
    text = str(err)
    m = _AT.match(text)
    msg, sub, is_key = (m["msg"], m["path"], bool(m["key"])) if m else (text, "", False)
    path = prefix + sub if sub.startswith("[") else _join(prefix, sub.lstrip("."))
    path = path.replace("[...]", "")  # a value of a mapping: msgspec does not say which key
    # A timer's action keys sit beside the timer's own in the file.
    path = re.sub(r"(timers\[\d+\])\.action\b", r"\1", path)
    msg = msg.replace("Expected `str` matching regex '^[a-z][a-z0-9_]*$'", _NAME_RULE)
    if is_key:
        return path, f"a key here: {msg}"
    if unknown := re.fullmatch(r"Object contains unknown field `(.+)`", msg):
        return _join(path, unknown[1]), f"unknown key {unknown[1]!r}"
    if missing := re.fullmatch(r"Object missing required field `(.+)`", msg):
        return path, f"missing key {missing[1]!r}"
    if own := re.fullmatch(r"([a-z_]+): (.+)", msg, re.DOTALL):
        # A check of a whole part that names one of its keys (``text: unknown placeholder``).
        return _join(path, own[1]), own[2]
    if bad := re.fullmatch(r"Invalid (?:enum )?value (.+)", msg):
        field = re.sub(r"\[\d+\]$", "", path).rpartition(".")[2]
        if field in _LITERALS:
            return path, _LITERALS[field]
        if field in _CHOICES:
            what, known = _CHOICES[field]
            return path, f"unknown {what} {bad[1]} (known: {', '.join(known)})"
    return path, msg


# --- one file ----------------------------------------------------------------------------------


def _attempt(value: Any, type_: Any, path: str, problems: list[_Problem]) -> Any:
    try:
        return convert(value, cast("type[Any]", type_))
    except msgspec.ValidationError as err:
        problems.append(_explain(err, path))
        return None


def _convert(data: dict[str, Any]) -> tuple[Playbook | None, list[_Problem]]:
    """Convert part by part, so every broken part is reported; then the whole."""
    problems: list[_Problem] = []
    top = dict(data)
    for key, empty in (("stages", []), ("slas", []), ("conditions", {})):
        if isinstance(top.get(key), type(empty)):
            top[key] = empty
    _attempt(top, Playbook, "", problems)
    stages = data.get("stages")
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        path = f"stages[{i}]"
        if not isinstance(stage, dict):
            _attempt(stage, Stage, path, problems)
            continue
        shell = {k: ([] if isinstance(v, list) and k in ("on_enter", "exit", "timers") else v)
                 for k, v in stage.items()}  # fmt: skip
        _attempt(shell, Stage, path, problems)
        for key, type_ in (("on_enter", Action), ("exit", ExitRule), ("timers", Timer)):
            items = stage.get(key)
            for j, item in enumerate(items if isinstance(items, list) else []):
                _attempt(item, type_, f"{path}.{key}[{j}]", problems)
    slas = data.get("slas")
    for i, sla in enumerate(slas if isinstance(slas, list) else []):
        _attempt(sla, Sla, f"slas[{i}]", problems)
    conditions = data.get("conditions")
    for name, condition in conditions.items() if isinstance(conditions, dict) else []:
        if not _ID.fullmatch(name):
            problems.append((_join("conditions", name), f"condition name {_NAME_RULE}"))
        _attempt(condition, Condition, _join("conditions", name), problems)
    if problems:
        return None, problems
    playbook = _attempt(data, Playbook, "", problems)
    return playbook, problems


def _status_moves(playbook: Playbook) -> list[_Problem]:
    """Every status a stage or ``set_status`` moves to must be a legal move from every
    status the incident can have when that stage is entered (following the exit rules)."""
    index = {s.id: i for i, s in enumerate(playbook.stages)}
    problems: dict[str, str] = {}
    seen: set[tuple[int, Status]] = set()
    todo = [(0, Status.declared)] if playbook.stages else []
    while todo:
        i, status = todo.pop()
        if (i, status) in seen:
            continue
        seen.add((i, status))
        stage = playbook.stages[i]
        moves = [(f"stages[{i}].status", stage.status)] if stage.status else []
        moves += [(f"stages[{i}].on_enter[{j}].status", a.status)
                  for j, a in enumerate(stage.on_enter) if isinstance(a, SetStatus)]  # fmt: skip
        for path, to in moves:
            assert to is not None
            if to != status and to not in TRANSITIONS[status]:
                allowed = ", ".join(sorted(TRANSITIONS[status])) or "none: it is final"
                problems.setdefault(path, f"status {to} cannot follow {status} (allowed: {allowed})")
            else:
                status = to
        targets = {index[r.to] for r in stage.exit if r.to is not None and r.to in index}
        if any(r.to is None for r in stage.exit) or not stage.exit:
            targets.add(i + 1)
        todo += [(t, status) for t in targets if t < len(playbook.stages)]
    return list(problems.items())


def _cross_check(
    playbook: Playbook, stem: str, oncall: OnCall | None, line: Callable[[str], int]
) -> list[_Problem]:
    p: list[_Problem] = []
    if playbook.name != stem:
        p.append(("name", f"{playbook.name!r} must equal the file name {stem!r}"))
    if not playbook.stages:
        p.append(("stages", "a playbook needs at least one stage"))

    def rota(path: str, name: str) -> None:
        if oncall is not None and name not in oncall.rotas:
            p.append((path, f"unknown rota {name!r} (on-call file has: {', '.join(sorted(oncall.rotas))})"))

    stage_ids: dict[str, str] = {}
    for i, stage in enumerate(playbook.stages):
        if stage.id in stage_ids:
            first = line(stage_ids[stage.id])
            p.append((f"stages[{i}].id", f"duplicate stage id {stage.id!r} (first at line {first})"))
        else:
            stage_ids[stage.id] = f"stages[{i}].id"
    timer_ids: dict[str, str] = {}
    last = len(playbook.stages) - 1
    for i, stage in enumerate(playbook.stages):
        base = f"stages[{i}]"
        actions = [(f"{base}.on_enter[{j}]", a) for j, a in enumerate(stage.on_enter)]
        for j, timer in enumerate(stage.timers):
            path = f"{base}.timers[{j}]"
            actions.append((path, timer.action))
            if timer.id in timer_ids:
                first = line(timer_ids[timer.id])
                p.append((f"{path}.id", f"duplicate timer id {timer.id!r} (first at line {first})"))
            else:
                timer_ids[timer.id] = f"{path}.id"
        for path, action in actions:
            if isinstance(action, Page):
                rota(f"{path}.rota", action.rota)
            if isinstance(action, SetAdvisory) and action.advisory is None and playbook.advisory is None:
                p.append((path, "set_advisory needs an advisory here or in the playbook's `advisory`"))
        for j, rule in enumerate(stage.exit):
            path = f"{base}.exit[{j}]"
            if rule.to is not None and rule.to not in stage_ids:
                p.append((f"{path}.to", f"unknown stage {rule.to!r} (stages: {', '.join(stage_ids)})"))
            if rule.to is None and i == last:
                p.append((path, "the last stage has no next stage: say where to go with `to:`"))
            if rule.condition is not None and rule.condition not in playbook.conditions:
                known = ", ".join(playbook.conditions) or "none defined under `conditions:`"
                p.append((f"{path}.condition", f"unknown condition {rule.condition!r} (known: {known})"))
            if rule.notices is not None and not any(isinstance(a, PlanNotice) for a in stage.on_enter):
                p.append((f"{path}.notices", "`notices: sent` in a stage whose on_enter plans no notice"))
    sla_ids: dict[str, str] = {}
    for i, sla in enumerate(playbook.slas):
        base = f"slas[{i}]"
        if sla.id in sla_ids:
            p.append((f"{base}.id", f"duplicate SLA id {sla.id!r} (first at line {line(sla_ids[sla.id])})"))
        else:
            sla_ids[sla.id] = f"{base}.id"
        for key in ("start", "stop"):
            milestone = getattr(sla, key)
            if milestone.event is MilestoneEvent.stage and milestone.arg not in stage_ids:
                p.append(
                    (f"{base}.{key}", f"unknown stage {milestone.arg!r} (stages: {', '.join(stage_ids)})")
                )
        if sla.start == sla.stop:
            p.append((f"{base}.stop", "an SLA cannot stop at the milestone that starts it"))
        for k, name in enumerate(sla.escalate):
            rota(f"{base}.escalate[{k}]", name)
    p += _status_moves(playbook)
    return p


def _problems_of(text: str, file: str, stem: str, oncall: OnCall | None) -> tuple[Playbook | None, list[str]]:
    built = _read_yaml(text)
    if isinstance(built, tuple):
        return None, [f"{file}:{built[0]}: {built[1]}"]
    found = list(built.problems)
    playbook: Playbook | None = None
    if not isinstance(built.value, dict):
        found.append((1, "", "a playbook file must be a mapping of keys (name:, title:, stages:, ...)"))
    elif not built.broken:
        # Top-level keys starting with "x-" only hold YAML anchors for reuse (`x-sms: &sms`).
        value = {k: v for k, v in built.value.items() if not k.startswith("x-")}
        playbook, problems = _convert(value)
        if playbook is not None:
            problems = _cross_check(playbook, stem, oncall, lambda path: _line(built.lines, path))
        found += [(_line(built.lines, path), path, msg) for path, msg in problems]
    found.sort()
    out = [f"{file}:{line}: {path}: {msg}" if path else f"{file}:{line}: {msg}" for line, path, msg in found]
    return (None if out else playbook), out


def loads_playbook(text: str, file: str = "<playbook>.yaml", *, oncall: OnCall | None = None) -> Playbook:
    """Parse a playbook from ``text``; problems name ``file`` (whose stem must be the name)."""
    playbook, problems = _problems_of(text, file, Path(file).stem, oncall)
    if playbook is None:
        raise PlaybookError(problems)
    return playbook


def load_playbook(path: Path, *, oncall: OnCall | None = None) -> Playbook:
    """Read one playbook file; ``PlaybookError`` lists every problem with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise PlaybookError([f"{path}: no such file"]) from err
    except (OSError, UnicodeDecodeError) as err:
        raise PlaybookError([f"{path}: cannot read: {err}"]) from err
    return loads_playbook(text, str(path), oncall=oncall)


def load_playbooks(path: Path, *, oncall: OnCall | None = None) -> dict[str, Playbook]:
    """Read a playbook file, or every ``*.yaml``/``*.yml`` of a directory, by name. All
    files are read; ``PlaybookError`` lists the problems of all of them."""
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix in PLAYBOOK_SUFFIXES and f.is_file())
        if not files:
            raise PlaybookError([f"{path}: no playbook files (*.yaml) here"])
    elif path.exists():
        files = [path]
    else:
        raise PlaybookError([f"{path}: no such file or directory"])
    playbooks: dict[str, Playbook] = {}
    problems: list[str] = []
    for file in files:
        try:
            playbook = load_playbook(file, oncall=oncall)
        except PlaybookError as err:
            problems += err.problems
            continue
        if playbook.name in playbooks:
            problems.append(f"{file}:1: playbook {playbook.name!r} is defined twice in {path}")
            continue
        playbooks[playbook.name] = playbook
    if problems:
        raise PlaybookError(problems)
    return playbooks
