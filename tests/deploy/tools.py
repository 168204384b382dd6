"""Where the deploy checks find their files and command-line tools."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SRC = ROOT / "src" / "incident"
SCHEMAS = Path(__file__).resolve().parent / "schemas"


def tool(name: str, how: str) -> str:
    """The path of a command-line tool: the venv's own bin first (pip-installed tools such as
    hadolint land there, and the venv need not be on PATH), then PATH. Skips the test, naming
    the tool and how to install it, when neither has it."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed ({how}); .ci/run installs it")
    return found


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a YAML file."""
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def yaml_file(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)
