"""The sample service area (config/sample: WNTR's ky4 network in Kentucky), read from its
files for the tests' own expectations, and built once per session for the apps."""

from __future__ import annotations

import asyncio
import csv
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shapely.geometry import Point, shape

from incident.app import Prebuilt, prebuild
from incident.core.clock import ManualClock
from incident.settings import BUNDLED_DIR, Settings, StoreSettings, load_settings
from incident.store import open_store

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = BUNDLED_DIR / "sample"
SAMPLE = SAMPLE_DIR / "households.csv"

#: A box around Maple St in the sample area, with a few hundred households.
BOX = {
    "type": "Polygon",
    "coordinates": [[[-85.56, 38.02], [-85.53, 38.02], [-85.53, 38.05], [-85.56, 38.05], [-85.56, 38.02]]],
}


def sample_rows() -> Iterator[dict[str, str]]:
    with SAMPLE.open(encoding="utf-8") as f:
        yield from csv.DictReader(f)


def rows_inside(box: dict[str, Any]) -> list[dict[str, str]]:
    area = shape(box)
    return [r for r in sample_rows() if area.covers(Point(float(r["lon"]), float(r["lat"])))]


def expected_sms(box: dict[str, Any]) -> tuple[int, int, set[str]]:
    """Naive count from the file: households in the box with an SMS number not opted out,
    one message per distinct number; and the languages among them."""
    numbers: set[str] = set()
    languages: set[str] = set()
    inside = rows_inside(box)
    for row in inside:
        if row["sms"] and "sms" not in row["opt_out"].split("|"):
            if row["sms"] not in numbers:
                languages.add(row["language"])
            numbers.add(row["sms"])
    return len(inside), len(numbers), languages


async def _prebuild(settings: Settings) -> Prebuilt:
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock(datetime(2026, 11, 22, tzinfo=UTC))
        store = open_store(StoreSettings(url=f"sqlite:///{Path(tmp) / 'sample.db'}"), clock)
        await store.open()
        try:
            return await prebuild(settings, store)
        finally:
            await store.close()


_built: list[Prebuilt] = []


def prebuilt_sample() -> Prebuilt:
    """The sample area, templates and playbooks of the default settings, built once (outside
    any event loop: the session fixture ``sample_area`` calls this)."""
    if not _built:
        _built.append(asyncio.run(_prebuild(load_settings(None, {}))))
    return _built[0]


def built_sample() -> Prebuilt | None:
    """The prebuilt sample if it has been built (apps are the same without it, only slower)."""
    return _built[0] if _built else None
