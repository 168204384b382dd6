from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from incident.core.clock import isoformat
from incident.core.domain import TimelineEvent
from incident.playbook import Condition, Milestone, Playbook, Sla, Stage, convert, find_stage, load_playbooks
from incident.playbook.clocks import (
    SlaClock,
    condition_holds,
    condition_progress,
    current_stage,
    due_breaches,
    exit_due,
    milestone_at,
    newly_met,
    next_deadline,
    planned_start,
    report_kind,
    report_matches,
    sla_clocks,
)
from incident.settings import BUNDLED_DIR

PLAYBOOKS = BUNDLED_DIR / "playbooks"
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def at(minutes: float = 0, *, hours: float = 0, days: float = 0) -> str:
    return isoformat(T0 + timedelta(minutes=minutes, hours=hours, days=days))


class Timeline:
    """Builds the events of one incident in seq order, as the store would append them."""

    def __init__(self) -> None:
        self.events: list[TimelineEvent] = []

    def add(self, type_: str, when: str, **data: Any) -> Timeline:
        seq = len(self.events) + 1
        self.events.append(
            TimelineEvent(
                incident_id="INC-2026-000001",
                seq=seq,
                type=type_,
                actor="test",
                at=when,
                data=data,
                prev_hash=f"h{seq - 1}",
                hash=f"h{seq}",
            )
        )
        return self

    def declared(self, when: str, **extra: Any) -> Timeline:
        return self.add("declared", when, kind="main_break", utility="water", title="Main break",
                        severity="high", drill=False, **extra)  # fmt: skip

    def stage(self, when: str, stage: str, from_: str | None = None) -> Timeline:
        return self.add("stage_entered", when, stage=stage, title=stage, playbook="p", by="playbook",
                        reason="", **{"from": from_})  # fmt: skip

    def sent(self, when: str, template: str = "main_break", notice_id: str = "N1") -> Timeline:
        return self.add("notice_sent", when, notice_id=notice_id, template=template)

    def report(
        self, when: str, kind: str = "lab_result", observed_at: str | None = None, **details: Any
    ) -> Timeline:
        data: dict[str, Any] = {"report_id": f"R{len(self.events)}", "kind": "contamination", "source": "lab",
                                "severity": "high", "observed_at": observed_at or when, "summary": "s"}  # fmt: skip
        data["details"] = {"event": kind, **details}
        return self.add("report_linked", when, **data)

    def lab(self, when: str, result: str, observed_at: str | None = None) -> Timeline:
        return self.report(when, "lab_result", observed_at, result=result)

    def status(self, when: str, from_: str, to: str) -> Timeline:
        return self.add("status_changed", when, to=to, reason="", **{"from": from_})


@pytest.fixture(scope="module")
def playbooks() -> dict[str, Playbook]:
    return load_playbooks(PLAYBOOKS)


def sla_of(playbook: Playbook, sla_id: str) -> Sla:
    return next(s for s in playbook.slas if s.id == sla_id)


def stage_of(playbook: Playbook, stage_id: str) -> Stage:
    stage = find_stage(playbook, stage_id)
    assert stage is not None
    return stage


def one_clock(sla: Sla, timeline: Timeline, now: str, planned_start: str | None = None) -> SlaClock:
    [clock] = sla_clocks([sla], timeline.events, now, planned_start)
    return clock


# --- reports -----------------------------------------------------------------------------------


def test_report_kind_is_details_event_else_kind() -> None:
    assert report_kind({"kind": "contamination", "details": {"event": "lab_result"}}) == "lab_result"
    assert report_kind({"kind": "main_break", "details": {"pipe": "P1"}}) == "main_break"
    assert report_kind({"kind": "main_break", "details": {"event": ""}}) == "main_break"
    assert report_kind({"kind": "main_break"}) == "main_break"


@pytest.mark.parametrize(
    ("details", "where", "expected"),
    [
        ({"event": "lab_result", "result": "clean"}, {"result": "clean"}, True),
        ({"event": "lab_result", "result": "e_coli"}, {"result": "clean"}, False),
        ({"event": "lab_result"}, {"result": "clean"}, False),  # a missing key never matches
        ({"event": "lab_result", "ph": 7.0}, {"ph": 7}, True),  # numbers compare as numbers
        ({"event": "lab_result", "ph": "7"}, {"ph": 7}, True),  # else as text
        ({"event": "lab_result", "ok": True}, {"ok": True}, True),
        ({"event": "lab_result", "ok": "true"}, {"ok": True}, True),
        ({"event": "lab_result", "ok": 1}, {"ok": True}, False),  # a bool is not the number 1
        ({"event": "lab_result", "result": "clean", "zone": "Z1"}, {"result": "clean", "zone": "Z2"}, False),
        ({"event": "lab_result", "result": "clean"}, {}, True),
    ],
)
def test_report_matches_where_on_details(
    details: dict[str, Any], where: dict[str, Any], expected: bool
) -> None:
    assert report_matches({"kind": "contamination", "details": details}, ["lab_result"], where) is expected


def test_report_matches_needs_one_of_the_kinds() -> None:
    data = {"kind": "main_break", "details": {"event": "field_crew_repair_done"}}
    assert report_matches(data, ["field_crew_repair_done", "other"], {})
    assert not report_matches(data, ["main_break"], {})  # details.event wins over kind


# --- milestones --------------------------------------------------------------------------------


@pytest.fixture
def busy() -> Timeline:
    return (
        Timeline()
        .declared(at(0))
        .stage(at(0), "assess")
        .status(at(0), "declared", "active")
        .stage(at(15), "notify", "assess")
        .sent(at(20), "main_break")
        .report(at(30), "field_crew_repair_done", observed_at=at(5))
        .stage(at(40), "restore", "notify")
        .sent(at(45), "restored", "N2")
        .sent(at(50), "follow_up", "N3")
        .stage(at(60), "notify", "restore")
    )


@pytest.mark.parametrize(
    ("milestone", "expected"),
    [
        ("declared", at(0)),
        ("first_notice_sent", at(20)),
        ("notice_sent:restored", at(45)),
        ("follow_up_sent", at(50)),
        ("notice_sent:etr_update", None),
        ("stage:notify", at(15)),  # the first entry, not the second
        ("stage:close", None),
        # The link time, not the observation time.
        ("report:field_crew_repair_done", at(30)),
        ("report:leak_made_safe", None),
        ("status:active", at(0)),
        ("status:declared", at(0)),  # born declared, without a status_changed event
        ("status:closed", None),
    ],
)
def test_milestone_at_finds_the_first_event(busy: Timeline, milestone: str, expected: str | None) -> None:
    assert milestone_at(Milestone.parse(milestone), busy.events) == expected


def test_milestone_at_since_skips_earlier_events(busy: Timeline) -> None:
    notify = Milestone.parse("stage:notify")
    assert milestone_at(notify, busy.events, since=at(15)) == at(15)  # at `since` counts
    assert milestone_at(notify, busy.events, since=at(16)) == at(60)
    assert milestone_at(notify, busy.events, since=T0 + timedelta(minutes=61)) is None
    assert milestone_at(Milestone.parse("first_notice_sent"), busy.events, since=at(21)) == at(45)


def test_milestone_at_compares_since_as_a_time_not_text(busy: Timeline) -> None:
    # 16:16+08:00 is 08:16 UTC: after the first entry into notify (08:15), before the second.
    assert milestone_at(
        Milestone.parse("stage:notify"), busy.events, since="2026-11-21T16:16:00+08:00"
    ) == at(60)


# --- SLA clocks --------------------------------------------------------------------------------


def test_first_notice_runs_from_declaration_and_is_met_by_the_first_notice(
    playbooks: dict[str, Playbook],
) -> None:
    sla = sla_of(playbooks["water_main_break"], "first_notice")
    timeline = Timeline().declared(at(0)).stage(at(0), "assess")

    running = one_clock(sla, timeline, at(10))
    assert running == SlaClock(sla="first_notice", title=sla.title, state="running", started_at=at(0),
                               due_at=at(30), escalate=("command",))  # fmt: skip

    timeline.sent(at(25))
    met = one_clock(sla, timeline, at(40))
    assert (met.state, met.met_at, met.breached_at) == ("met", at(25), None)


def test_an_unmet_clock_is_breached_from_its_due_time(playbooks: dict[str, Playbook]) -> None:
    sla = sla_of(playbooks["water_main_break"], "first_notice")
    timeline = Timeline().declared(at(0))
    assert one_clock(sla, timeline, at(29.99)).state == "running"
    # At due_at itself: a wake-up timer set for due_at must find the breach.
    breached = one_clock(sla, timeline, at(30))
    assert (breached.state, breached.breached_at, breached.met_at) == ("breached", at(30), None)


def test_met_exactly_at_the_due_time_is_met(playbooks: dict[str, Playbook]) -> None:
    sla = sla_of(playbooks["water_main_break"], "first_notice")
    assert one_clock(sla, Timeline().declared(at(0)).sent(at(30)), at(90)).state == "met"


def test_met_late_stays_breached_and_shows_when_it_was_met(playbooks: dict[str, Playbook]) -> None:
    sla = sla_of(playbooks["water_main_break"], "first_notice")
    clock = one_clock(sla, Timeline().declared(at(0)).sent(at(42)), at(90))
    assert (clock.state, clock.breached_at, clock.met_at) == ("breached", at(30), at(42))


def test_a_clock_whose_start_has_not_happened_is_pending(playbooks: dict[str, Playbook]) -> None:
    sla = sla_of(playbooks["water_main_break"], "follow_up")  # start: stage:restore
    clock = one_clock(sla, Timeline().declared(at(0)).sent(at(10)), at(days=5))
    assert clock == SlaClock(sla="follow_up", title=sla.title, state="pending",
                             escalate=("command", "customer_care"))  # fmt: skip


def test_a_stop_before_the_start_does_not_count(playbooks: dict[str, Playbook]) -> None:
    sla = sla_of(playbooks["water_main_break"], "follow_up")
    # A follow-up sent before restoration (say, a previous visit) does not meet this clock.
    timeline = Timeline().declared(at(0)).sent(at(10), "follow_up").stage(at(hours=3), "restore")
    clock = one_clock(sla, timeline, at(hours=4))
    assert (clock.state, clock.started_at, clock.due_at) == ("running", at(hours=3), at(hours=27))
    timeline.sent(at(hours=7), "follow_up", "N2")
    assert one_clock(sla, timeline, at(hours=8)).met_at == at(hours=7)


def test_clocks_come_in_playbook_order_and_accept_a_datetime_now(playbooks: dict[str, Playbook]) -> None:
    gas = playbooks["gas_leak"]
    timeline = Timeline().declared(at(0)).stage(at(0), "dispatch").stage(at(20), "make_safe", "dispatch")
    clocks = sla_clocks(gas.slas, timeline.events, T0 + timedelta(minutes=35))
    assert [(c.sla, c.state) for c in clocks] == [
        ("responder_on_site", "met"),
        ("first_notice", "breached"),
        ("follow_up", "pending"),
    ]


def test_before_start_is_due_ahead_of_the_planned_start(playbooks: dict[str, Playbook]) -> None:
    sla = sla_of(playbooks["planned_outage_water"], "advance_notice")  # before_start: 48h
    timeline = Timeline().declared(at(0), start=at(days=5))
    clock = one_clock(sla, timeline, at(hours=1))
    assert (clock.state, clock.started_at, clock.due_at) == ("running", at(0), at(days=3))
    timeline.sent(at(days=2))
    assert one_clock(sla, timeline, at(days=6)).state == "met"


def test_before_start_takes_the_callers_planned_start_over_the_declarations(
    playbooks: dict[str, Playbook],
) -> None:
    sla = sla_of(playbooks["planned_outage_water"], "advance_notice")
    timeline = Timeline().declared(at(0), start=at(days=5))
    assert one_clock(sla, timeline, at(0), planned_start=at(days=4)).due_at == at(days=2)
    # Any offset: 2026-11-25T16:00+08:00 is 08:00 UTC, four days after T0.
    assert one_clock(sla, timeline, at(0), planned_start="2026-11-25T16:00:00+08:00").due_at == at(days=2)


def test_before_start_without_a_planned_start_waits_to_be_judged(playbooks: dict[str, Playbook]) -> None:
    sla = sla_of(playbooks["planned_outage_gas"], "advance_notice")
    timeline = Timeline().declared(at(0)).sent(at(10))
    clock = one_clock(sla, timeline, at(days=30))
    assert (clock.state, clock.started_at, clock.due_at, clock.met_at) == ("pending", at(0), None, None)
    assert planned_start(timeline.events) is None


def test_before_start_declared_too_late_is_breached_at_once(playbooks: dict[str, Playbook]) -> None:
    sla = sla_of(playbooks["planned_outage_gas"], "advance_notice")
    timeline = Timeline().declared(at(0), start=at(hours=24))
    clock = one_clock(sla, timeline, at(0))
    assert (clock.state, clock.due_at, clock.breached_at) == ("breached", at(hours=-24), at(hours=-24))


def test_due_breaches_lists_breaches_not_yet_on_the_timeline(playbooks: dict[str, Playbook]) -> None:
    gas = playbooks["gas_leak"]
    timeline = Timeline().declared(at(0)).stage(at(0), "dispatch")
    clocks = sla_clocks(gas.slas, timeline.events, at(31))
    assert [(c.sla, c.escalate) for c in due_breaches(clocks)] == [
        ("responder_on_site", ("command", "gas_on_call")),
        ("first_notice", ("command",)),
    ]
    timeline.add("sla_breached", at(31), sla="responder_on_site", title="t", due_at=at(30),
                 escalated_to=["command", "gas_on_call"])  # fmt: skip
    clocks = sla_clocks(gas.slas, timeline.events, at(32))
    assert [c.sla for c in clocks if c.breach_recorded] == ["responder_on_site"]
    assert [c.sla for c in due_breaches(clocks)] == ["first_notice"]


def test_newly_met_lists_clocks_met_in_time_without_an_sla_met_event(playbooks: dict[str, Playbook]) -> None:
    gas = playbooks["gas_leak"]
    timeline = Timeline().declared(at(0)).stage(at(20), "make_safe").sent(at(45))
    clocks = sla_clocks(gas.slas, timeline.events, at(50))
    # first_notice was met late: breached, so not "met".
    assert [c.sla for c in newly_met(clocks, timeline.events)] == ["responder_on_site"]
    timeline.add("sla_met", at(50), sla="responder_on_site", due_at=at(30), met_at=at(20))
    assert newly_met(clocks, timeline.events) == []


def test_next_deadline_is_the_earliest_due_time_of_running_clocks() -> None:
    def clock(state: Any, due_at: str | None) -> SlaClock:
        return SlaClock(sla=f"s{due_at}", title="t", state=state, due_at=due_at)

    clocks = [
        clock("running", "2026-11-21T10:00:00+00:00"),
        clock("running", "2026-11-21T17:30:00+08:00"),  # 09:30 UTC: the earliest, though not as text
        clock("met", "2026-11-21T08:00:00+00:00"),
        clock("breached", "2026-11-21T08:00:00+00:00"),
        clock("pending", None),
    ]
    assert next_deadline(clocks) == "2026-11-21T17:30:00+08:00"
    assert next_deadline(clocks[2:]) is None


def test_a_clock_is_plain_data_for_the_api(playbooks: dict[str, Playbook]) -> None:
    sla = sla_of(playbooks["water_main_break"], "first_notice")
    data = msgspec.json.decode(msgspec.json.encode(one_clock(sla, Timeline().declared(at(0)), at(31))))
    assert data == {"sla": "first_notice", "title": sla.title, "state": "breached", "started_at": at(0),
                    "due_at": at(30), "met_at": None, "breached_at": at(30), "breach_recorded": False,
                    "escalate": ["command"]}  # fmt: skip


# --- conditions --------------------------------------------------------------------------------


@pytest.fixture
def clean_samples(playbooks: dict[str, Playbook]) -> Condition:
    return playbooks["contamination"].conditions["clean_samples"]  # 2 clean, 24h apart


def test_one_clean_sample_does_not_lift(clean_samples: Condition) -> None:
    timeline = Timeline().declared(at(0)).lab(at(hours=1), "clean")
    assert not condition_holds(clean_samples, timeline.events)
    assert not condition_holds(clean_samples, Timeline().declared(at(0)).events)


def test_two_clean_samples_23h_apart_do_not_lift(clean_samples: Condition) -> None:
    timeline = Timeline().declared(at(0)).lab(at(hours=1), "clean").lab(at(hours=24), "clean")
    assert not condition_holds(clean_samples, timeline.events)


def test_two_clean_samples_24h_apart_lift(clean_samples: Condition) -> None:
    timeline = Timeline().declared(at(0)).lab(at(hours=1), "clean").lab(at(hours=25), "clean")
    assert condition_holds(clean_samples, timeline.events)


def test_a_dirty_sample_starts_the_count_again(clean_samples: Condition) -> None:
    timeline = Timeline().declared(at(0)).lab(at(hours=1), "clean").lab(at(hours=26), "e_coli")
    assert not condition_holds(clean_samples, timeline.events)
    timeline.lab(at(hours=50), "clean")  # 49h after the first clean one, but a dirty one between
    assert not condition_holds(clean_samples, timeline.events)
    timeline.lab(at(hours=73), "clean")
    assert not condition_holds(clean_samples, timeline.events)  # 23h after the previous
    timeline.lab(at(hours=74), "clean")  # 24h after hour 50, but hour 73 sits between: not consecutive
    assert not condition_holds(clean_samples, timeline.events)
    timeline.lab(at(hours=98), "clean")
    assert condition_holds(clean_samples, timeline.events)


def test_clean_dirty_clean_clean_lifts_only_on_the_last(clean_samples: Condition) -> None:
    timeline = Timeline().declared(at(0))
    steps = [(1, "clean", False), (25, "e_coli", False), (30, "clean", False), (54, "clean", True)]
    for hour, result, lifts in steps:
        timeline.lab(at(hours=hour), result)
        assert condition_holds(clean_samples, timeline.events) is lifts, hour


def test_samples_are_ordered_by_when_they_were_taken(clean_samples: Condition) -> None:
    # A dirty sample taken at hour 10 arrives after the clean ones of hours 1 and 30: it
    # sits between them, so they are not consecutive.
    timeline = Timeline().declared(at(0)).lab(at(hours=2), "clean", observed_at=at(hours=1))
    timeline.lab(at(hours=31), "clean", observed_at=at(hours=30))
    assert condition_holds(clean_samples, timeline.events)
    timeline.lab(at(hours=32), "e_coli", observed_at=at(hours=10))
    assert not condition_holds(clean_samples, timeline.events)
    # A late clean sample taken before the dirty one changes nothing either.
    timeline.lab(at(hours=33), "clean", observed_at=at(hours=5))
    assert not condition_holds(clean_samples, timeline.events)


def test_a_late_arriving_older_sample_does_not_count_as_the_newest(clean_samples: Condition) -> None:
    timeline = Timeline().declared(at(0)).lab(at(hours=2), "clean", observed_at=at(hours=30))
    timeline.lab(at(hours=40), "clean", observed_at=at(hours=1))  # linked last, taken first
    assert condition_holds(clean_samples, timeline.events)


def test_sample_times_compare_across_offsets(clean_samples: Condition) -> None:
    # 16:00+08:00 is 08:00 UTC; the next sample 23h59m later in UTC is too soon.
    timeline = Timeline().declared(at(0)).lab(at(0), "clean", observed_at="2026-11-21T16:00:00+08:00")
    timeline.lab(at(days=1), "clean", observed_at="2026-11-22T07:59:00+00:00")
    assert not condition_holds(clean_samples, timeline.events)
    timeline.lab(at(days=2), "clean", observed_at="2026-11-23T10:00:00+02:00")  # 08:00 UTC
    assert condition_holds(clean_samples, timeline.events)


def test_same_observation_time_orders_by_link_order(clean_samples: Condition) -> None:
    timeline = Timeline().declared(at(0)).lab(at(hours=1), "clean")
    timeline.lab(at(hours=26), "clean", observed_at=at(hours=25)).lab(
        at(hours=27), "e_coli", observed_at=at(hours=25)
    )
    assert not condition_holds(clean_samples, timeline.events)  # the dirty one, linked later, is newer
    timeline = Timeline().declared(at(0)).lab(at(hours=1), "clean")
    timeline.lab(at(hours=26), "e_coli", observed_at=at(hours=25)).lab(
        at(hours=27), "clean", observed_at=at(hours=25)
    )
    assert not condition_holds(clean_samples, timeline.events)
    assert condition_progress(clean_samples, timeline.events).startswith("1 of 2")


def test_reports_of_other_kinds_are_ignored(clean_samples: Condition) -> None:
    timeline = Timeline().declared(at(0)).lab(at(hours=1), "clean")
    timeline.report(at(hours=2), "pressure_restored", result="dirty")
    timeline.add("report_linked", at(hours=3), report_id="R9", kind="lab_result", source="lab", severity="low",
                 observed_at=at(hours=3), summary="a report whose details name another event",
                 details={"event": "sample_taken", "result": "e_coli"})  # fmt: skip
    timeline.lab(at(hours=25), "clean")
    assert condition_holds(clean_samples, timeline.events)


def test_a_condition_without_min_apart_counts_consecutive_matches() -> None:
    condition = convert({"reports": {"kind": "pressure_ok"}, "consecutive": 3}, Condition)
    timeline = Timeline().declared(at(0))
    for minute in (1, 2):
        timeline.report(at(minute), "pressure_ok")
    assert not condition_holds(condition, timeline.events)
    assert (
        condition_progress(condition, timeline.events) == "2 of 3 pressure ok reports; waiting for the next"
    )
    timeline.report(at(3), "pressure_ok")
    assert condition_holds(condition, timeline.events)


def test_condition_progress_in_plain_words(clean_samples: Condition) -> None:
    timeline = Timeline().declared(at(0))
    label = "lab result reports with result clean"
    assert condition_progress(clean_samples, timeline.events) == f"0 of 2 {label}; waiting for the next"
    timeline.lab(at(hours=1), "clean", observed_at="2026-11-22T16:15:00+08:00")
    assert condition_progress(clean_samples, timeline.events) == (
        f"1 of 2 {label}; the next at least 1d after 2026-11-22 08:15 UTC"
    )
    timeline.lab(at(hours=30), "e_coli")  # taken after the clean one: the count starts again
    assert condition_progress(clean_samples, timeline.events).startswith("0 of 2")
    timeline.lab(at(hours=31), "clean").lab(at(hours=55), "clean")
    timeline.lab(at(hours=80), "clean")  # a third in a row: still 2 of 2
    assert condition_progress(clean_samples, timeline.events) == f"2 of 2 {label}: holds"


# --- stages and exits --------------------------------------------------------------------------


def test_current_stage_is_the_last_entered_with_its_visit_number() -> None:
    timeline = Timeline().declared(at(0))
    assert current_stage(timeline.events) is None
    timeline.stage(at(0), "assess").stage(at(15), "notify", "assess").stage(at(20), "assess", "notify")
    assert current_stage(timeline.events) == ("assess", at(20), 2)
    timeline.stage(at(30), "notify", "assess")
    assert current_stage(timeline.events) == ("notify", at(30), 2)
    timeline.stage(at(40), "repair", "notify")
    assert current_stage(timeline.events) == ("repair", at(40), 1)


def test_report_exit_needs_a_matching_report_linked_after_entry(playbooks: dict[str, Playbook]) -> None:
    repair = stage_of(playbooks["water_main_break"], "repair")
    timeline = Timeline().declared(at(0)).report(at(5), "field_crew_repair_done").stage(at(60), "repair")
    assert exit_due(repair, at(60), timeline.events, at(61), {}, False) is None  # linked before entry
    timeline.report(at(70), "field_crew_on_site")
    assert exit_due(repair, at(60), timeline.events, at(71), {}, False) is None
    timeline.report(at(80), "field_crew_repair_done")
    assert exit_due(repair, at(60), timeline.events, at(81), {}, False) == repair.exit[0]


def test_report_exit_in_the_same_instant_as_entry_goes_by_seq() -> None:
    stage = convert({"id": "s", "exit": [{"report": {"kinds": ["done"]}}]}, Stage)
    # The report that led into the stage, appended in the same instant, does not lead out.
    before = Timeline().declared(at(0)).report(at(5), "done").stage(at(5), "s")
    assert exit_due(stage, at(5), before.events, at(6), {}, False) is None
    after = Timeline().declared(at(0)).stage(at(5), "s").report(at(5), "done")
    assert exit_due(stage, at(5), after.events, at(6), {}, False) == stage.exit[0]


def test_report_exit_honours_where() -> None:
    stage = convert({"id": "s", "exit": [{"report": {"kinds": ["lab_result"], "where": {"result": "clean"}}}]},
                    Stage)  # fmt: skip
    timeline = Timeline().declared(at(0)).stage(at(1), "s").lab(at(2), "e_coli")
    assert exit_due(stage, at(1), timeline.events, at(3), {}, False) is None
    timeline.lab(at(4), "clean")
    assert exit_due(stage, at(1), timeline.events, at(5), {}, False) == stage.exit[0]


def test_after_exit_holds_from_that_long_after_entry(playbooks: dict[str, Playbook]) -> None:
    assess = stage_of(playbooks["water_main_break"], "assess")  # manual, after: 15m
    timeline = Timeline().declared(at(0)).stage(at(0), "assess")
    assert exit_due(assess, at(0), timeline.events, at(14.9), {}, False) is None
    assert exit_due(assess, at(0), timeline.events, at(15), {}, False) == assess.exit[1]
    assert exit_due(assess, at(0), timeline.events, T0 + timedelta(hours=1), {}, False) == assess.exit[1]


def test_notices_exit_follows_the_callers_answer(playbooks: dict[str, Playbook]) -> None:
    notify = stage_of(playbooks["water_main_break"], "notify")
    timeline = Timeline().declared(at(0)).stage(at(15), "notify")
    assert exit_due(notify, at(15), timeline.events, at(20), {}, False) is None
    assert exit_due(notify, at(15), timeline.events, at(20), {}, True) == notify.exit[0]


def test_condition_exit_and_manual_never_holds(playbooks: dict[str, Playbook]) -> None:
    contamination = playbooks["contamination"]
    advise = stage_of(contamination, "advise")  # condition: clean_samples -> lift; manual
    conditions = contamination.conditions
    # Samples taken before the stage was entered count: the condition reads the whole timeline.
    timeline = Timeline().declared(at(0)).lab(at(1), "clean", observed_at=at(-60)).stage(at(2), "advise")
    assert exit_due(advise, at(2), timeline.events, at(days=9), conditions, True) is None
    timeline.lab(at(hours=23), "clean")
    rule = exit_due(advise, at(2), timeline.events, at(hours=23), conditions, False)
    assert rule is not None
    assert (rule.condition, rule.to) == ("clean_samples", "lift")


def test_the_first_rule_that_holds_wins(playbooks: dict[str, Playbook]) -> None:
    stage = convert({"id": "s", "exit": [{"notices": "sent", "to": "a"}, {"after": "1h", "to": "b"}]}, Stage)
    timeline = Timeline().declared(at(0)).stage(at(0), "s")
    assert exit_due(stage, at(0), timeline.events, at(hours=2), {}, True) == stage.exit[0]
    assert exit_due(stage, at(0), timeline.events, at(hours=2), {}, False) == stage.exit[1]
    assert (
        exit_due(stage_of(playbooks["water_main_break"], "close"), at(0), timeline.events, at(0), {}, True)
        is None
    )


def test_a_planned_start_must_be_a_timestamp_with_a_time_zone() -> None:
    def linked(start: object) -> TimelineEvent:
        return TimelineEvent(incident_id="INC-2026-000001", seq=2, type="report_linked", actor="x",
                             at="2026-11-22T08:00:00.000000+00:00", data={"details": {"start": start}},
                             prev_hash="", hash="")  # fmt: skip

    assert planned_start([linked("2026-11-24T09:00:00+08:00")]) == "2026-11-24T01:00:00.000000+00:00"
    assert planned_start([linked("2026-11-24T09:00:00")]) is None  # no zone: not guessed
    assert planned_start([linked("next tuesday")]) is None
    assert planned_start([linked(5)]) is None
