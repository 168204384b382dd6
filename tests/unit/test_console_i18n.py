"""Every status, delivery state and event type the service emits has words in the console (in
English and in Chinese) and in the after-action report; and the console decides "finished"
with the same delivery states as the service.

The lists come from the service's own sources: its enums, and every event type appended
anywhere in src/incident (``EventDraft(type=...)`` and the playbook engine's
``_record(incident, "type", ...)``), found by reading the code, so a new event type without
words fails here."""

from __future__ import annotations

import ast
import json
import re
from enum import StrEnum
from pathlib import Path

import pytest

from incident.core import domain
from incident.deliveries import states
from incident.households.model import Channel, Priority
from incident.notices.context import Advisory, TemplateKey
from incident.reports.model import ReportStatus
from incident.review.words import WORDS

SRC = Path(domain.__file__).parents[1]  # src/incident (domain is in core/)
STATIC = SRC / "console" / "static"


def dictionaries() -> dict[str, dict[str, str]]:
    """The console's dictionaries (``const en = {...}``, ``const zh = {...}`` in i18n.js)."""
    text = (STATIC / "i18n.js").read_text(encoding="utf-8")
    found: dict[str, dict[str, str]] = {}
    for name in ("en", "zh"):
        body = re.search(rf"^const {name} = \{{\n(.*?)^\}};", text, re.S | re.M)
        assert body is not None, name
        entries = re.findall(r'^\s+("(?:[^"\\]|\\.)+"):\s*("(?:[^"\\]|\\.)*"),?\s*$', body.group(1), re.M)
        found[name] = {json.loads(k): json.loads(v) for k, v in entries}
        assert len(found[name]) > 200, name  # the whole dictionary was read
    return found


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "text" (and NAME: Final = "text")."""
    out: dict[str, str] = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
            out[target.id] = value.value
    return out


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def emitted_event_types() -> set[str]:
    """Every event type appended in src/incident, read from the code."""
    found = {t.value for t in domain.EventType}
    unresolved: list[str] = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        # A parameter (``_record(self, incident_id, type_, ...)``): its callers are read instead.
        parameters = {
            a.arg
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
            for a in f.args.args + f.args.kwonlyargs
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = _name(node.func)
            value: ast.expr | None = None
            if called == "EventDraft":
                value = next((k.value for k in node.keywords if k.arg == "type"), None)
            elif called == "_record" and len(node.args) >= 2:
                value = node.args[1]
            if value is None:
                continue
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(value.value)
            elif isinstance(value, ast.Attribute) and _name(value.value) == "EventType":
                found.add(domain.EventType[value.attr].value)
            elif isinstance(value, ast.Name) and value.id in constants:
                found.add(constants[value.id])
            elif isinstance(value, ast.Name) and value.id in parameters:
                continue
            elif not (isinstance(value, ast.Attribute) and value.attr == "type"):  # a copy of d.type
                unresolved.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert unresolved == [], f"event types this test cannot read: {unresolved}"
    return found


def notice_statuses() -> set[str]:
    text = (SRC / "notices/service.py").read_text(encoding="utf-8")
    return set(re.findall(r'status\s*(?:=|==|!=)\s*"(\w+)"', text)) | {"planned", "approved"}


def values(enum: type[StrEnum]) -> set[str]:
    return {member.value for member in enum}


#: The console's label groups and what fills them.
CONSOLE_GROUPS: dict[str, set[str]] = {
    "event": emitted_event_types(),
    "status": values(domain.Status) | values(ReportStatus),
    "notice_status": notice_statuses(),
    "delivery": values(states.DeliveryState),
    "kind": values(domain.Kind),
    "severity": values(domain.Severity),
    "utility": values(domain.Utility),
    "channel": values(Channel),
    "priority": values(Priority),
    "advisory": values(Advisory),
    "template": values(TemplateKey),
    "role": values(domain.Role),
}


def test_the_event_types_are_read_from_the_code() -> None:
    events = CONSOLE_GROUPS["event"]
    # From the domain, the notices, the playbook engine and the inbound SMS hook.
    assert {"declared", "area_changed", "notice_planned", "stage_entered", "sla_breached", "page_sent",
            "household_reply", "etr_set"} <= events  # fmt: skip


@pytest.mark.parametrize("group", sorted(CONSOLE_GROUPS))
def test_every_code_has_words_in_both_languages_of_the_console(group: str) -> None:
    words = dictionaries()
    for lang, dictionary in words.items():
        missing = sorted(code for code in CONSOLE_GROUPS[group] if f"{group}.{code}" not in dictionary)
        assert missing == [], f"i18n.js ({lang}) has no {group}.* for {missing}"
    # The Chinese words are Chinese (a copied English word is not a translation).
    english = sorted(
        code
        for code in CONSOLE_GROUPS[group]
        if re.fullmatch(r"[A-Za-z ,()-]+", words["zh"][f"{group}.{code}"])
        and words["zh"][f"{group}.{code}"] not in ("SMS", "SCADA")
    )
    assert english == [], f"zh-CN {group}.* still English for {english}"


REPORT_GROUPS = {
    "event": CONSOLE_GROUPS["event"],
    "status": values(domain.Status),
    "kind": values(domain.Kind),
    "severity": values(domain.Severity),
    "utility": values(domain.Utility),
    "channel": values(Channel),
    "delivery": values(states.DeliveryState),
    "advisory": values(Advisory),
    "template": values(TemplateKey),
}


@pytest.mark.parametrize("group", sorted(REPORT_GROUPS))
def test_every_code_has_plain_words_in_the_after_action_report(group: str) -> None:
    missing = sorted(code for code in REPORT_GROUPS[group] if code not in WORDS[group])
    assert missing == [], f"incident.review.words has no {group} word for {missing}"
    assert not [w for w in WORDS[group].values() if "_" in w]


def _js_set(text: str, name: str) -> set[str]:
    found = re.search(rf"export const {name} = new Set\(\[(.*?)\]\);", text, re.S)
    assert found is not None, name
    return set(re.findall(r'"(\w+)"', found.group(1)))


def test_the_console_decides_finished_and_reached_as_the_service_does() -> None:
    text = (STATIC / "widgets.js").read_text(encoding="utf-8")
    assert _js_set(text, "FINAL") == {s.value for s in states.FINAL}
    assert _js_set(text, "REACHED") == {s.value for s in states.REACHED}
    assert f'export const NO_RECEIPTS = "{states.NO_RECEIPTS}";' in text
    assert states.is_final("push", states.DeliveryState.sent)  # what the console counts as finished
