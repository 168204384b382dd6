"""Row mapping shared by both stores (pure)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from incident.correlate import Candidate, Sighting
from incident.domain import OPEN_STATUSES, Incident
from incident.geo.household import Channel, Household, Priority
from incident.reports import Report, ReportStatus, StoredReport

REPORT_COLUMNS = (
    "report_id, kind, utility, severity, observed_at, received_at, lon, lat, asset_type, asset_id,"
    " body, origin, status, incident_id, note, triaged_by"
)
OPEN = tuple(s.value for s in OPEN_STATUSES)

_encode = msgspec.json.Encoder().encode
_decode_report = msgspec.json.Decoder(Report).decode


def report_row(report: Report, origin: str, received_at: str) -> tuple[Any, ...]:
    loc, asset = report.location, report.asset
    return (
        report.report_id, report.kind.value, report.utility.value, report.severity.value,
        report.observed, received_at,
        loc.lon if loc else None, loc.lat if loc else None,
        asset.type if asset else None, asset.id if asset else None,
        _encode(report).decode(), origin, ReportStatus.unassigned.value, None, None, None,
    )  # fmt: skip


def stored_report(row: Any) -> StoredReport:
    return StoredReport(
        report=_decode_report(row[10]),
        received_at=row[5],
        origin=row[11],
        status=ReportStatus(row[12]),
        incident_id=row[13],
        note=row[14],
        triaged_by=row[15],
    )


#: Linked reports of open incidents: what correlation compares a new report with.
SIGHTINGS_SQL = (
    "SELECT r.incident_id, r.report_id, r.observed_at, r.lon, r.lat, r.asset_type, r.asset_id"
    " FROM reports r JOIN incidents i ON i.id = r.incident_id"
    " WHERE i.status IN ({open})"
)


def candidates(incidents: Iterable[Incident], sighting_rows: Iterable[Any]) -> list[Candidate]:
    by_incident: dict[str, list[Sighting]] = defaultdict(list)
    for incident_id, report_id, observed_at, lon, lat, asset_type, asset_id in sighting_rows:
        by_incident[incident_id].append(
            Sighting(
                report_id=report_id,
                observed_at=datetime.fromisoformat(observed_at),
                lon=lon,
                lat=lat,
                asset=(asset_type, asset_id) if asset_type is not None else None,
            )
        )
    return [Candidate.of(i, by_incident.get(i.id, [])) for i in incidents]


# --- households -----------------------------------------------------------------------------

HOUSEHOLD_COLUMNS = (
    "account_id, lon, lat, address, language, sms, voice, app_token, priority, opt_out, digest, updated_at"
)


def household_digest(h: Household) -> str:
    """Changes when anything about the household changes; re-imports skip equal rows."""
    priority = h.priority.value if h.priority else ""
    opt_out = "|".join(sorted(c.value for c in h.opt_out))
    parts = (h.account_id, repr(h.lon), repr(h.lat), h.address, h.language, h.sms, h.voice, h.app_token,
             priority, opt_out)  # fmt: skip
    return hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()


def household_row(h: Household, digest: str, updated_at: str) -> tuple[Any, ...]:
    opt_out = "|".join(sorted(c.value for c in h.opt_out))
    priority = h.priority.value if h.priority else None
    return (h.account_id, h.lon, h.lat, h.address, h.language, h.sms, h.voice, h.app_token, priority,
            opt_out, digest, updated_at)  # fmt: skip


def household_of(row: Any) -> Household:
    return Household(
        account_id=row[0], lon=row[1], lat=row[2], address=row[3], language=row[4], sms=row[5], voice=row[6],
        app_token=row[7], priority=Priority(row[8]) if row[8] else None,
        opt_out=frozenset(Channel(c) for c in row[9].split("|") if c),
    )  # fmt: skip
