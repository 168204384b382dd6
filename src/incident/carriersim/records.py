"""The drill carrier's memory: messages and calls it accepted, bounded, newest last.

A record keeps its status timeline (offsets from its create), so its status at any moment is
read off the clock: no task has to run for the REST API to show a message as delivered.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from incident.carriersim.config import CallOutcome, SmsOutcome
from incident.carriersim.outcome import Timeline

__all__ = ["CallRecord", "MessageRecord", "Page", "Records"]


def _reached(timeline: Timeline, elapsed: float) -> int:
    """Index of the last timeline entry reached after ``elapsed`` seconds (0 at least)."""
    return max(bisect.bisect_right(timeline, elapsed, key=lambda entry: entry[0]) - 1, 0)


@dataclass(slots=True)
class _Timed:
    sid: str
    seq: int
    created: datetime
    created_mono: float
    timeline: Timeline

    def status_at(self, mono: float) -> str:
        return self.timeline[_reached(self.timeline, mono - self.created_mono)][1]

    def updated_at(self, mono: float) -> datetime:
        return self.created + timedelta(
            seconds=self.timeline[_reached(self.timeline, mono - self.created_mono)][0]
        )

    def reached_at(self, status: str, mono: float) -> datetime | None:
        """When ``status`` was reached, or None (not in the timeline, or not yet)."""
        for offset, entry in self.timeline:
            if entry == status:
                return (
                    self.created + timedelta(seconds=offset) if mono - self.created_mono >= offset else None
                )
        return None

    def final_at(self) -> datetime:
        return self.created + timedelta(seconds=self.timeline[-1][0])


@dataclass(slots=True)
class MessageRecord(_Timed):
    to: str
    from_: str
    body: str
    num_segments: int
    outcome: SmsOutcome
    error_code: int | None
    status_callback: str | None = None
    messaging_service_sid: str | None = None
    direction: str = "outbound-api"

    def date_sent(self, mono: float) -> datetime | None:
        return self.reached_at("sent", mono)

    def sort_time(self, mono: float) -> datetime:
        """The time list filters compare (DateSent): when it was sent, else when created."""
        return self.date_sent(mono) or self.created


@dataclass(slots=True)
class CallRecord(_Timed):
    to: str
    from_: str
    outcome: CallOutcome
    duration_s: int
    twiml: str | None = None
    url: str | None = None
    status_callback: str | None = None
    machine_detection: str | None = None
    events: frozenset[str] = field(default_factory=frozenset)
    #: The Gather action (URL, method) once known: from inline TwiML at create, from the Url's
    #: TwiML when the call is answered.
    gather: tuple[str, str] | None = None

    @property
    def answered_by(self) -> str | None:
        """AnsweredBy, as Twilio reports it when MachineDetection was asked for."""
        if not self.machine_detection:
            return None
        if self.outcome in (CallOutcome.confirmed, CallOutcome.human):
            return "human"
        if self.outcome is CallOutcome.machine:
            return "machine_end_beep" if self.machine_detection == "DetectMessageEnd" else "machine_start"
        return None

    def start_time(self, mono: float) -> datetime | None:
        return self.reached_at("initiated", mono)

    def end_time(self, mono: float) -> datetime | None:
        elapsed = mono - self.created_mono
        return self.final_at() if elapsed >= self.timeline[-1][0] else None

    def sort_time(self, mono: float) -> datetime:
        """The time list filters compare (StartTime): when it started, else when created."""
        return self.start_time(mono) or self.created


R = TypeVar("R", MessageRecord, CallRecord)


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    items: list[R]
    #: ``seq`` of the last item when more match, for the next page's token.
    next_after: int | None


class Records(Generic[R]):
    """Insertion-ordered and bounded: past ``limit`` the oldest record is forgotten."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._by_sid: dict[str, R] = {}
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, record: R) -> None:
        self._by_sid[record.sid] = record
        if len(self._by_sid) > self._limit:
            del self._by_sid[next(iter(self._by_sid))]

    def get(self, sid: str) -> R | None:
        return self._by_sid.get(sid)

    def __len__(self) -> int:
        return len(self._by_sid)

    def __iter__(self) -> Iterator[R]:
        """Oldest first."""
        return iter(list(self._by_sid.values()))

    def page(self, match: Callable[[R], bool], size: int, before_seq: int | None, skip: int = 0) -> Page[R]:
        """Newest first, as Twilio lists; ``before_seq`` continues after a previous page's
        last record, ``skip`` passes over that many matches (a page number without a token)."""
        items: list[R] = []
        for record in reversed(self._by_sid.values()):
            if before_seq is not None and record.seq >= before_seq:
                continue
            if not match(record):
                continue
            if skip:
                skip -= 1
                continue
            if len(items) == size:
                return Page(items, items[-1].seq)
            items.append(record)
        return Page(items, None)
