"""Views of the triage queue: list reports, link one to an incident, declare from it, dismiss it."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from incident.api.endpoint import ALL_ROLES, Endpoint, Idempotency, Query, json_response, read_body
from incident.api.incidents import DECLARE, STEER
from incident.api.paging import CURSOR, LIMIT, cut, page_request, pair
from incident.core.domain import Incident, IncidentId, Severity, Title
from incident.keys import INCIDENTS, PRINCIPAL, TRIAGE
from incident.reports.model import ReportStatus, StoredReport

_FILTERS: dict[str, frozenset[ReportStatus] | None] = {
    "all": None,
    **{s.value: frozenset({s}) for s in ReportStatus},
}

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class LinkBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    incident_id: IncidentId
    reason: Reason | None = None


class DeclareFromReport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Overrides for the incident; by default it takes kind, utility, severity and the
    summary (as title) from the report."""

    title: Title | None = None
    severity: Severity | None = None
    drill: bool = False


class DismissBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class ReportList(msgspec.Struct, frozen=True):
    reports: list[StoredReport]
    #: The cursor of the next page; None on the last.
    next_cursor: str | None = None


class Declared(msgspec.Struct, frozen=True):
    report: StoredReport
    incident: Incident


def _report_id(request: web.Request) -> str:
    return request.match_info["report_id"]


_STATUS = Query.choice(
    "status", "unassigned (default), linked, dismissed or all", _FILTERS, default="unassigned"
)


async def list_reports(request: web.Request) -> web.Response:
    key = request.query.get(_STATUS.name, "unassigned")
    size, after = page_request(request, "reports", (str, str))
    rows = await request.app[TRIAGE].list_reports(_FILTERS[key], size + 1, pair(after))
    page, cursor = cut(rows, size, "reports", lambda r: (r.received_at, r.report.report_id))
    return json_response(ReportList(page, cursor))


async def get_report(request: web.Request) -> web.Response:
    return json_response(await request.app[TRIAGE].get(_report_id(request)))


async def link(request: web.Request) -> web.Response:
    body = await read_body(request, LinkBody)
    report = await request.app[TRIAGE].link(
        _report_id(request), body.incident_id, request[PRINCIPAL], body.reason
    )
    return json_response(report)


async def declare(request: web.Request) -> web.Response:
    body = await read_body(request, DeclareFromReport)
    report, incident_id = await request.app[TRIAGE].declare(
        _report_id(request), request[PRINCIPAL], body.title, body.severity, body.drill
    )
    incident = await request.app[INCIDENTS].get(incident_id)
    return json_response(Declared(report, incident), status=201)


async def dismiss(request: web.Request) -> web.Response:
    body = await read_body(request, DismissBody)
    return json_response(
        await request.app[TRIAGE].dismiss(_report_id(request), request[PRINCIPAL], body.reason)
    )


_ID = "/api/reports/{report_id}"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET", "/api/reports", list_reports,
        "The triage queue (default: unassigned reports), newest first, a page at a time",
        ALL_ROLES, tag="reports", response=ReportList, query=(_STATUS, LIMIT, CURSOR),
    ),
    Endpoint("GET", _ID, get_report, "One report with its triage status", ALL_ROLES, tag="reports",
             response=StoredReport),
    Endpoint("POST", _ID + "/link", link, "Link a report to an open incident (a timeline event)", STEER,
             tag="reports", body=LinkBody, response=StoredReport, idempotent=Idempotency.refuses_repeat),
    Endpoint("POST", _ID + "/declare", declare, "Declare an incident from a report; the caller owns it",
             DECLARE, tag="reports", body=DeclareFromReport, response=Declared, status=201,
             idempotent=Idempotency.refuses_repeat),
    Endpoint("POST", _ID + "/dismiss", dismiss, "Dismiss a report with a reason", STEER, tag="reports",
             body=DismissBody, response=StoredReport, idempotent=Idempotency.refuses_repeat),
)  # fmt: skip
