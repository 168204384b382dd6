"""Paging the lists that grow, on every store: a page goes on after the row the previous page
ended with, in one stable order, so rows arriving meanwhile are neither repeated nor skipped."""

from __future__ import annotations

from datetime import timedelta

from incident.core import domain
from incident.core.clock import ManualClock
from incident.core.domain import Declaration, Kind, Severity, Status, Utility
from incident.reports.model import ReportStatus
from incident.store import Store
from tests.support.rows import PLAN, rep

DECL = Declaration(kind=Kind.main_break, utility=Utility.water, title="Main break", severity=Severity.high)


async def _declare(store: Store) -> str:
    appended = await store.create_incident(lambda _id: domain.declare(DECL, "alice", owner="alice"))
    return appended.incident.id


async def test_incidents_page_newest_first_without_repeats_or_gaps(store: Store, clock: ManualClock) -> None:
    before = []
    for i in range(7):
        before.append(await _declare(store))
        if i % 3 == 2:  # some share a declaration time: the id breaks the tie
            clock.advance(timedelta(seconds=1))
    expected = list(reversed(before))  # newest first
    seen: list[str] = []
    after: tuple[str, str] | None = None
    while True:
        page = await store.list_incidents(None, 3, after)
        seen += [i.id for i in page]
        if len(page) < 3:
            break
        after = (page[-1].declared_at, page[-1].id)
        clock.advance(timedelta(seconds=1))
        await _declare(store)  # newer than everything paged: at the top, behind the reader
    assert seen == expected
    # The status filter pages the same way.
    closed = await store.list_incidents({Status.closed}, 3)
    assert closed == []
    third_last = await store.get_incident(seen[-3])
    assert third_last is not None
    declared = await store.list_incidents({Status.declared}, 5, (third_last.declared_at, third_last.id))
    assert [i.id for i in declared] == seen[-2:]


async def test_reports_page_newest_first_without_repeats_or_gaps(store: Store, clock: ManualClock) -> None:
    # Far apart, so that no report joins another's incident: all stay unassigned.
    ids = [f"r{i:02d}" for i in range(8)]
    for n, rid in enumerate(ids):
        await store.ingest_reports([rep(rid, lon=-85.0 + n, lat=30.0 + n)], PLAN)
        if n % 2:  # pairs share a receiving time: the report id breaks the tie
            clock.advance(timedelta(seconds=1))
    seen: list[str] = []
    after: tuple[str, str] | None = None
    for arrival in range(10):
        page = await store.list_reports({ReportStatus.unassigned}, 3, after)
        seen += [r.report.report_id for r in page]
        if len(page) < 3:
            break
        after = (page[-1].received_at, page[-1].report.report_id)
        clock.advance(timedelta(seconds=1))
        await store.ingest_reports([rep(f"new{arrival}", lon=-60.0 - arrival, lat=10.0)], PLAN)
    assert len(seen) == len(set(seen)) == len(ids)
    assert seen == sorted(ids, key=lambda r: (-(int(r[1:]) // 2), r))
    everything = await store.list_reports(None, 1000)
    assert [r.report.report_id for r in everything][-len(ids) :] == seen


async def test_timeline_pages_by_sequence_while_events_arrive(store: Store) -> None:
    iid = await _declare(store)
    for n in range(5):
        await store.append(iid, lambda s, n=n: domain.add_note(s, f"note {n}", "alice"))
    seen: list[int] = []
    after = 0
    while True:
        page = await store.timeline(iid, after, 2)
        seen += [e.seq for e in page]
        if len(page) < 2:
            break
        after = page[-1].seq
        if len(seen) == 2:  # a new event lands at the end, where the reader is going
            await store.append(iid, lambda s: domain.add_note(s, "late", "bob"))
    assert seen == list(range(1, 8))
