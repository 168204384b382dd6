from __future__ import annotations

import types
from datetime import timedelta
from typing import Any, get_args

import msgspec
import pytest

import incident.playbook
from incident.core.domain import Kind, Status, Utility
from incident.households.model import Channel
from incident.notices.context import TemplateKey
from incident.playbook import (
    Action,
    Approval,
    AreaMethod,
    ComputeArea,
    Duration,
    ExitRule,
    ExitTrigger,
    Milestone,
    MilestoneEvent,
    Note,
    Page,
    PlanNotice,
    Playbook,
    Sla,
    Timer,
    TimerSchedule,
    convert,
    exit_target,
    find_stage,
    parse_duration,
    select_playbook,
    stage_after,
)
from incident.playbook.model import ACTIONS


def test_public_surface_is_exactly_all() -> None:
    public = {
        name
        for name, value in vars(incident.playbook).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(incident.playbook.__all__)


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1h30m", timedelta(minutes=90)),
        ("48h", timedelta(days=2)),
    ],
)
def test_durations_parse_to_timedelta(text: str, expected: timedelta) -> None:
    value = parse_duration(text)
    assert value == expected
    assert isinstance(value, Duration)  # a timedelta
    assert parse_duration(str(value)) == value  # written back in the same notation


@pytest.mark.parametrize("text", ["", "2", "2 hours", "h", "1h1d", "0m", "-1h", "1.5h", "400d", "2H", "PT2H"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_duration_prints_in_playbook_notation() -> None:
    assert str(parse_duration("1d12h")) == "1d12h"
    assert str(parse_duration("90s")) == "1m30s"


# --- milestones --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "event", "arg"),
    [
        ("declared", MilestoneEvent.declared, None),
        ("first_notice_sent", MilestoneEvent.first_notice_sent, None),
        ("follow_up_sent", MilestoneEvent.notice_sent, "follow_up"),
        ("notice_sent:advisory_lifted", MilestoneEvent.notice_sent, "advisory_lifted"),
        ("stage:make_safe", MilestoneEvent.stage, "make_safe"),
        ("report:responder_on_site", MilestoneEvent.report, "responder_on_site"),
        ("status:restoring", MilestoneEvent.status, "restoring"),
    ],
)
def test_milestones_parse(text: str, event: MilestoneEvent, arg: str | None) -> None:
    m = Milestone.parse(text)
    assert (m.event, m.arg) == (event, arg)
    assert Milestone.parse(str(m)) == m


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("restored_at", "unknown milestone"),
        ("stage", "unknown milestone"),
        ("declared:x", "unknown milestone"),
        ("notice_sent:leak", "unknown template 'leak'"),
        ("status:done", "unknown status 'done'"),
        ("stage:Make Safe", "must match"),
    ],
)
def test_bad_milestones_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Milestone.parse(text)


def test_milestones_are_immutable_and_hashable() -> None:
    m = Milestone.parse("stage:restore")
    with pytest.raises(AttributeError):
        m.arg = "other"  # type: ignore[misc]
    assert {m, Milestone.parse("stage:restore")} == {m}


def test_an_sla_starts_at_declaration_unless_told() -> None:
    sla = convert({"id": "s", "title": "S", "stop": "first_notice_sent", "within": "30m"}, Sla)
    assert sla.start == Milestone(MilestoneEvent.declared)
    assert sla.within == timedelta(minutes=30)
    with pytest.raises(msgspec.ValidationError, match="exactly one of within, before_start"):
        convert({"id": "s", "title": "S", "stop": "first_notice_sent"}, Sla)


# --- actions, exits, timers --------------------------------------------------------------


def test_actions_are_a_union_tagged_on_do() -> None:
    tags = [t.__struct_config__.tag for t in get_args(Action)]
    assert tags == list(ACTIONS)
    notice = convert({"do": "plan_notice", "template": "etr_update", "channels": ["sms", "push"]}, PlanNotice)
    assert notice.template is TemplateKey.etr_update
    assert notice.channels == (Channel.sms, Channel.push)
    assert notice.approval is Approval.required  # a person approves unless the playbook says auto


def test_set_etr_is_written_with_in() -> None:
    action: Any = convert({"do": "set_etr", "in": "4h"}, Action)  # type: ignore[arg-type]
    assert action.in_ == timedelta(hours=4)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"do": "compute_area", "method": "around"}, "radius_m is required"),
        ({"do": "compute_area", "method": "isolation", "radius_m": 100}, "radius_m is required"),
        ({"do": "compute_area", "method": "around", "radius_m": 0}, ">"),
        ({"do": "compute_area", "method": "isolation", "zones": ["Z1"]}, "zones is allowed only"),
        ({"do": "plan_notice", "template": "restored", "channels": []}, "length >= 1"),
        ({"do": "plan_notice", "template": "restored", "channels": ["sms", "sms"]}, "at most once"),
        ({"do": "page", "rota": "x", "text": "call {phone}"}, "unknown placeholder {phone}"),
        ({"do": "page", "rota": "x", "text": "{title.__class__}"}, "unknown placeholder"),
        ({"do": "page", "rota": "x", "text": "open { brace"}, "literal brace"),
        ({"do": "set_status", "status": "finished"}, "Invalid enum value 'finished'"),
        ({"do": "launch"}, "Invalid value 'launch'"),
    ],
)
def test_bad_actions_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        convert(data, Action)  # type: ignore[arg-type]


def test_page_text_fills_placeholders() -> None:
    page = convert({"do": "page", "rota": "gas", "text": "Leak {incident_id}: {title} ({households})"}, Page)
    text = page.render({"incident_id": "INC-2026-000001", "title": "Elm St", "households": 12})
    assert text == "Leak INC-2026-000001: Elm St (12)"
    assert page.render({}) == "Leak (not known yet): (not known yet) ((not known yet))"


def test_timers_hold_their_action_beside_their_own_keys() -> None:
    timer = convert(
        {"id": "etr", "every": "2h", "do": "plan_notice", "template": "etr_update", "channels": ["sms"]},
        Timer,
    )
    assert timer.schedule is TimerSchedule.every
    assert timer.delay == timedelta(hours=2)
    assert isinstance(timer.action, PlanNotice)
    assert timer.action.template is TemplateKey.etr_update


@pytest.mark.parametrize(
    "schedule", [{}, {"every": "2h", "after": "1h"}, {"after": "1h", "at_before_start": "48h"}]
)
def test_a_timer_has_exactly_one_schedule(schedule: dict[str, str]) -> None:
    with pytest.raises(msgspec.ValidationError, match="exactly one of every, after, at_before_start"):
        convert({"id": "t", **schedule, "do": "note", "text": "x"}, Timer)


@pytest.mark.parametrize(
    ("data", "trigger"),
    [
        ({"manual": True}, ExitTrigger.manual),
        ({"report": {"kinds": ["field_crew_repair_done"]}}, ExitTrigger.report),
        ({"notices": "sent"}, ExitTrigger.notices),
        ({"condition": "clean_samples", "to": "lift"}, ExitTrigger.condition),
        ({"after": "6h"}, ExitTrigger.after),
    ],
)
def test_exit_rules_have_one_trigger(data: dict[str, Any], trigger: ExitTrigger) -> None:
    assert convert(data, ExitRule).trigger is trigger


@pytest.mark.parametrize(
    "data", [{}, {"to": "close"}, {"manual": True, "after": "1h"}, {"manual": False}, {"notices": "planned"}]
)
def test_bad_exit_rules_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        convert(data, ExitRule)


# --- selection and stage order -------------------------------------------------------------


def _playbook(name: str, kinds: list[str] | None, utilities: list[str] | None = None) -> Playbook:
    data: dict[str, Any] = {
        "name": name,
        "title": name,
        "stages": [
            {"id": "first", "exit": [{"manual": True}, {"after": "1h", "to": "last"}]},
            {"id": "middle", "status": "active"},
            {"id": "last", "status": "closed"},
        ],
    }
    if kinds is not None:
        data["match"] = {"kinds": kinds, **({"utilities": utilities} if utilities is not None else {})}
    return convert(data, Playbook)


def test_selection_prefers_the_most_specific_match_whatever_the_order() -> None:
    any_utility = _playbook("outage_any", ["main_break", "unplanned_outage"])
    water = _playbook("outage_water", ["main_break", "unplanned_outage"], ["water"])
    water_breaks = _playbook("breaks_water", ["main_break"], ["water"])
    water_or_heat = _playbook("breaks_water_heat", ["main_break"], ["water", "heat"])
    by_name_only = _playbook("special", None)
    books = [any_utility, water, water_breaks, water_or_heat, by_name_only]
    for order in (books, list(reversed(books))):
        assert select_playbook(order, Kind.main_break, Utility.water) is water_breaks
        assert select_playbook(order, Kind.unplanned_outage, Utility.water) is water
        assert select_playbook(order, Kind.main_break, Utility.heat) is water_or_heat
        assert select_playbook(order, Kind.main_break, Utility.gas) is any_utility
        assert select_playbook(order, Kind.gas_leak, Utility.gas) is None


def test_selection_breaks_ties_by_name() -> None:
    b = _playbook("b_outage", ["main_break"], ["water"])
    a = _playbook("a_outage", ["main_break"], ["water"])
    assert select_playbook([b, a], Kind.main_break, Utility.water) is a
    assert select_playbook([a, b], Kind.main_break, Utility.water) is a


def test_stage_order_and_exit_targets() -> None:
    book = _playbook("x", ["main_break"])
    first, middle, last = book.stages
    assert find_stage(book, "middle") is middle
    assert find_stage(book, "nowhere") is None
    assert stage_after(book, "first") is middle
    assert stage_after(book, "last") is None
    assert stage_after(book, "nowhere") is None
    manual, timed = first.exit
    assert exit_target(book, "first", manual) is middle
    assert exit_target(book, "first", timed) is last
    assert last.status is Status.closed
    assert middle.label == "middle"


def test_playbooks_are_frozen() -> None:
    book = _playbook("x", ["main_break"])
    with pytest.raises(AttributeError):
        book.name = "y"  # type: ignore[misc]
    note = convert({"do": "note", "text": "hello"}, Note)
    assert note == Note(text="hello")
    # Built in code, the same checks hold.
    assert ComputeArea(method=AreaMethod.around, radius_m=100).radius_m == 100
    with pytest.raises(ValueError, match="radius_m is required"):
        ComputeArea(method=AreaMethod.around)
