from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from incident.cli import main
from incident.core.domain import Kind, Utility
from incident.core.errors import ConfigError, IncidentError, PlaybookError
from incident.notices.context import Advisory, TemplateKey
from incident.playbook import (
    Approval,
    AreaMethod,
    ComputeArea,
    MilestoneEvent,
    OnCall,
    Page,
    PlanNotice,
    Playbook,
    SetAdvisory,
    TimerSchedule,
    convert,
    load_oncall,
    load_playbook,
    load_playbooks,
    loads_playbook,
    select_playbook,
    to_data,
)
from incident.settings import BUNDLED_DIR

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = BUNDLED_DIR / "playbooks"
ONCALL = BUNDLED_DIR / "oncall.toml"

GOOD = """\
name: sample
title: Sample
match:
  kinds: [main_break]
  utilities: [water]
stages:
  - id: assess
    status: active
    on_enter:
      - do: page
        rota: water_on_call
        text: "Break {incident_id}"
    exit:
      - manual: true
  - id: notify
    on_enter:
      - do: plan_notice
        template: main_break
        channels: [sms, voice]
    exit:
      - notices: sent
  - id: close
    status: closed
slas:
  - id: first_notice
    title: First notice
    stop: first_notice_sent
    within: 30m
    escalate: [command]
"""


@pytest.fixture(scope="module")
def oncall() -> OnCall:
    return load_oncall(ONCALL)


@pytest.fixture(scope="module")
def defaults(oncall: OnCall) -> dict[str, Playbook]:
    return load_playbooks(PLAYBOOKS, oncall=oncall)


def problems_of(text: str, file: str = "sample.yaml", oncall: OnCall | None = None) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        loads_playbook(text, file, oncall=oncall)
    return list(caught.value.problems)


def test_playbook_error_is_a_config_error() -> None:
    err = PlaybookError(["a.yaml:1: x", "a.yaml:2: y"])
    assert isinstance(err, ConfigError)
    assert isinstance(err, IncidentError)
    assert err.code == "playbook_invalid"
    assert err.message == "a.yaml:1: x\na.yaml:2: y"


# --- the default playbooks ------------------------------------------------------------------


def test_every_default_playbook_loads_and_pages_known_rotas(defaults: dict[str, Playbook]) -> None:
    files = sorted(p.stem for p in PLAYBOOKS.glob("*.yaml"))
    assert sorted(defaults) == files
    assert set(files) >= {
        "water_main_break", "planned_outage_water", "planned_outage_gas", "contamination",
        "low_pressure", "gas_leak", "heat_outage",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "utility", "expected"),
    [
        (Kind.main_break, Utility.water, "water_main_break"),
        (Kind.unplanned_outage, Utility.water, "water_main_break"),
        (Kind.planned_outage, Utility.water, "planned_outage_water"),
        (Kind.planned_outage, Utility.gas, "planned_outage_gas"),
        (Kind.contamination, Utility.water, "contamination"),
        (Kind.low_pressure, Utility.water, "low_pressure"),
        (Kind.gas_leak, Utility.gas, "gas_leak"),
        (Kind.heat_outage, Utility.heat, "heat_outage"),
        (Kind.main_break, Utility.heat, "heat_outage"),
        (Kind.gas_leak, Utility.water, None),
    ],
)
def test_default_selection(
    defaults: dict[str, Playbook], kind: Kind, utility: Utility, expected: str
) -> None:
    chosen = select_playbook(defaults.values(), kind, utility)
    assert (chosen.name if chosen else None) == expected


def test_water_main_break_follows_the_design(defaults: dict[str, Playbook]) -> None:
    book = defaults["water_main_break"]
    assert [s.id for s in book.stages] == ["assess", "notify", "repair", "restore", "follow_up", "close"]
    area = book.stages[0].on_enter[0]
    assert isinstance(area, ComputeArea) and area.method is AreaMethod.isolation
    notice = book.stages[1].on_enter[0]
    assert isinstance(notice, PlanNotice) and notice.approval is Approval.required
    (etr,) = book.stages[2].timers
    assert etr.schedule is TimerSchedule.every and etr.delay == timedelta(hours=2)
    assert isinstance(etr.action, PlanNotice) and etr.action.template is TemplateKey.etr_update
    restored = book.stages[3].on_enter[0]
    assert isinstance(restored, PlanNotice) and restored.template is TemplateKey.restored
    slas = {s.id: s for s in book.slas}
    assert slas["first_notice"].within == timedelta(minutes=30)
    follow_up = slas["follow_up"]
    assert str(follow_up.start) == "stage:restore"
    assert (follow_up.stop.event, follow_up.stop.arg) == (MilestoneEvent.notice_sent, "follow_up")
    assert follow_up.within == timedelta(hours=24)
    (timer,) = book.stages[4].timers
    assert isinstance(timer.action, PlanNotice) and timer.action.template is TemplateKey.follow_up
    assert timer.delay < follow_up.within  # the follow-up goes out in time on its own


def test_contamination_notice_needs_no_approval_and_lifts_on_two_clean_samples(
    defaults: dict[str, Playbook],
) -> None:
    book = defaults["contamination"]
    assert book.advisory is Advisory.boil_water
    first = book.stages[0]
    notices = [a for a in first.on_enter if isinstance(a, PlanNotice)]
    assert [(n.template, n.approval) for n in notices] == [(TemplateKey.boil_water, Approval.auto)]
    assert any(isinstance(a, SetAdvisory) for a in first.on_enter)
    rule = book.conditions["clean_samples"]
    assert (rule.reports.kind, rule.reports.where) == ("lab_result", {"result": "clean"})
    assert (rule.consecutive, rule.min_apart) == (2, timedelta(hours=24))
    lifting = [r for s in book.stages for r in s.exit if r.condition == "clean_samples"]
    assert lifting and all(r.to == "lift" for r in lifting)
    lift = next(s for s in book.stages if s.id == "lift")
    assert any(isinstance(a, PlanNotice) and a.template is TemplateKey.advisory_lifted for a in lift.on_enter)


def test_gas_leak_pages_the_rota_and_escalates_a_late_responder(defaults: dict[str, Playbook]) -> None:
    book = defaults["gas_leak"]
    actions = book.stages[0].on_enter
    assert any(isinstance(a, Page) and a.rota == "gas_on_call" for a in actions)
    assert any(isinstance(a, ComputeArea) and a.method is AreaMethod.around and a.radius_m for a in actions)
    sla = next(s for s in book.slas if s.id == "responder_on_site")
    assert sla.within == timedelta(minutes=30)
    assert sla.escalate
    assert str(sla.stop) == "stage:make_safe"


@pytest.mark.parametrize("name", ["planned_outage_water", "planned_outage_gas"])
def test_planned_outages_notify_48_and_24_hours_ahead(defaults: dict[str, Playbook], name: str) -> None:
    book = defaults[name]
    ahead = sorted(
        (t.delay for t in book.stages[0].timers if t.schedule is TimerSchedule.at_before_start), reverse=True
    )
    assert ahead[:2] == [timedelta(hours=48), timedelta(hours=24)]
    assert len(ahead) == 3  # and a reminder
    sla = next(s for s in book.slas if s.id == "advance_notice")
    assert sla.before_start is not None and sla.before_start >= timedelta(hours=48)


# --- problems, with their lines --------------------------------------------------------------


def test_a_good_file_loads() -> None:
    book = loads_playbook(GOOD, "sample.yaml")
    assert book.name == "sample"
    assert [s.id for s in book.stages] == ["assess", "notify", "close"]


def test_unknown_template_names_its_line() -> None:
    text = GOOD.replace("template: main_break", "template: main_brake")
    (problem,) = problems_of(text)
    assert problem.startswith(
        "sample.yaml:18: stages[1].on_enter[0].template: unknown template 'main_brake' (known: main_break,"
    )


def test_bad_duration_names_its_line() -> None:
    (problem,) = problems_of(GOOD.replace("within: 30m", "within: 30 minutes"))
    assert problem.startswith("sample.yaml:28: slas[0].within: invalid duration '30 minutes'")


def test_duplicate_stage_id_names_both_lines() -> None:
    (problem,) = problems_of(GOOD.replace("id: close", "id: assess"))
    assert problem == "sample.yaml:22: stages[2].id: duplicate stage id 'assess' (first at line 7)"


def test_unknown_to_stage() -> None:
    text = GOOD.replace("      - manual: true\n", "      - manual: true\n        to: repair\n")
    (problem,) = problems_of(text)
    assert (
        problem
        == "sample.yaml:15: stages[0].exit[0].to: unknown stage 'repair' (stages: assess, notify, close)"
    )


def test_yaml_syntax_error_names_its_line() -> None:
    (problem,) = problems_of(GOOD.replace("channels: [sms, voice]", "channels: [sms, voice"))
    assert problem.startswith("sample.yaml:")
    assert "YAML:" in problem and "flow sequence (from line 19)" in problem


def test_bad_indentation_is_a_yaml_error() -> None:
    (problem,) = problems_of(GOOD.replace("    status: active", "   status: active"))
    assert problem.startswith("sample.yaml:8: YAML:")


def test_unknown_key_names_the_key_and_its_line() -> None:
    (problem,) = problems_of(GOOD.replace("    status: closed", "    status: closed\n    colour: red"))
    assert problem == "sample.yaml:24: stages[2].colour: unknown key 'colour'"


def test_unknown_key_in_a_timer_is_placed_on_the_timer() -> None:
    text = GOOD.replace(
        "    status: closed",
        "    status: closed\n    timers:\n      - id: t\n        every: 1h\n        do: note\n        txt: x",
    )
    problems = problems_of(text)
    assert problems == ["sample.yaml:28: stages[2].timers[0].txt: unknown key 'txt'"]


def test_every_problem_of_a_file_is_reported_in_line_order() -> None:
    text = (
        GOOD.replace("utilities: [water]", "utilities: [water, fire]")
        .replace("template: main_break", "template: main_brake")
        .replace("channels: [sms, voice]", "channels: [sms, fax]")
        .replace("within: 30m", "within: soon")
        .replace("- do: page", "- do: pager")
    )
    problems = problems_of(text)
    assert [p.split(": ")[0] for p in problems] == [
        "sample.yaml:5",
        "sample.yaml:10",
        "sample.yaml:18",
        "sample.yaml:28",
    ]
    assert "unknown utility 'fire'" in problems[0]
    assert "stages[0].on_enter[0].do: unknown action 'pager'" in problems[1]
    # One problem per part: the notice's bad template is found, its channel with the next run.
    assert "unknown template 'main_brake'" in problems[2]
    assert "slas[0].within" in problems[3]


def test_cross_checks_collect_every_problem(oncall: OnCall) -> None:
    text = (
        GOOD.replace("name: sample", "name: other")
        .replace("rota: water_on_call", "rota: plumbers")
        .replace("escalate: [command]", "escalate: [command, nobody]\n  - id: first_notice\n"
                 "    title: Again\n    start: stage:nope\n    stop: declared\n    within: 1h")
    )  # fmt: skip
    problems = problems_of(text, oncall=oncall)
    assert problems == [
        "sample.yaml:1: name: 'other' must equal the file name 'sample'",
        "sample.yaml:11: stages[0].on_enter[0].rota: unknown rota 'plumbers' (on-call file has: "
        "command, customer_care, gas_on_call, heat_on_call, water_on_call, water_quality)",
        "sample.yaml:29: slas[0].escalate[1]: unknown rota 'nobody' (on-call file has: "
        "command, customer_care, gas_on_call, heat_on_call, water_on_call, water_quality)",
        "sample.yaml:30: slas[1].id: duplicate SLA id 'first_notice' (first at line 25)",
        "sample.yaml:32: slas[1].start: unknown stage 'nope' (stages: assess, notify, close)",
    ]


def test_rotas_are_not_checked_without_an_oncall_file() -> None:
    assert loads_playbook(GOOD.replace("rota: water_on_call", "rota: plumbers"), "sample.yaml")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("title: Sample\n", "title: Sample\ntitle: Again\n", "sample.yaml:3: title: key 'title' given twice (first at line 2)"),
        ("      - notices: sent", "      - condition: clean", "sample.yaml:21: stages[1].exit[0].condition: unknown condition 'clean'"),
        ("    on_enter:\n      - do: plan_notice\n        template: main_break\n        channels: [sms, voice]\n", "",
         "sample.yaml:17: stages[1].exit[0].notices: `notices: sent` in a stage whose on_enter plans no notice"),
        ("  - id: close\n    status: closed\n", "", "sample.yaml:21: stages[1].exit[0]: the last stage has no next stage"),
        ("    status: active", "    status: closed", "sample.yaml:8: stages[0].status: status closed cannot follow declared"),
        ("    status: closed", "    status: declared", "sample.yaml:23: stages[2].status: status declared cannot follow active"),
        ("        rota: water_on_call", "        rota: Water", "sample.yaml:11: stages[0].on_enter[0].rota: must be a name"),
        ("    exit:\n      - manual: true\n", "    exit:\n      - manual: false\n", "sample.yaml:14: stages[0].exit[0].manual: must be true"),
        ("      - manual: true", "      - manual: true\n        after: 1h", "sample.yaml:14: stages[0].exit[0]: an exit rule needs exactly one of"),
        ('text: "Break {incident_id}"', 'text: "Break {incident}"', "sample.yaml:12: stages[0].on_enter[0].text: unknown placeholder {incident}"),
        ("stages:\n", "yes: 1\nstages:\n", "sample.yaml:6: key True is not text (put it in quotes)"),
        ("name: sample\n", "name: !!python/name:os.system sample\n", "sample.yaml:1: name: YAML: could not determine a constructor"),
    ],
)  # fmt: skip
def test_problems_found(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    problems = problems_of(GOOD.replace(old, new))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "sample.yaml:1: the file is empty"),
        ("# only a comment\n", "sample.yaml:1: the file is empty"),
        (
            "- a\n- b\n",
            "sample.yaml:1: a playbook file must be a mapping of keys (name:, title:, stages:, ...)",
        ),
        (
            "name: sample\ntitle: S\nstages: []\n",
            "sample.yaml:3: stages: a playbook needs at least one stage",
        ),
        ("name: sample\nstages: [{id: a}]\n", "sample.yaml:1: missing key 'title'"),
    ],
)
def test_files_that_are_not_playbooks(text: str, expected: str) -> None:
    assert problems_of(text) == [expected]


def test_anchors_can_be_shared_under_x_keys() -> None:
    text = GOOD.replace(
        "stages:\n", "x-notice: &notice\n  do: plan_notice\n  channels: [sms]\nstages:\n"
    ).replace(
        "      - do: plan_notice\n        template: main_break\n        channels: [sms, voice]\n",
        "      - <<: *notice\n        template: main_break\n",
    )
    notice = loads_playbook(text, "sample.yaml").stages[1].on_enter[0]
    assert isinstance(notice, PlanNotice) and notice.template is TemplateKey.main_break


# --- files and directories -------------------------------------------------------------------


def test_a_directory_reports_the_problems_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "sample.yaml").write_text(GOOD)
    (tmp_path / "broken.yaml").write_text(GOOD.replace("name: sample", "name: broken").replace("30m", "30"))
    (tmp_path / "wrong.yaml").write_text(GOOD)  # named sample inside
    (tmp_path / "notes.txt").write_text("not a playbook")
    with pytest.raises(PlaybookError) as caught:
        load_playbooks(tmp_path)
    assert caught.value.problems == (
        f"{tmp_path / 'broken.yaml'}:28: slas[0].within: Expected a duration like 30m or 2h, got `int`",
        f"{tmp_path / 'wrong.yaml'}:1: name: 'sample' must equal the file name 'wrong'",
    )
    (tmp_path / "broken.yaml").unlink()
    (tmp_path / "wrong.yaml").unlink()
    assert list(load_playbooks(tmp_path)) == ["sample"]
    assert load_playbook(tmp_path / "sample.yaml").name == "sample"


def test_missing_and_empty_places(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="no playbook files"):
        load_playbooks(tmp_path)
    with pytest.raises(PlaybookError, match="no such file or directory"):
        load_playbooks(tmp_path / "nowhere")
    with pytest.raises(PlaybookError, match="no such file"):
        load_playbook(tmp_path / "nowhere.yaml")


def test_oncall_file_problems_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "oncall.toml"
    path.write_text('[rotas.crew]\ntitle = "Crew"\npeople = [{ name = "A", phone = "555-0101" }]\n')
    with pytest.raises(
        ConfigError, match=r"oncall.toml: rotas.crew.people\[0\].phone: Expected `str` matching"
    ):
        load_oncall(path)
    path.write_text("[rotas.crew\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_oncall(path)


def test_sample_oncall_numbers_are_fictional(oncall: OnCall) -> None:
    numbers = [p.phone for rota in oncall.rotas.values() for p in rota.people]
    assert numbers and all(n[5:9] == "5550" and n[9] == "1" for n in numbers)  # +1 NPA 555-01XX
    assert "+1" not in repr(oncall)  # numbers stay out of logs


# --- the command ----------------------------------------------------------------------------


def test_check_command_accepts_the_defaults() -> None:
    result = CliRunner().invoke(main, ["playbooks", "check", str(PLAYBOOKS), "--oncall", str(ONCALL)])
    assert result.exit_code == 0, result.output
    assert result.output == f"ok: {len(list(PLAYBOOKS.glob('*.yaml')))} playbooks\n"


def test_check_command_lists_problems_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "sample.yaml").write_text(GOOD.replace("template: main_break", "template: main_brake"))
    result = CliRunner().invoke(main, ["playbooks", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"{tmp_path / 'sample.yaml'}:18: stages[1].on_enter[0].template: unknown")
    assert "ok:" not in result.output


def test_check_command_checks_rotas_against_the_oncall_file(tmp_path: Path) -> None:
    (tmp_path / "sample.yaml").write_text(GOOD.replace("rota: water_on_call", "rota: plumbers"))
    runner = CliRunner()
    assert runner.invoke(main, ["playbooks", "check", str(tmp_path)]).exit_code == 0
    result = runner.invoke(main, ["playbooks", "check", str(tmp_path), "--oncall", str(ONCALL)])
    assert result.exit_code == 1
    assert "sample.yaml:11: stages[0].on_enter[0].rota: unknown rota 'plumbers'" in result.output
    result = runner.invoke(
        main, ["playbooks", "check", str(tmp_path), "--oncall", str(tmp_path / "none.toml")]
    )
    assert result.exit_code == 1
    assert "no such on-call file" in result.output


def test_playbooks_turn_back_into_file_data(defaults: dict[str, Playbook]) -> None:
    for book in defaults.values():
        data = to_data(book)
        assert convert(data, Playbook) == book
    timer = to_data(defaults["water_main_break"].stages[2].timers[0])
    assert timer == {"id": "etr_update", "every": "2h", "do": "plan_notice", "template": "etr_update",
                     "channels": ["sms", "push"]}  # fmt: skip
