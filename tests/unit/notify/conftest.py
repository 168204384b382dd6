from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from incident.core.domain import Kind, Utility
from incident.notices.context import NoticeContext
from incident.notices.templates import NoticeTemplates, load_templates
from incident.settings import BUNDLED_DIR

BUNDLED = BUNDLED_DIR / "templates" / "notices"


@pytest.fixture(scope="session")
def bundled() -> NoticeTemplates:
    return load_templates(BUNDLED)


@pytest.fixture
def copy_of_bundled(tmp_path: Path) -> Path:
    root = tmp_path / "notices"
    shutil.copytree(BUNDLED, root)
    return root


def context(**changes: object) -> NoticeContext:
    """Shanghai wall clock: etr 14:30, planned work 09:00 to 17:00 on Nov 22."""
    base: dict[str, object] = dict(
        utility_name="Riverside Water",
        utility_phone="+86 21 5555 0100",
        utility_url="https://riverside.example/outage",
        incident_id="INC-2026-000042",
        kind=Kind.main_break,
        utility=Utility.water,
        area="Elm St 1-99",
        area_i18n={"zh-CN": "榆树街1-99号"},
        etr=datetime(2026, 11, 22, 6, 30, tzinfo=UTC),
        start=datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
        end=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        timezone="Asia/Shanghai",
    )
    base.update(changes)
    return NoticeContext(**base)  # type: ignore[arg-type]
