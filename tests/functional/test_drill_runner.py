"""`incident drill run` against the real app: reports through a real broker and the ingest
consumer, dispatcher steps through the HTTP API, deliveries through the drill carrier."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from incident.adapters.kafka import free_port
from incident.app import Prebuilt
from incident.core.clock import ManualClock
from incident.drills.runner import DrillError, DrillResult, run_drill
from incident.drills.scenario import Scenario, load_scenario, loads_scenario
from incident.keys import SETTINGS
from incident.settings import BUNDLED_DIR
from tests.support.app import AiohttpClient, Apps, Client
from tests.support.env import FAST_CALLS, Broker, Tokens

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)

#: 5048 Sycamore Ct in the sample area: about 24 households within 150 m.
LEAK = "{lon: -85.544475, lat: 38.049856}"

GAS_LEAK = f"""\
name: leak
title: Gas leak drill (test)
speed: 600
steps:
  - at: 0s
    report: {{report_id: cc-leak, kind: gas_leak, utility: gas, source: call_centre,
              location: {LEAK}, severity: high, summary: Smell of gas at Sycamore Ct}}
  - at: 10s
    take: true
  - at: 20s
    area: {{around: {{lon: -85.544475, lat: 38.049856, radius_m: 150}}}}
  - at: 30s
    notice: {{template: gas_leak, channels: [sms, push], facts: {{area: Sycamore Ct}}}}
  - at: 40s
    approve: gas_leak
  - at: 40s
    wait_for: {{deliveries_final: true, timeout: 30s}}
  - at: 1m
    report: {{report_id: resp-leak, kind: gas_leak, utility: gas, source: responder,
              location: {{lon: -85.5446, lat: 38.04982}}, severity: high,
              details: {{event: responder_on_site}}}}
  - at: 1m
    note: Responder on site.
  - at: 1m
    status: {{status: active, reason: responder on site}}
  - at: 2m
    expect:
      status: active
      notices_approved: [gas_leak]
      deliveries:
        - {{at_least: 5, states: [accepted, sent, delivered, undelivered, failed], channel: sms}}
"""


Start = Callable[..., Awaitable[Client]]


async def start_service(apps: Apps, *, playbooks: bool) -> Client:
    """The whole service: ingest consumer, fan-out, the drill carrier, and playbooks when
    asked (without them only the scenario's steps act on the incident)."""
    api = await apps.make(
        send=True, consume=True, system_clock=True, **FAST_CALLS,
        INCIDENT_PLAYBOOKS__ENABLED="true" if playbooks else "false", INCIDENT_PLAYBOOKS__POLL_S="0.2",
    )  # fmt: skip
    return api.client


@pytest.fixture
def start(apps: Apps) -> Start:
    """Starts the service on the test's store (SQLite and PostgreSQL)."""

    async def start(*, playbooks: bool = False) -> Client:
        return await start_service(apps, playbooks=playbooks)

    return start


@pytest.fixture
async def service(start: Start) -> Client:
    return await start()


async def play(
    client: Client, text: str | Scenario, token: str, lines: list[str], speed: float | None = None
) -> DrillResult:
    """Run a scenario as `incident drill run` does, against the app behind ``client``."""
    kafka = client.app[SETTINGS].kafka
    return await run_drill(
        loads_scenario(text) if isinstance(text, str) else text,
        speed=speed,
        url=str(client.make_url("")).rstrip("/"),
        token=token,
        bootstrap=kafka.bootstrap_servers,
        topic=kafka.reports_topic,
        out=lines.append,
        poll_s=0.2,
    )


def lines_with(lines: list[str], text: str) -> list[str]:
    return [line for line in lines if text in line]


async def test_a_gas_leak_drill_runs_from_report_to_deliveries(service: Client, tokens: Tokens) -> None:
    lines: list[str] = []
    result = await play(service, GAS_LEAK, tokens.by_name["alice"], lines)
    assert result.error is None, "\n".join(lines)
    assert result.ok, "\n".join(lines)

    # The report was produced with the run's suffix, and the incident it opened by rule is the run's.
    run = result.run_id
    [produced] = lines_with(lines, f"report cc-leak-{run} produced")
    assert produced.startswith("[+00:00] ")
    assert result.incident_id is not None
    [declared] = lines_with(
        lines, f"incident {result.incident_id} declared by rule (gas_leak at low or above)"
    )
    assert declared.startswith("[+00:00] ")
    assert lines_with(lines, f"report resp-leak-{run} linked to {result.incident_id}")
    assert lines_with(lines, "[+00:00] incident INC-") and lines_with(lines, "taken; owner alice")

    # What the service holds matches what the drill says it did.
    headers = tokens.header("alice")
    async with service.get(f"/api/incidents/{result.incident_id}", headers=headers) as resp:
        incident = await resp.json()
    assert incident["status"] == "active" and incident["owner"] == "alice" and incident["reports"] == 2
    assert 0 < incident["households"] < 100
    async with service.get(f"/api/incidents/{result.incident_id}/timeline", headers=headers) as resp:
        events = (await resp.json())["events"]
    linked = [e["data"]["report_id"] for e in events if e["type"] == "report_linked"]
    assert linked == [f"cc-leak-{run}", f"resp-leak-{run}"]
    assert [e["data"]["text"] for e in events if e["type"] == "note_added"] == ["Responder on site."]

    # Every delivery was handed over before the expectations were checked; the summary says so.
    assert result.deliveries["sms"] and not {"planned", "queued", "sending"} & set(result.deliveries["sms"])
    assert [n["template"] for n in result.notices] == ["gas_leak"]
    assert [e.met for e in result.expectations] == [True, True, True]
    assert lines_with(lines, f"--- drill leak (run {run}): PASSED")
    assert any(line.startswith("  expectations  3 met, 0 failed") for line in lines)


async def test_a_second_run_of_the_same_scenario_is_a_new_incident(service: Client, tokens: Tokens) -> None:
    text = GAS_LEAK.replace("  - at: 10s\n    take: true\n", "").split("  - at: 20s")[0]
    text += "  - at: 1m\n    status: cancelled\n"  # nobody owns it: a dispatcher cannot cancel it
    first: list[str] = []
    one = await play(service, text, tokens.by_name["root"], first)  # admin may cancel
    second: list[str] = []
    two = await play(service, text, tokens.by_name["root"], second)
    assert one.ok and two.ok, first + second
    assert one.run_id != two.run_id and one.incident_id != two.incident_id


async def test_a_failed_expectation_or_step_makes_the_run_fail(client: Client, tokens: Tokens) -> None:
    text = """\
name: fails
title: Fails
speed: 6000
steps:
  - at: 0s
    declare: {kind: main_break, utility: water, title: Main break on Elm St, severity: high}
  - at: 1m
    expect: {status: declared}
  - at: 2m
    expect: {status: active}
  - at: 3m
    status: closed
  - at: 4m
    note: never reached
"""
    lines: list[str] = []
    result = await play(client, text, tokens.by_name["alice"], lines)
    assert not result.ok
    assert [(e.text, e.met, e.found) for e in result.expectations] == [
        ("status is declared", True, "declared"),
        ("status is active", False, "declared"),
    ]
    assert result.error is not None
    assert result.error.startswith("step at 3m (status): POST /api/incidents/")
    assert "409 illegal_transition" in result.error
    assert not lines_with(lines, "never reached")
    assert result.incident is not None and result.incident["drill"] is True  # declared as a drill
    assert lines_with(lines, "expect status is active: FAILED (found declared)")
    assert lines_with(lines, "    FAILED: status is active (found declared)")


async def test_a_wrong_token_a_reviewer_or_no_service_stop_before_anything_happens(
    client: Client, tokens: Tokens
) -> None:
    lines: list[str] = []
    with pytest.raises(DrillError, match=r"does not know this token \(401\).*INCIDENT_TOKEN"):
        await play(client, GAS_LEAK, "not-a-token", lines)
    with pytest.raises(DrillError, match="the token of rita has the role reviewer"):
        await play(client, GAS_LEAK, tokens.by_name["rita"], lines)
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(DrillError, match=f"no incident service answers at {nobody}.*make run"):
        await run_drill(loads_scenario(GAS_LEAK), url=nobody, token="x", bootstrap=None, out=lines.append)
    assert lines == []


async def test_a_stage_step_moves_the_playbook_on(start: Start, tokens: Tokens) -> None:
    """The playbook engine runs; the dispatcher moves it on by hand (POST .../stage)."""
    client = await start(playbooks=True)
    text = """\
name: stages
title: Stages
speed: 6000
steps:
  - at: 0s
    declare: {kind: main_break, utility: water, title: Main break on P-500, severity: high,
              playbook: water_main_break}
  - at: 0s
    wait_for: {stage: assess, timeout: 20s}
  - at: 1m
    area: {isolate: {pipe: P-500}}
  - at: 2m
    stage: notify
  - at: 2m
    wait_for: {stage: notify, timeout: 20s}
  - at: 3m
    expect: {stage: notify, status: active, stages_entered: [assess, notify]}
"""
    lines: list[str] = []
    result = await play(client, text, tokens.by_name["alice"], lines)
    assert result.ok, "\n".join(lines)
    assert result.stages[:2] == ["assess", "notify"]
    assert lines_with(lines, "stage notify entered by hand")
    # What the playbook did by itself is shown, by whom.
    assert lines_with(lines, "system:playbook: stage assess entered (Assess and isolate)")


DRILLS = BUNDLED_DIR / "drills"


@pytest.mark.parametrize("name", ["gas_leak", "main_break", "contamination"])
async def test_every_shipped_drill_passes_against_the_service_with_its_playbooks(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    tokens: Tokens,
    broker: Broker,
    clock: ManualClock,
    sample_area: Prebuilt,
    name: str,
) -> None:
    """The shipped scenarios as a trainer runs them, days of scenario time in seconds (on
    SQLite only: the stores are compared elsewhere)."""
    apps = Apps(aiohttp_client, f"sqlite:///{tmp_path / 'drill.db'}", tokens, broker, clock)
    client = await start_service(apps, playbooks=True)
    scenario = await asyncio.to_thread(load_scenario, DRILLS / f"{name}.yaml")
    lines: list[str] = []
    result = await play(client, scenario, tokens.by_name["alice"], lines, speed=200_000)
    assert result.ok, "\n".join(lines)
    assert result.incident is not None and result.incident["status"] == "closed"
    assert lines_with(lines, "system:playbook: stage ")  # what the playbook did is shown
