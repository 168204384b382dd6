"""Injectable time, so tests can run hours of incident time in seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol

import msgspec


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


#: A timestamp as the API shows it: the text of :func:`isoformat` (RFC 3339), described as
#: such in the OpenAPI document.
Timestamp = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]


def isoformat(at: datetime) -> str:
    """The one text form of a timestamp in events and hashes: UTC, microseconds, ``+00:00``."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")
