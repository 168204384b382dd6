"""The wheel, installed away from the checkout, runs as a user runs it: from any directory, with
the defaults it carries (templates, playbooks, on-call example, sample area, drills)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

from incident.cli import with_role
from incident.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The project's wheel built from a copy of the sources (the checkout stays clean), and
    installed into a folder of its own: (wheel, site folder)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    # No build isolation: the build tools are in the test extras, and tests use no network.
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (base / "dist").glob("incident-*.whl")
    site = base / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return wheel, site


def _env(site: Path, run_dir: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_") and k != "PYTHONPATH"},
        # The installed copy first: nothing is read from the checkout.
        "PYTHONPATH": str(site),
        "INCIDENT_HTTP__PORT": "0",
        "INCIDENT_KAFKA__EMBEDDED_LISTENER": "127.0.0.1:0",
        "HOME": str(run_dir),
    }


def _incident(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "incident", *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_the_wheel_carries_every_file_the_defaults_name(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "incident/bundled/templates/notices/en/boil_water.sms.j2",
        "incident/bundled/templates/notices/zh-CN/boil_water.sms.j2",
        "incident/bundled/playbooks/water_main_break.yaml",
        "incident/bundled/oncall.toml",
        "incident/bundled/sample/households.csv",
        "incident/bundled/sample/network.inp",
        "incident/bundled/sample/valves.csv",
        "incident/bundled/sample/layers/pressure_zones.geojson",
        "incident/bundled/drills/main_break.yaml",
        "incident/console/static/index.html",
        "incident/signup/static/signup.html",
        "incident/signup/static/signup.js",
        "incident/review/CAP-v1.2.xsd",
    ):
        assert needed in names, needed
    assert "incident/py.typed" in names
    # Every template file of the source tree is in the wheel.
    shipped = ROOT / "src" / "incident" / "bundled" / "templates"
    for file in shipped.rglob("*.j2"):
        assert f"incident/bundled/templates/{file.relative_to(shipped)}" in names


def test_the_installed_service_serves_from_any_directory(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, site = installed
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = _env(site, run_dir)
    where = _incident(["config"], env, run_dir)
    assert where.returncode == 0, where.stderr
    settings = tomllib.loads(where.stdout)
    assert settings["notify"]["templates"] == str(site / "incident" / "bundled" / "templates" / "notices")
    assert settings["playbooks"]["dir"] == str(site / "incident" / "bundled" / "playbooks")
    assert settings["auth"]["tokens_file"] == str(run_dir / "var" / "tokens.toml")

    token = _incident(["tokens", "add", "alice", "--role", "dispatcher"], env, run_dir).stdout.strip()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "incident", "serve"],
            env=env,
            cwd=run_dir,
            stderr=out,
            stdout=subprocess.DEVNULL,
        )
    try:
        url = _wait_for_url(proc, log)
        assert _call("GET", f"{url}/healthz")[0] == 200
        # The bundled sample area is loaded (its households are found) and the console is served.
        status, body = _call("GET", f"{url}/api/incidents", token)
        assert status == 200 and body["incidents"] == []
        with urllib.request.urlopen(f"{url}/", timeout=10) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
        status, incident = _call("POST", f"{url}/api/incidents", token, {
            "kind": "main_break", "utility": "water", "title": "Main break", "severity": "high",
        })  # fmt: skip
        assert status == 201, incident
        status, area = _call(
            "PUT", f"{url}/api/incidents/{incident['id']}/area", token,
            {"around": {"lon": -85.6, "lat": 38.04, "radius_m": 400}},
        )  # fmt: skip
        assert status == 200, area
        assert isinstance(area["households"], int) and area["households"] > 0, area
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text
    loaded = re.search(r"service area: (\d+) households", text)
    assert loaded and int(loaded[1]) == 3000, text  # the bundled sample
    # It wrote only where it was started (the default store and tokens are relative to it).
    assert (run_dir / "var" / "incident.db").exists()
    assert (run_dir / "var" / "tokens.toml").exists()


def test_migrate_brings_the_store_up_to_date_and_can_run_again(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, site = installed
    env = {**_env(site, tmp_path), "INCIDENT_STORE__URL": f"sqlite:///{tmp_path / 'm.db'}"}
    first = _incident(["migrate"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    version = re.fullmatch(r"store schema at version (\d+)\n", first.stdout)
    assert version and int(version[1]) > 0
    again = _incident(["migrate"], env, tmp_path)
    assert again.returncode == 0 and again.stdout == first.stdout
    broken = _incident(
        ["migrate"], {**env, "INCIDENT_STORE__URL": "postgresql://nobody@127.0.0.1:1/x"}, tmp_path
    )
    assert broken.returncode == 1 and "Traceback" not in broken.stderr and "Error:" in broken.stderr


def test_init_copies_the_defaults_with_a_config_that_names_them(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, site = installed
    env = _env(site, tmp_path)
    target = tmp_path / "utility"
    made = _incident(["init", str(target)], env, tmp_path)
    assert made.returncode == 0, made.stderr
    assert (target / "playbooks" / "gas_leak.yaml").is_file()
    assert (target / "templates" / "notices" / "zh-CN").is_dir()
    assert not list(target.rglob("*.py"))
    # Started from elsewhere, the copied config names the copies (relative to the file).
    shown = tomllib.loads(_incident(["config", "--config", str(target / "config.toml")], env, site).stdout)
    assert shown["playbooks"]["dir"] == str(target / "playbooks")
    assert shown["area"]["households"] == str(target / "sample" / "households.csv")
    assert shown["store"]["url"] == f"sqlite:///{target / 'var' / 'incident.db'}"
    # Its own secret for the residents' sign-up links (shown masked).
    assert shown["enrolment"]["secret"] == "********"
    assert re.search(r'secret = "[0-9a-f]{64}"', (target / "config.toml").read_text())
    # An edit in the copy is what the check reads.
    broken = (
        (target / "playbooks" / "gas_leak.yaml").read_text().replace("name: gas_leak", "name: gas_leek", 1)
    )
    (target / "playbooks" / "gas_leak.yaml").write_text(broken)
    check = _incident(["playbooks", "check", "--config", str(target / "config.toml")], env, tmp_path)
    assert check.returncode == 1 and "gas_leak.yaml" in check.stdout
    again = _incident(["init", str(target)], env, tmp_path)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_roles_split_the_work() -> None:
    s = Settings()
    api, worker, both = with_role(s, "api"), with_role(s, "worker"), with_role(s, "all")
    assert (api.kafka.consume_reports, api.notify.send, api.playbooks.enabled) == (True, False, False)
    assert (worker.kafka.consume_reports, worker.notify.send, worker.playbooks.enabled) == (False, True, True)
    assert both == s


def _wait_for_url(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if m := re.search(r"listening on (http://\S+)/", log.read_text()):
            return m[1]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"the installed service did not start:\n{log.read_text()}")


def _call(method: str, url: str, token: str | None = None, body: object = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, method=method, data=data)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())
