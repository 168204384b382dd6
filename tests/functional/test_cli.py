"""The `incident` command as a user runs it: real processes, real signals."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from incident.settings import BUNDLED_DIR
from tests.support.processes import INCIDENT, Server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")},
        "INCIDENT_STORE__URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "INCIDENT_AUTH__TOKENS_FILE": str(tmp_path / "tokens.toml"),
        "INCIDENT_HTTP__PORT": "0",
        # The embedded broker, on a free port so test runs never collide.
        "INCIDENT_KAFKA__EMBEDDED_LISTENER": "127.0.0.1:0",
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INCIDENT, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def start(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], Server]]:
    servers: list[Server] = []

    def _start() -> Server:
        server = Server(env, tmp_path / f"serve-{len(servers)}.log")
        servers.append(server)
        return server

    yield _start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


DECLARE = {"kind": "gas_leak", "utility": "gas", "title": "Gas smell", "severity": "critical"}


def test_help_describes_every_command(env: dict[str, str]) -> None:
    top = run(["--help"], env)
    assert top.returncode == 0
    for command in ("serve", "tokens", "timeline", "config"):
        assert command in top.stdout
        assert run([command, "--help"], env).returncode == 0
    assert "--role" in run(["tokens", "add", "--help"], env).stdout


def test_serve_works_and_stops_cleanly_on_sigterm(start: Callable[[], Server]) -> None:
    server = start()
    assert server.request("GET", "/healthz") == (
        200,
        {"status": "ok", "checks": {"store": "ok", "broker": "ok", "ingest": "ok", "fanout": "ok"}},
    )
    code, log = server.stop(signal.SIGTERM)
    assert code == 0
    assert "Traceback" not in log and "stopped" in log


def test_state_survives_a_restart_of_the_service(start: Callable[[], Server], env: dict[str, str]) -> None:
    token = run(["tokens", "add", "alice", "--role", "dispatcher"], env).stdout.strip()
    first = start()
    status, inc = first.request("POST", "/api/incidents", token, DECLARE)
    assert status == 201
    deadline = time.monotonic() + 20
    while (
        first.request("GET", f"/api/incidents/{inc['id']}", token)[1]["stage"] is None
    ):  # its playbook starts
        assert time.monotonic() < deadline, "the playbook never started"
        time.sleep(0.2)
    _, before = first.request("GET", f"/api/incidents/{inc['id']}/timeline", token)
    assert first.stop(signal.SIGINT)[0] == 0
    second = start()
    status, after = second.request("GET", f"/api/incidents/{inc['id']}/timeline", token)
    assert status == 200 and after["integrity"]["ok"]
    # Everything the first instance recorded is there, in order (the second may add more).
    assert after["events"][: len(before["events"])] == before["events"]
    assert after["incident"]["stage"] == before["incident"]["stage"] is not None
    assert after["incident"]["title"] == inc["title"]
    assert second.stop()[0] == 0


def test_live_clients_are_closed_at_shutdown(start: Callable[[], Server], env: dict[str, str]) -> None:
    token = run(["tokens", "add", "carol", "--role", "command"], env).stdout.strip()
    server = start()

    async def watch() -> int | None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.url + "/api/live", headers={"Authorization": f"Bearer {token}"}) as ws,
        ):
            await ws.receive_json(timeout=5)
            server.proc.send_signal(signal.SIGTERM)
            msg = await ws.receive(timeout=10)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
            return ws.close_code

    assert asyncio.run(watch()) == aiohttp.WSCloseCode.GOING_AWAY
    code, log = server.stop()
    assert code == 0 and "Traceback" not in log


def test_timeline_verify_reports_ok_and_tampering(
    start: Callable[[], Server], env: dict[str, str], tmp_path: Path
) -> None:
    token = run(["tokens", "add", "alice", "--role", "dispatcher"], env).stdout.strip()
    server = start()
    _, inc = server.request("POST", "/api/incidents", token, DECLARE)
    server.request("POST", f"/api/incidents/{inc['id']}/notes", token, {"text": "crew on site"})
    server.stop()
    incident_id = inc["id"]
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    # The playbook may have added its own events by the time the service stopped.
    [(count,)] = conn.execute("SELECT count(*) FROM timeline_events WHERE incident_id = ?", (incident_id,))
    [(note,)] = conn.execute("SELECT seq FROM timeline_events WHERE type = 'note_added' AND actor = 'alice'")
    conn.close()
    ok = run(["timeline", "verify", incident_id], env)
    assert ok.returncode == 0 and f"{incident_id}: OK, {count} events" in ok.stdout

    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("DROP TRIGGER timeline_events_no_update")
    conn.execute('UPDATE timeline_events SET data = \'{"text":"nobody came"}\' WHERE seq = ?', (note,))
    conn.commit()
    conn.close()
    broken = run(["timeline", "verify", incident_id], env)
    assert broken.returncode == 1
    assert "BROKEN" in broken.stdout and f"event {note}: content does not match its hash" in broken.stdout

    missing = run(["timeline", "verify", "INC-2026-999999"], env)
    assert missing.returncode == 1 and "no incident INC-2026-999999" in missing.stderr


def test_bad_configuration_stops_with_a_message_naming_the_key(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\nmax_body_bytes = 0\n")
    result = run(["serve", "--config", str(bad)], env)
    assert result.returncode != 0
    assert f"{bad}: [http] max_body_bytes: Expected `int` >= 1" in result.stderr
    assert "Traceback" not in result.stderr
    result = run(["serve"], {**env, "INCIDENT_STORE__URLL": "x"})
    assert result.returncode != 0 and "INCIDENT_STORE__URLL: unknown key 'urll'" in result.stderr


def test_config_command_prints_effective_settings_without_secrets(env: dict[str, str]) -> None:
    result = run(
        ["config"],
        {
            **env,
            "INCIDENT_TWILIO__AUTH_TOKEN": "s3cret",
            "INCIDENT_HTTP__PORT": "8099",
            "INCIDENT_STORE__URL": "postgresql://incident:pa55word@db:5432/incident",
        },
    )
    assert result.returncode == 0
    assert "port = 8099" in result.stdout
    assert "s3cret" not in result.stdout and "pa55word" not in result.stdout
    assert "postgresql://incident:********@db:5432/incident" in result.stdout


def test_households_import_reports_bad_rows_and_updates_by_account(
    env: dict[str, str], tmp_path: Path
) -> None:
    good = "A-1,-85.55,38.03,1 Elm St,en,+15025550101,,,,\nA-2,-85.54,38.04,2 Elm St,zh-CN,,+15025550102,,medical,\n"
    bad = "A-3,-85.54,98.04,3 Elm St,en,,,,,\nA-4,-85.54,38.04,4 Elm St,en,5550104,,,,\nA-5,-85.54,38.04,5 Elm St,en,,,,royal,\n"
    header = "account_id,lon,lat,address,language,sms,voice,app_token,priority,opt_out\n"
    path = tmp_path / "households.csv"
    path.write_text(header + good + bad)
    first = run(["households", "import", str(path)], env)
    assert first.returncode == 1  # some rows were rejected; the good ones are in
    assert "5 rows: 2 added, 0 updated, 0 unchanged; 3 rejected" in first.stdout
    assert (
        "line 4 (A-3)" in first.stderr and "line 5 (A-4)" in first.stderr and "line 6 (A-5)" in first.stderr
    )
    assert "5550104" not in first.stderr + first.stdout  # a phone number is personal data
    path.write_text(header + good.replace("1 Elm St", "1 Elm Street") + "A-6,-85.53,38.03,6 Elm St,en,,,,,\n")
    second = run(["households", "import", str(path)], env)
    assert second.returncode == 0
    assert "3 rows: 1 added, 1 updated, 1 unchanged" in second.stdout


def _poll(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Bounded wait: the promise is 10 s; the bound is generous for a loaded test machine."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not in force after {timeout:.0f} s"
        time.sleep(0.25)


def test_tokens_and_households_from_the_command_line_reach_the_running_service(
    start: Callable[[], Server], env: dict[str, str], tmp_path: Path
) -> None:
    env["INCIDENT_PLAYBOOKS__ENABLED"] = "false"  # no playbook changes the area under the test
    server = start()
    token = run(["tokens", "add", "alice", "--role", "dispatcher"], env).stdout.strip()
    _poll(
        "a token added while the service runs",
        lambda: server.request("GET", "/api/incidents", token)[0] == 200,
    )

    status, inc = server.request("POST", "/api/incidents", token, DECLARE)
    assert status == 201
    around = {"around": {"lon": -85.5501, "lat": 38.0301, "radius_m": 20}}

    def households() -> int:
        status, body = server.request("PUT", f"/api/incidents/{inc['id']}/area", token, around)
        assert status == 200, body
        return int(body["households"])

    before = households()
    path = tmp_path / "more.csv"
    path.write_text(
        "account_id,lon,lat,address,language,sms,voice,app_token,priority,opt_out\n"
        "NEW-1,-85.5501,38.0301,1 New St,en,+15025550101,,,,\n"
        "NEW-2,-85.5502,38.0302,2 New St,en,,+15025550102,,,\n"
    )
    imported = run(["households", "import", "--quiet", str(path)], env)
    assert imported.returncode == 0, imported.stderr
    _poll("households imported while the service runs", lambda: households() == before + 2)
    code, log = server.stop()
    assert code == 0 and "Traceback" not in log


def test_households_import_normalises_numbers_and_rejects_positions_outside_the_area(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "households.csv"
    path.write_text(
        "account_id,lon,lat,address,language,sms,voice,app_token,priority,opt_out\n"
        "N-1,-85.55,38.03,1 Elm St,en,(502) 555-0101,502-555-0199,,,\n"  # national format
        "N-2,-85.55,38.03,2 Elm St,zh-CN,+8657788123456,,,,\n"  # a fixed line in sms
        "N-3,38.03,-85.55,3 Elm St,en,,,,,\n"  # lon and lat swapped
        "N-4,2.35,48.85,4 Elm St,en,,,,,\n"  # Paris: far outside the service area
    )
    refused = run(["households", "import", str(path)], env)
    assert "line 2 (N-1): sms number is not E.164" in refused.stderr  # no default region: as before

    result = run(["households", "import", str(path)], {**env, "INCIDENT_AREA__DEFAULT_REGION": "US"})
    assert result.returncode == 1
    # N-2 came in with the first import already.
    assert "4 rows: 1 added, 0 updated, 1 unchanged; 2 rejected; 1 changed" in result.stdout
    assert "line 3 (N-2): the sms number is a fixed line: moved to voice" in result.stderr
    assert "line 4 (N-3): position (38.03, -85.55) is outside the service area" in result.stderr
    assert "look swapped" in result.stderr
    assert "line 5 (N-4): position (2.35, 48.85) is outside the service area (lon " in result.stderr
    assert "8812" not in result.stderr + result.stdout
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    rows = dict(conn.execute("SELECT account_id, sms || '/' || voice FROM households"))
    conn.close()
    assert rows == {"N-1": "+15025550101/+15025550199", "N-2": "/+8657788123456"}


def test_twilio_mode_without_credentials_stops_config_and_serve_with_one_line(env: dict[str, str]) -> None:
    twilio = {**env, "INCIDENT_CARRIER__MODE": "twilio", "INCIDENT_TWILIO__ACCOUNT_SID": "AC1"}
    for command in (["config"], ["serve"]):
        result = run(command, twilio)
        assert result.returncode != 0, command
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            'Error: built-in defaults: [carrier] mode = "twilio" needs [twilio] auth_token, from_number, '
            'public_base_url (e.g. INCIDENT_TWILIO__AUTH_TOKEN); or use mode = "drill"'
        ]


def test_a_misspelt_environment_variable_is_named_with_the_right_spelling(env: dict[str, str]) -> None:
    result = run(["config"], {**env, "INCIDENT_HTTP_PORT": "8099", "INCIDENT_TOKEN": "not a setting"})
    assert result.returncode == 0
    assert result.stderr.strip().splitlines() == [
        "Warning: environment INCIDENT_HTTP_PORT sets nothing and is ignored: did you mean INCIDENT_HTTP__PORT?"
    ]


def test_config_prints_toml_that_loads_back(env: dict[str, str], tmp_path: Path) -> None:
    import tomllib

    result = run(["config"], {**env, "INCIDENT_NOTIFY__UTILITY_NAME": 'Wasser "Süd"'})
    assert result.returncode == 0
    data = tomllib.loads(result.stdout)
    assert data["http"]["port"] == 0 and data["notify"]["utility_name"] == 'Wasser "Süd"'
    assert data["correlation"]["auto_declare"][0]["kind"] == "gas_leak"
    saved = tmp_path / "saved.toml"
    saved.write_text(result.stdout)
    clean = {k: v for k, v in env.items() if not k.startswith("INCIDENT_")}
    assert run(["config", "--config", str(saved)], clean).stdout == result.stdout


def test_templates_check_names_a_dropped_element_and_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    assert run(["templates", "check"], env).stdout.startswith("ok: ")
    root = tmp_path / "notices"
    shutil.copytree(BUNDLED_DIR / "templates" / "notices", root)
    email = root / "zh-CN" / "boil_water.email.j2"
    email.write_text(
        email.read_text(encoding="utf-8").replace("饮用受污染的水可能引起腹泻、腹痛、恶心、头痛等症状。", ""),
        encoding="utf-8",
    )
    result = run(["templates", "check", str(root)], env)
    assert result.returncode == 1
    assert (
        f"error: {email}: boil_water.email in zh-CN lacks the required element health_effects"
        in result.stdout
    )
    assert "Traceback" not in result.stderr
