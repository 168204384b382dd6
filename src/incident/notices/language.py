"""Language tags of households matched to template folders, and times in their language. Pure.

Matching rule (:func:`match_language`), case-insensitive, ``_`` read as ``-``:

1. the tag names a template language exactly: ``zh-cn``, ``zh_CN`` → ``zh-CN``;
2. else the tag's primary language subtag names one: ``en-US``, ``en-GB`` → ``en``;
3. else the first template language (sorted) with the same primary subtag:
   ``zh``, ``zh-TW``, ``zh-Hans`` → ``zh-CN`` (Simplified script for Traditional readers
   is closer than another language; ship a ``zh-TW`` folder to do better);
4. else no match: the caller falls back to its default language and says so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["format_time", "match_language", "primary_subtag", "zone"]

_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def primary_subtag(tag: str) -> str:
    """``zh`` for ``zh_CN``, ``en`` for ``en-US``: lower case, before the first separator."""
    return tag.replace("_", "-").split("-", 1)[0].lower()


def match_language(tag: str, available: Collection[str]) -> str | None:
    """The template language for a household's tag, None when none fits (rule above)."""
    wanted = tag.strip().replace("_", "-").lower()
    if not wanted:
        return None
    by_lower = {language.lower(): language for language in available}
    if wanted in by_lower:
        return by_lower[wanted]
    primary = primary_subtag(wanted)
    if primary in by_lower:
        return by_lower[primary]
    same = sorted(language for language in available if primary_subtag(language) == primary)
    return same[0] if same else None


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError naming it when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown time zone {name!r}") from err


def _zh(moment: datetime) -> str:
    return f"{moment.month}月{moment.day}日 {moment:%H:%M}"


def _en(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    noon = "AM" if moment.hour < 12 else "PM"
    return f"{_EN_MONTHS[moment.month - 1]} {moment.day}, {hour}:{moment:%M} {noon}"


def _iso(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


_FORMATS: dict[str, Callable[[datetime], str]] = {"zh": _zh, "en": _en}


def format_time(moment: datetime, language: str, tz: ZoneInfo) -> str:
    """``moment`` on the wall clock of ``tz``, as a reader of ``language`` writes it.

    ``zh*``: ``11月22日 14:30``; ``en*``: ``Nov 22, 2:30 PM``; any other language:
    ``2026-11-22 14:30``. ``moment`` must carry a time zone (ValueError otherwise).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"time {moment.isoformat()} has no time zone")
    return _FORMATS.get(primary_subtag(language), _iso)(moment.astimezone(tz))
