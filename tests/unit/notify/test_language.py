from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from incident.notices.language import format_time, match_language, zone

from .conftest import context

AVAILABLE = {"en", "zh-CN"}


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("zh-CN", "zh-CN"),
        ("zh-cn", "zh-CN"),
        ("zh_CN", "zh-CN"),
        ("ZH_cn", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("en", "en"),
        ("en-US", "en"),
        ("en_GB", "en"),
        (" en ", "en"),
        ("fr", None),
        ("fr-CA", None),
        ("", None),
    ],
)
def test_match_language(tag: str, expected: str | None) -> None:
    assert match_language(tag, AVAILABLE) == expected


def test_an_exact_regional_folder_wins_over_the_shared_language() -> None:
    assert match_language("zh-TW", {"zh-CN", "zh-TW", "en"}) == "zh-TW"
    assert match_language("zh-HK", {"zh-TW", "zh-CN"}) == "zh-CN"  # first sorted
    assert match_language("en-US", {"en-GB", "en-US"}) == "en-US"


@pytest.mark.parametrize(
    ("moment", "tz", "language", "expected"),
    [
        (datetime(2026, 11, 22, 6, 30, tzinfo=UTC), "Asia/Shanghai", "zh-CN", "11月22日 14:30"),
        (datetime(2026, 11, 22, 6, 30, tzinfo=UTC), "Asia/Shanghai", "en", "Nov 22, 2:30 PM"),
        (datetime(2026, 11, 22, 6, 30, tzinfo=UTC), "Asia/Shanghai", "fr", "2026-11-22 14:30"),
        (datetime(2026, 1, 2, 16, 5, tzinfo=UTC), "Asia/Shanghai", "zh-CN", "1月3日 00:05"),
        (datetime(2026, 1, 2, 16, 5, tzinfo=UTC), "Asia/Shanghai", "en", "Jan 3, 12:05 AM"),
        (datetime(2026, 7, 1, 16, 0, tzinfo=UTC), "America/New_York", "en", "Jul 1, 12:00 PM"),  # EDT
        (datetime(2026, 12, 1, 16, 0, tzinfo=UTC), "America/New_York", "en", "Dec 1, 11:00 AM"),  # EST
    ],
)
def test_format_time(moment: datetime, tz: str, language: str, expected: str) -> None:
    assert format_time(moment, language, ZoneInfo(tz)) == expected


def test_naive_times_and_unknown_zones_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        format_time(datetime(2026, 11, 22, 14, 30), "en", ZoneInfo("UTC"))
    with pytest.raises(ValueError, match="no time zone"):
        context(etr=datetime(2026, 11, 22, 14, 30))
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        context(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("../etc/passwd")
