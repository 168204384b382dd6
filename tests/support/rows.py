"""Rows for the stores: an incident, a notice and its deliveries, reports to ingest, and a
saboteur of PostgreSQL connections."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import asyncpg

from incident.core import domain
from incident.core.domain import Declaration, Kind, Severity, Utility
from incident.deliveries.records import Delivery, Notice
from incident.deliveries.states import DeliveryState
from incident.intake.triage import ingest_planner
from incident.reports.model import Location, Report
from incident.settings import CorrelationSettings
from incident.store import Store
from incident.store.ports import IncomingReport

S = DeliveryState
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
AT = "2026-11-22T08:00:00.000000+00:00"


async def incident(store: Store) -> str:
    appended = await store.create_incident(lambda _id: domain.declare(
        Declaration(kind=Kind.main_break, utility=Utility.water, title="t", severity=Severity.high), "alice",
        owner="alice"))  # fmt: skip
    return appended.incident.id


def notice(incident_id: str, status: str = "planned") -> Notice:
    return Notice(notice_id=f"{incident_id}-N1", incident_id=incident_id, template="boil_water",
                  channels=["sms", "voice"], status=status, created_by="alice", created_at=AT,
                  counts={"households": 3}, context={"drill": False})  # fmt: skip


def delivery(incident_id: str, seq: int, channel: str = "sms", address: str | None = None) -> Delivery:
    return Delivery(delivery_id=f"{incident_id}-N1:{seq}", notice_id=f"{incident_id}-N1", incident_id=incident_id,
                    seq=seq, channel=channel, address=address or f"+1502555{seq:04d}", account_id=f"A{seq}",
                    language="en", priority_rank=seq % 4, state=S.planned, updated_at=AT)  # fmt: skip


PLAN = ingest_planner(CorrelationSettings())


def rep(
    rid: str,
    kind: Kind = Kind.low_pressure,
    severity: Severity = Severity.medium,
    lon: float = -85.61,
    lat: float = 38.04,
    minutes: int = 0,
) -> IncomingReport:
    utility = Utility.gas if kind == Kind.gas_leak else Utility.water
    report = Report(
        report_id=rid,
        kind=kind,
        utility=utility,
        source="scada",
        severity=severity,
        observed_at=T0 + timedelta(minutes=minutes),
        location=Location(lon, lat),
        summary=f"{rid} seen",
    )
    return IncomingReport(report, f"utility.reports/0/{rid}")


async def terminate_backends(url: str, app: str, stop: asyncio.Event) -> int:
    """Terminate the store's backends every few tens of milliseconds until ``stop``."""
    conn = await asyncpg.connect(url)
    killed = 0
    try:
        while not stop.is_set():
            killed += await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database() AND application_name = $1",
                app,
            )
            await asyncio.sleep(random.uniform(0.02, 0.08))
    finally:
        await conn.close()
    return killed
