"""Reports as they arrive: good and malformed bodies, reports put straight into an app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from incident.core.domain import Kind, Severity, Utility
from incident.core.metrics import Metrics
from incident.incidents.live import LiveHub
from incident.incidents.service import IncidentService
from incident.intake.ingest import Batch, Ingestor
from incident.intake.triage import TriageService, ingest_planner
from incident.keys import STORE, TRIAGE
from incident.reports.model import Location, RejectCode, Report
from incident.settings import CorrelationSettings, Settings
from incident.store import Store
from incident.store.ports import IncomingReport
from tests.support.app import Api

GOOD = {
    "report_id": "lims-2026-11-22-0042",
    "kind": "contamination",
    "utility": "water",
    "source": "lims",
    "observed_at": "2026-11-22T08:15:00+08:00",
    "location": {"lon": -85.61, "lat": 38.04},
    "asset": {"type": "pipe", "id": "P-500"},
    "severity": "high",
    "summary": "E. coli positive at sample tap ST-17",
    "details": {},
}


def with_fields(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


MALFORMED: list[tuple[str, bytes, RejectCode]] = [
    ("not-utf8", b'{"report_id": "\xff\xfe"}', RejectCode.not_utf8),
    ("not-json", b'{"report_id": ', RejectCode.not_json),
    ("plain-text", b"pressure low at PZ-3", RejectCode.not_json),
    ("array", b'[{"report_id": "x"}]', RejectCode.not_an_object),
    ("null", b"null", RejectCode.not_an_object),
    ("missing-kind", with_fields(kind=...), RejectCode.missing_field),
    ("missing-id", with_fields(report_id=...), RejectCode.missing_field),
    ("unknown-field", with_fields(colour="red"), RejectCode.unknown_field),
    ("bad-kind", with_fields(kind="flood"), RejectCode.bad_enum),
    ("bad-utility", with_fields(utility="electricity"), RejectCode.bad_enum),
    ("bad-severity", with_fields(severity="urgent"), RejectCode.bad_enum),
    ("bad-timestamp", with_fields(observed_at="yesterday"), RejectCode.bad_timestamp),
    ("naive-timestamp", with_fields(observed_at="2026-11-22T08:15:00"), RejectCode.bad_timestamp),
    (
        "lon-out-of-range",
        with_fields(location={"lon": -185.6, "lat": 38.0}),
        RejectCode.coordinates_out_of_range,
    ),
    (
        "lat-out-of-range",
        with_fields(location={"lon": -85.6, "lat": 98.0}),
        RejectCode.coordinates_out_of_range,
    ),
    ("no-location-no-asset", with_fields(location=..., asset=...), RejectCode.no_location_or_asset),
    ("wrong-type", with_fields(source=7), RejectCode.wrong_type),
    ("empty-id", with_fields(report_id=""), RejectCode.out_of_range),
    ("oversized", with_fields(summary="x" * 1999, details={"blob": "y" * 70_000}), RejectCode.oversized),
    ("year-one", with_fields(observed_at="0001-01-01T00:00:00+08:00"), RejectCode.bad_timestamp),
    ("nul-in-id", with_fields(report_id="lims\u0000-1"), RejectCode.control_character),
    ("nul-in-asset", with_fields(asset={"type": "pipe", "id": "P\u00005"}), RejectCode.control_character),
]


def report(rid: str, **fields: Any) -> bytes:
    body = {
        "report_id": rid, "kind": "low_pressure", "utility": "water", "source": "scada",
        "observed_at": "2026-11-22T08:15:00+00:00", "location": {"lon": -85.61, "lat": 38.04},
        "severity": "medium", "summary": f"pressure low ({rid})", **fields,
    }  # fmt: skip
    return orjson.dumps(body)


class Harness:
    """The real ingest loop (consumer group, producer, store, triage) outside the HTTP app."""

    def __init__(self, settings: Settings, store: Store, bootstrap: str) -> None:
        self.settings = settings
        self.store = store
        self.bootstrap = bootstrap
        self.metrics = Metrics()
        self.hub = LiveHub(self.metrics, 10_000)
        self.triage = TriageService(IncidentService(store, self.hub, self.metrics))

    @contextlib.asynccontextmanager
    async def ingestor(
        self, after_store: Callable[[Batch], Awaitable[None]] | None = None
    ) -> AsyncIterator[tuple[Ingestor, asyncio.Task[None]]]:
        ing = Ingestor(self.settings, self.bootstrap, self.store, self.triage, self.metrics, embedded=False,
                       after_store=after_store)  # fmt: skip
        await ing.start()
        task = asyncio.create_task(ing.run())
        try:
            yield ing, task
        finally:
            ing.request_stop()
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BaseException):
                await task
            await ing.stop()

    async def stored(self) -> int:
        return len(await self.store.list_reports(None, limit=100_000))


def total(counter: Any) -> float:
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


async def settled(harness: Harness, consumed: int) -> bool:
    """``consumed`` messages read and each one's fate settled (stored, duplicate or dead letter)."""
    m = harness.metrics
    settled = total(m.reports_stored) + total(m.reports_duplicate) + total(m.reports_dead_lettered)
    return total(m.reports_consumed) >= consumed and settled >= consumed


async def put_reports(api: Api, *reports: Report) -> None:
    """Reports stored and published as the ingest consumer would, without the broker."""
    app = api.client.app
    result = await app[STORE].ingest_reports([IncomingReport(r, "test") for r in reports],
                                             ingest_planner(CorrelationSettings()))  # fmt: skip
    app[TRIAGE].publish(result.appended, result.stored)


def call_centre_report(
    rid: str, kind: Kind = Kind.low_pressure, severity: Severity = Severity.medium, lon: float = -85.61
) -> Report:
    utility = Utility.gas if kind == Kind.gas_leak else Utility.water
    return Report(report_id=rid, kind=kind, utility=utility, source="call-centre", severity=severity,
                  observed_at=datetime(2026, 11, 22, 8, 0, tzinfo=UTC), location=Location(lon, 38.04),
                  summary=f"customer reports {kind.value} ({rid})")  # fmt: skip
