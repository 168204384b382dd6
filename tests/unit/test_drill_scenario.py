"""Drill scenario files: the shipped ones load, problems name file and line, offsets,
and reports made new for every run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from incident.cli import main
from incident.deliveries.states import DeliveryState
from incident.drills.scenario import (
    DeliveryCount,
    ScenarioError,
    find_scenario,
    format_offset,
    load_scenario,
    loads_scenario,
    parse_offset,
    report_message,
    run_report_id,
    shipped_scenarios,
)
from incident.households.model import Channel
from incident.reports.model import parse_report
from incident.settings import BUNDLED_DIR

ROOT = Path(__file__).resolve().parents[2]
DRILLS = BUNDLED_DIR / "drills"

GOOD = """\
name: small
title: Small
speed: 60
steps:
  - at: 0s
    report:
      report_id: cc-1
      kind: gas_leak
      utility: gas
      source: call_centre
      location: {lon: -85.5445, lat: 38.0499}
      severity: high
  - at: 2m
    declare: {report: cc-1}
  - at: 1h30m
    expect: {status: active}
"""


def problems_of(text: str, file: str = "drills/small.yaml") -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        loads_scenario(text, file)
    return list(caught.value.problems)


@pytest.mark.parametrize("path", shipped_scenarios(DRILLS), ids=lambda p: p.stem)
def test_every_shipped_scenario_loads_and_its_reports_are_valid(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.title and scenario.description and scenario.speed > 1
    actions = {s.action for s in scenario.steps}
    assert {"report", "approve", "wait_for", "expect"} <= actions
    start = datetime(2026, 11, 22, 8, 15, tzinfo=UTC)
    for step in scenario.steps:
        if step.report is not None:
            message = report_message(step.report, "r000001", start + step.offset)
            report = parse_report(msgspec.json.encode(message), 65_536)  # what the service takes
            assert report.report_id == f"{step.report.report_id}-r000001"


def test_the_three_drills_are_shipped_and_listed() -> None:
    assert {p.stem for p in shipped_scenarios(DRILLS)} >= {"main_break", "contamination", "gas_leak"}
    result = CliRunner().invoke(main, ["drill", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "02:46" in lines["main_break"] and "60x" in lines["main_break"]
    assert "48:15" in lines["contamination"]  # two scenario days, at speed


def test_a_small_scenario_reads_into_steps() -> None:
    scenario = loads_scenario(GOOD, "drills/small.yaml")
    assert [s.action for s in scenario.steps] == ["report", "declare", "expect"]
    assert [s.offset for s in scenario.steps] == [timedelta(0), timedelta(minutes=2), timedelta(minutes=90)]
    assert scenario.duration == timedelta(minutes=90)
    assert scenario.report_ids == ("cc-1",)


def test_problems_name_the_file_and_the_line_of_every_broken_step() -> None:
    text = GOOD.replace("      severity: high\n", "      severity: hihg\n").replace(
        "    expect: {status: active}", "    expect: {status: active}\n    note: two actions"
    )
    found = problems_of(text)
    assert found == [
        "drills/small.yaml:12: steps[0].report.severity: unknown severity 'hihg' (known: low, medium, "
        "high, critical)",
        "drills/small.yaml:15: steps[2]: a step needs exactly one of report, declare, confirm, take, "
        "link, area, describe, notice, approve, stage, status, note, say, wait_for, expect (got note, expect)",
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "  - at: 2m\n",
            "  - at: 2 minutes\n",
            "drills/small.yaml:13: steps[1].at: invalid duration '2 minutes'",
        ),
        ("  - at: 2m\n", "  - at: 5\n", "drills/small.yaml:13: steps[1].at: invalid offset 5"),
        ("  - at: 1h30m\n", "  - at: 1m\n", "drills/small.yaml:15: steps[2].at: 1m is before the step above"),
        (
            "{report: cc-1}",
            "{report: cc-9}",
            "drills/small.yaml:14: steps[1].declare.report: no report 'cc-9'",
        ),
        ("{report: cc-1}", "{report: cc-1, kind: main_break}", "drills/small.yaml:14: steps[1].declare: "),
        ("    declare:", "    declar:", "drills/small.yaml:14: steps[1].declar: unknown key 'declar'"),
        ("name: small", "name: other", "drills/small.yaml:1: name: 'other' must equal the file name 'small'"),
        ("speed: 60", "speed: 0", "drills/small.yaml:3: speed: Expected `float` > 0.0"),
        (
            "{status: active}",
            "{status: activ}",
            "drills/small.yaml:16: steps[2].expect.status: unknown status",
        ),
        ("{status: active}", "{}", "drills/small.yaml:16: steps[2].expect: expect needs at least one of"),
        (
            "      kind: gas_leak\n",
            "      kind: gas_leek\n",
            "drills/small.yaml:8: steps[0].report.kind: unknown kind",
        ),
        (
            "    declare: {report: cc-1}",
            "    approve: gas_leek",
            "steps[1].approve: 'gas_leek' is not 'latest'",
        ),
        ("steps:", "steps: [\n", "drills/small.yaml:"),  # broken YAML
    ],
)
def test_a_bad_file_names_its_line(old: str, new: str, expected: str) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    found = problems_of(text)
    assert any(expected in p for p in found), found


def test_report_ids_must_be_unique_and_a_scenario_runs_one_incident() -> None:
    text = GOOD + "  - at: 2h\n    report: {report_id: cc-1, kind: gas_leak, utility: gas, source: x,\n" \
        "             severity: low, asset: {type: pipe, id: P-1}}\n" \
        "  - at: 3h\n    declare: {kind: gas_leak, utility: gas, title: T, severity: low}\n"  # fmt: skip
    found = problems_of(text)
    assert any(":18: steps[3].report.report_id: report id 'cc-1' used twice" in p for p in found), found
    assert any(":21: steps[4].declare: a scenario runs one incident" in p for p in found), found


def test_a_report_needs_a_place_and_wait_for_one_condition() -> None:
    found = problems_of(GOOD.replace("      location: {lon: -85.5445, lat: 38.0499}\n", ""))
    assert found == ["drills/small.yaml:6: steps[0].report: a report needs a location, an asset or both"]
    found = problems_of(GOOD.replace("{status: active}", "{status: active}\n  - at: 2h\n    wait_for: {}"))
    assert "wait_for needs exactly one of stage, status, deliveries_final" in found[0]
    found = problems_of(
        GOOD + "  - at: 2h\n    wait_for: {stage: repair, timeout: soon}\n"
        "  - at: 2h\n    wait_for: {stage: repair, channels: [sms]}\n"
    )
    assert found[0].startswith("drills/small.yaml:18: steps[3].wait_for.timeout: invalid duration 'soon'")
    assert found[1].startswith("drills/small.yaml:20: steps[4].wait_for.channels: only with deliveries_final")


def test_offsets_and_their_display() -> None:
    assert parse_offset("0s") == parse_offset("0") == parse_offset(0) == timedelta(0)
    assert parse_offset("90s") == timedelta(seconds=90)
    assert parse_offset("5m") == timedelta(minutes=5)
    assert parse_offset("2h") == timedelta(hours=2)
    assert parse_offset("1d12h") == timedelta(days=1, hours=12)
    for bad in ("", "5", "-5m", "5 m", "1h1d", 7):
        with pytest.raises(ValueError, match="invalid"):
            parse_offset(bad)  # type: ignore[arg-type]
    assert format_offset(timedelta(0)) == "+00:00"
    assert format_offset(timedelta(minutes=5, seconds=59)) == "+00:05"
    assert format_offset(timedelta(days=2, minutes=15)) == "+48:15"


def test_report_ids_are_made_unique_per_run() -> None:
    step = loads_scenario(GOOD).steps[0]
    assert step.report is not None
    at = datetime(2026, 11, 22, 8, 15, tzinfo=UTC)
    first, second = report_message(step.report, "r1a2b3c", at), report_message(step.report, "r9f8e7d", at)
    assert first["report_id"] == run_report_id("cc-1", "r1a2b3c") == "cc-1-r1a2b3c"
    assert second["report_id"] == "cc-1-r9f8e7d"
    assert first["observed_at"] == "2026-11-22T08:15:00+00:00"  # scenario time when not given
    assert first["details"] == {"drill": True, "drill_run": "r1a2b3c"}
    assert step.report.details == {}  # the scenario itself is unchanged


def test_a_given_observed_at_is_kept() -> None:
    text = GOOD.replace(
        "      severity: high\n", "      severity: high\n      observed_at: 2026-11-22T08:15:00+08:00\n"
    )
    step = loads_scenario(text).steps[0]
    assert step.report is not None
    message = report_message(step.report, "r1", datetime(2030, 1, 1, tzinfo=UTC))
    assert message["observed_at"] == "2026-11-22T08:15:00+08:00"
    assert problems_of(text.replace("08:15:00+08:00", "08:15:00"))[0].startswith(
        "drills/small.yaml:13: steps[0].report.observed_at: Expected `datetime` with a timezone"
    )


def test_declare_is_always_a_drill() -> None:
    text = GOOD.replace("{report: cc-1}", "{kind: main_break, utility: water, title: Elm St, severity: high}")
    step = loads_scenario(text).steps[1]
    assert step.declare is not None
    assert step.declare.body() == {
        "kind": "main_break", "utility": "water", "title": "Elm St", "severity": "high", "drill": True
    }  # fmt: skip
    assert "drill" in problems_of(text.replace("severity: high}", "severity: high, drill: false}"))[0]


def test_delivery_counts_add_up_the_states_asked_for() -> None:
    want = DeliveryCount(at_least=3, states=(DeliveryState.sent, DeliveryState.delivered))
    counts = {"sms": {"delivered": 2, "failed": 5}, "push": {"sent": 1}}
    assert want.count(counts) == 3
    on_sms = DeliveryCount(
        at_least=3, states=(DeliveryState.delivered, DeliveryState.sent), channel=Channel.sms
    )
    assert on_sms.count(counts) == 2


def test_a_scenario_is_found_by_name_or_path(tmp_path: Path) -> None:
    assert find_scenario("gas_leak", [tmp_path, DRILLS]) == DRILLS / "gas_leak.yaml"
    mine = tmp_path / "mine.yaml"
    mine.write_text(GOOD.replace("name: small", "name: mine"))
    assert find_scenario(str(mine), [DRILLS]) == mine
    assert load_scenario(mine).name == "mine"
    with pytest.raises(ScenarioError, match="unknown scenario 'gas_leek': give a file or one of: "):
        find_scenario("gas_leek", [DRILLS])
    with pytest.raises(ScenarioError, match="no such file"):
        find_scenario(str(tmp_path / "missing.yaml"), [DRILLS])


def test_the_cli_names_an_unknown_scenario_and_a_missing_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INCIDENT_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["drill", "run", "gas_leek", "--token", "x"])
    assert result.exit_code == 1
    assert "unknown scenario 'gas_leek'" in result.output
    result = CliRunner().invoke(main, ["drill", "run", str(DRILLS / "gas_leak.yaml")])
    assert result.exit_code == 1
    assert "no token: pass --token or set INCIDENT_TOKEN" in result.output
