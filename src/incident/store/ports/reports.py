"""The store's port for reports: field reports: ingest with correlation in one transaction, reads."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

import msgspec

from incident.reports.correlation import Candidate
from incident.reports.model import Report, ReportStatus, StoredReport
from incident.store.ports.incidents import Appended, PlanStep


class IncomingReport(msgspec.Struct, frozen=True):
    report: Report
    origin: str


class IngestResult(msgspec.Struct, frozen=True):
    #: Reports stored by this call, as they ended up (linked, or unassigned).
    stored: list[StoredReport]
    duplicates: list[str]
    appended: list[Appended]


#: Given the reports that are new and the open incidents, the steps to take.
Planner = Callable[[list[Report], list[Candidate]], Sequence[PlanStep]]


class ReportPort(Protocol):
    """Field reports: ingest with correlation in one transaction, reads."""

    async def ingest_reports(self, reports: Sequence[IncomingReport], planner: Planner) -> IngestResult:
        """Store new reports (a known ``report_id`` is a duplicate and changes nothing), and in
        the same transaction carry out what ``planner`` decides for the new ones."""
        ...

    async def get_report(self, report_id: str) -> StoredReport | None: ...

    async def list_reports(
        self,
        statuses: Collection[ReportStatus] | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[StoredReport]:
        """Newest first (``received_at`` descending, then ``report_id``); ``after`` is the
        ``(received_at, report_id)`` of the row a page ended with: the rows after it."""
        ...
