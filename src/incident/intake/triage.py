"""Report flows: the ingest planner (correlation into steps) and the dispatcher's triage.

A report is linked to an incident, opens one (by a rule or a dispatcher), or is dismissed;
every link and declaration is a timeline event naming the report.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from incident.core import domain
from incident.core.auth import Principal
from incident.core.domain import Declaration, Role
from incident.core.errors import Forbidden, NotFound
from incident.incidents.service import IncidentService
from incident.reports.correlation import Candidate, Declare, Link, decide
from incident.reports.model import Report, ReportStatus, StoredReport
from incident.settings import CorrelationSettings
from incident.store.ports import Appended, AppendTo, NewIncident, Opener, Planner, PlanStep, SetReport

#: The actor named on events the ingest pipeline writes by itself.
SYSTEM_ACTOR = "system:ingest"


def report_facts(report: Report) -> dict[str, Any]:
    """What a timeline event records of a report."""
    facts: dict[str, Any] = {
        "report_id": report.report_id,
        "kind": report.kind.value,
        "source": report.source,
        "severity": report.severity.value,
        "observed_at": report.observed,
        "summary": report.summary,
    }
    if report.location is not None:
        facts["location"] = {"lon": report.location.lon, "lat": report.location.lat}
    if report.asset is not None:
        facts["asset"] = {"type": report.asset.type, "id": report.asset.id}
    if report.details:  # lab results carry their sample's result here (playbook conditions)
        facts["details"] = report.details
    return facts


def declaration_from(report: Report, **overrides: Any) -> Declaration:
    title = (
        report.summary.strip()[:200] or f"{report.kind.value.replace('_', ' ')} reported by {report.source}"
    )
    fields: dict[str, Any] = {"kind": report.kind, "utility": report.utility, "title": title,
                              "severity": report.severity}  # fmt: skip
    if report.details.get("drill") is True:  # a drill's report opens an exercise, marked as one
        fields["drill"] = True
    return Declaration(**{**fields, **{k: v for k, v in overrides.items() if v is not None}})


#: A dispatcher may link or declare from a report that is waiting or was dismissed by mistake.
TRIAGEABLE = frozenset({ReportStatus.unassigned, ReportStatus.dismissed})


def _link_steps(
    report: Report, ref: str, actor: str, reason: str, expect: frozenset[ReportStatus] | None = None
) -> list[PlanStep]:
    facts = report_facts(report)
    return [
        AppendTo(ref, lambda state: domain.link_report(state, facts, actor, reason)),
        SetReport(
            report.report_id,
            ReportStatus.linked,
            incident_ref=ref,
            note=reason,
            triaged_by=actor,
            expect=expect,
        ),
    ]


def _constant(drafts: list[domain.EventDraft]) -> Opener:
    return lambda _id: drafts


def ingest_planner(settings: CorrelationSettings) -> Planner:
    def plan(reports: list[Report], candidates: list[Candidate]) -> Sequence[PlanStep]:
        steps: list[PlanStep] = []
        for report, decision in zip(reports, decide(reports, candidates, settings), strict=True):
            match decision:
                case Link(ref=ref, reason=reason):
                    steps += _link_steps(report, ref, SYSTEM_ACTOR, reason)
                case Declare(ref=ref, rule=rule):
                    auto = {
                        "rule": f"{rule.kind.value} at {rule.min_severity.value} or above",
                        "report_id": report.report_id,
                        "confirm": rule.confirm,
                    }
                    drafts = domain.declare(declaration_from(report), SYSTEM_ACTOR, owner=None, auto=auto)
                    steps.append(NewIncident(ref, _constant(drafts)))
                    steps += _link_steps(
                        report, ref, SYSTEM_ACTOR, f"opened the incident by rule: {auto['rule']}"
                    )
        return steps

    return plan


class TriageService:
    def __init__(self, incidents: IncidentService) -> None:
        self._incidents = incidents
        self._store = incidents.store
        self._hub = incidents.hub

    def publish(self, appended: Sequence[Appended], reports: Collection[StoredReport] = ()) -> None:
        """Tell the live feed and metrics what a committed change did, and show reports."""
        self._incidents.publish(appended)
        for report in reports:
            self._hub.publish_report(report)

    async def get(self, report_id: str) -> StoredReport:
        report = await self._store.get_report(report_id)
        if report is None:
            raise NotFound(f"no report {report_id}")
        return report

    async def list_reports(
        self, statuses: Collection[ReportStatus] | None, limit: int, after: tuple[str, str] | None = None
    ) -> list[StoredReport]:
        return await self._store.list_reports(statuses, limit, after)

    async def link(self, report_id: str, incident_id: str, by: Principal, reason: str | None) -> StoredReport:
        stored = await self.get(report_id)
        steps = _link_steps(stored.report, incident_id, by.name, reason or f"linked by {by.name}", TRIAGEABLE)
        self.publish((await self._store.apply_plan(steps)).appended)
        updated = await self.get(report_id)
        self._hub.publish_report(updated)
        return updated

    async def declare(
        self, report_id: str, by: Principal, title: str | None, severity: domain.Severity | None, drill: bool
    ) -> tuple[StoredReport, str]:
        if by.role not in (Role.dispatcher, Role.admin):
            raise Forbidden("only a dispatcher or an admin declares incidents")
        stored = await self.get(report_id)
        declaration = declaration_from(stored.report, title=title, severity=severity, drill=drill or None)
        opener = domain.declare(declaration, by.name, owner=by.name)
        steps: list[PlanStep] = [NewIncident("new:0", _constant(opener))]
        steps += _link_steps(
            stored.report, "new:0", by.name, f"declared from this report by {by.name}", TRIAGEABLE
        )
        result = await self._store.apply_plan(steps)
        self._incidents.count_declared(declaration)
        self.publish(result.appended)
        updated = await self.get(report_id)
        self._hub.publish_report(updated)
        return updated, result.ids["new:0"]

    async def dismiss(self, report_id: str, by: Principal, reason: str) -> StoredReport:
        await self._store.apply_plan(
            [
                SetReport(
                    report_id, ReportStatus.dismissed, note=reason, triaged_by=by.name,
                    expect=frozenset({ReportStatus.unassigned}),
                )
            ]
        )  # fmt: skip
        updated = await self.get(report_id)
        self._hub.publish_report(updated)
        return updated
