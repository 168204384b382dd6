from __future__ import annotations

from pathlib import Path

import pytest

from incident.settings import BUNDLED_DIR

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = BUNDLED_DIR / "sample"


@pytest.fixture(scope="session")
def wntr_networks() -> Path:
    """The folder of networks shipped inside wntr (a test-only dependency)."""
    wntr = pytest.importorskip("wntr")
    return Path(wntr.__path__[0]) / "library" / "networks"
