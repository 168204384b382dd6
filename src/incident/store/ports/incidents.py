"""The store's port for incidents: incidents and their timelines, every change through a pure
decider, and multi-step plans (reports, links, declarations, notices)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from incident.core.domain import EventDraft, Incident, Status, TimelineEvent
from incident.deliveries.records import Notice
from incident.reports.model import ReportStatus

#: Given the new incident's id, the events that open it.
Opener = Callable[[str], Sequence[EventDraft]]


#: Given the current state, the events to append (possibly none), or raise.
Decider = Callable[[Incident], Sequence[EventDraft]]


class Appended(msgspec.Struct, frozen=True):
    """The state after an append, and the events it added."""

    incident: Incident
    events: list[TimelineEvent]


@dataclass(frozen=True)
class NewIncident:
    """Open an incident; later steps refer to it by ``ref`` (``new:N``)."""

    ref: str
    opener: Opener


@dataclass(frozen=True)
class AppendTo:
    """Append to an incident by id, or by the ``ref`` of one opened earlier in the plan."""

    ref: str
    decide: Decider


@dataclass(frozen=True)
class SetReport:
    """Change a report's triage status; ``expect`` guards against a concurrent change."""

    report_id: str
    status: ReportStatus
    incident_ref: str | None = None
    note: str | None = None
    triaged_by: str | None = None
    expect: frozenset[ReportStatus] | None = None


@dataclass(frozen=True)
class PutNotice:
    """Insert or replace a notice record (its timeline event is a separate ``AppendTo``)."""

    notice: Notice
    #: Also its ``draft`` deliveries become ``planned`` (``not_before``: the notice's
    #: ``send_after``), in the same transaction: an approval is never half done.
    release_drafts: bool = False


PlanStep = NewIncident | AppendTo | SetReport | PutNotice


class PlanResult(msgspec.Struct, frozen=True):
    appended: list[Appended]
    #: ``new:N`` refs to the ids the store gave the incidents.
    ids: dict[str, str]


class IncidentPort(Protocol):
    """Incidents and their timelines: every change through a pure decider, and multi-step plans."""

    async def create_incident(self, opener: Opener) -> Appended: ...

    async def append(self, incident_id: str, decide: Decider) -> Appended: ...

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def list_incidents(
        self,
        statuses: Collection[Status] | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[Incident]:
        """Newest first (``declared_at``, then ``id``, descending); ``after`` is the
        ``(declared_at, id)`` of the row a page ended with: the rows after it in that order."""
        ...

    async def timeline(
        self, incident_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEvent]: ...

    async def apply_plan(self, steps: Sequence[PlanStep]) -> PlanResult:
        """Carry out ``steps`` in one transaction: all of them or none."""
        ...
