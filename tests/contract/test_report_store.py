"""The report side of the store contract: idempotent ingest, correlation steps, triage plans."""

from __future__ import annotations

import asyncio

import pytest

from incident.core import domain
from incident.core.domain import Declaration, Kind, Severity, Utility
from incident.core.errors import Conflict, IllegalTransition, NotFound
from incident.incidents.service import verify_incident
from incident.reports.model import ReportStatus
from incident.store import Store
from incident.store.ports import AppendTo, SetReport
from tests.support.rows import PLAN, rep


async def test_new_reports_wait_in_triage_and_duplicates_change_nothing(store: Store) -> None:
    first = await store.ingest_reports([rep("a"), rep("b", lon=-80.0)], PLAN)
    assert [s.report.report_id for s in first.stored] == ["a", "b"]
    assert {s.status for s in first.stored} == {ReportStatus.unassigned}
    again = await store.ingest_reports([rep("a"), rep("c", lon=-70.0), rep("c", lon=-70.0)], PLAN)
    assert [s.report.report_id for s in again.stored] == ["c"]
    assert sorted(again.duplicates) == ["a", "c"]
    listed = await store.list_reports([ReportStatus.unassigned])
    assert sorted(s.report.report_id for s in listed) == ["a", "b", "c"]
    got = await store.get_report("a")
    assert got is not None and got.origin == "utility.reports/0/a" and got.report == rep("a").report
    assert await store.get_report("nope") is None


async def test_a_gas_leak_declares_and_nearby_reports_join(store: Store) -> None:
    result = await store.ingest_reports(
        [rep("leak-1", Kind.gas_leak, Severity.high), rep("leak-2", Kind.gas_leak, minutes=5, lat=38.041)],
        PLAN,
    )
    assert [s.status for s in result.stored] == [ReportStatus.linked, ReportStatus.linked]
    incident_ids = {s.incident_id for s in result.stored}
    assert len(incident_ids) == 1
    [incident_id] = incident_ids
    assert incident_id is not None
    incident = await store.get_incident(incident_id)
    assert incident is not None and incident.owner is None and incident.reports == 2
    events = await store.timeline(incident_id)
    assert [e.type for e in events] == ["declared", "report_linked", "report_linked"]
    assert events[0].data["auto_declared"]["report_id"] == "leak-1"
    assert (
        events[2].data["report_id"] == "leak-2"
        and "m and 5 min from report leak-1" in events[2].data["reason"]
    )
    assert (await verify_incident(store, incident_id)).ok
    # A replay of the same batch changes nothing.
    replay = await store.ingest_reports([rep("leak-1", Kind.gas_leak, Severity.high)], PLAN)
    assert replay.stored == [] and replay.duplicates == ["leak-1"]
    assert len(await store.timeline(incident_id)) == 3


async def test_reports_join_an_open_incident_but_not_a_closed_one(store: Store) -> None:
    opened = await store.ingest_reports([rep("lab", Kind.contamination, Severity.critical)], PLAN)
    incident_id = opened.stored[0].incident_id
    assert incident_id is not None
    inc = await store.get_incident(incident_id)
    assert inc is not None and inc.awaiting_confirmation
    joined = await store.ingest_reports([rep("lab-2", Kind.contamination, Severity.low, minutes=30)], PLAN)
    assert joined.stored[0].incident_id == incident_id
    await store.append(
        incident_id, lambda s: domain.change_status(s, domain.Status.cancelled, "alice", "lab error")
    )
    later = await store.ingest_reports([rep("lab-3", Kind.contamination, Severity.low, minutes=40)], PLAN)
    assert later.stored[0].status == ReportStatus.unassigned


async def test_a_plan_is_all_or_nothing(store: Store) -> None:
    await store.ingest_reports([rep("x")], PLAN)
    inc = (await store.create_incident(lambda _id: domain.declare(
        Declaration(kind=Kind.main_break, utility=Utility.water, title="t", severity=Severity.high), "alice",
        owner="alice"))).incident  # fmt: skip
    await store.append(inc.id, lambda s: domain.change_status(s, domain.Status.cancelled, "alice", None))
    steps = [
        SetReport("x", ReportStatus.linked, incident_ref=inc.id, note="n", triaged_by="alice"),
        AppendTo(inc.id, lambda s: domain.link_report(s, {"report_id": "x"}, "alice", "r")),
    ]
    with pytest.raises(IllegalTransition):
        await store.apply_plan(steps)
    got = await store.get_report("x")
    assert got is not None and got.status == ReportStatus.unassigned  # the first step was undone
    with pytest.raises(NotFound):
        await store.apply_plan([SetReport("ghost", ReportStatus.dismissed)])
    with pytest.raises(Conflict):
        await store.apply_plan(
            [SetReport("x", ReportStatus.dismissed, expect=frozenset({ReportStatus.linked}))]
        )


async def test_concurrent_ingest_of_the_same_reports_stores_each_once(store: Store) -> None:
    batch = [rep(f"r{i}", lon=-85.0 + i) for i in range(40)]
    results = await asyncio.gather(*(store.ingest_reports(batch, PLAN) for _ in range(4)))
    assert sum(len(r.stored) for r in results) == 40
    assert sum(len(r.duplicates) for r in results) == 120
