"""Every list that can grow pages the same way over HTTP: ``?limit=&cursor=``, answered with
``next_cursor`` (null on the last page). Following the cursors gives every row once, in order,
even while new rows arrive; a client that passes no cursor gets the first page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from incident.deliveries.records import Notice
from incident.keys import STORE
from incident.store.ports import PutNotice
from tests.support.app import Api
from tests.support.ingest import call_centre_report as report
from tests.support.ingest import put_reports as ingest
from tests.support.rows import delivery


async def _follow(
    api: Api, path: str, key: str, limit: int, between: Callable[[], Awaitable[None]] | None = None
) -> list[Any]:
    """Every row of a paged list, following next_cursor; ``between`` runs after each page."""
    rows: list[Any] = []
    cursor: str | None = None
    pages = 0
    sep = "&" if "?" in path else "?"
    while True:
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, body = await api.call("GET", url)
        assert status == 200, body
        assert len(body[key]) <= limit
        rows += body[key]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return rows
        assert pages < 50
        if between is not None:
            await between()


async def test_incidents_page_while_new_ones_are_declared(api: Api) -> None:
    ids = [(await api.declare(title=f"Main break {n}"))["id"] for n in range(7)]
    rows = await _follow(api, "/api/incidents?status=all", "incidents", 3, lambda: api.declare())
    assert [i["id"] for i in rows] == list(reversed(ids))  # newest first; the new ones are above
    status, first = await api.call("GET", "/api/incidents?status=all")  # an old client: the first page
    assert status == 200 and len(first["incidents"]) == 9 and first["next_cursor"] is None


async def test_reports_page_past_one_page_without_repeats(api: Api) -> None:
    await ingest(api, *(report(f"cc-{n:02d}", lon=-85.0 + n / 10) for n in range(12)))
    arrivals = iter(range(100))

    async def arrive() -> None:
        await ingest(api, report(f"late-{next(arrivals)}", lon=-80.0))

    rows = await _follow(api, "/api/reports?status=all", "reports", 5, arrive)
    got = [r["report"]["report_id"] for r in rows]
    assert len(got) == len(set(got))
    assert set(got) >= {f"cc-{n:02d}" for n in range(12)}
    # A cursor of one list is refused by another (it is not a position there).
    _, page = await api.call("GET", "/api/reports?status=all&limit=5")
    status, err = await api.call("GET", f"/api/incidents?cursor={page['next_cursor']}")
    assert status == 422 and err["error"]["code"] == "invalid_cursor"


async def test_the_json_timeline_pages_and_csv_stays_whole(api: Api) -> None:
    inc = await api.declare()
    base = f"/api/incidents/{inc['id']}"
    for n in range(6):
        status, _ = await api.call("POST", base + "/notes", json={"text": f"note {n}"})
        assert status == 201

    async def note() -> None:
        await api.call("POST", base + "/notes", json={"text": "while paging"})

    events = await _follow(api, base + "/timeline", "events", 3, note)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 7
    status, csv = await api.call("GET", base + "/timeline?format=csv&limit=1")
    assert status == 200 and len(csv.strip().splitlines()) == 1 + len(seqs)  # the header, every event


async def test_deliveries_page_with_the_cursor_and_the_older_after(api: Api) -> None:
    inc = await api.declare()
    iid = inc["id"]
    store = api.client.app[STORE]
    notice = Notice(notice_id=f"{iid}-N1", incident_id=iid, template="main_break", channels=["sms"],
                    status="approved", created_by="alice", created_at="2026-11-22T08:15:00.000000+00:00")  # fmt: skip
    await store.apply_plan([PutNotice(notice)])
    await store.add_deliveries([delivery(iid, n) for n in range(1, 26)])
    rows = await _follow(api, f"/api/incidents/{iid}/deliveries", "rows", 10)
    assert sorted(r["delivery_id"] for r in rows) == sorted(f"{iid}-N1:{n}" for n in range(1, 26))
    assert [r["delivery_id"] for r in rows] == sorted(r["delivery_id"] for r in rows)
    # Older clients page with after/next_after, which name the same places.
    status, page = await api.call("GET", f"/api/incidents/{iid}/deliveries?limit=10")
    assert status == 200 and page["next_after"] == page["rows"][-1]["delivery_id"]
    status, then = await api.call(
        "GET", f"/api/incidents/{iid}/deliveries?limit=10&after={page['next_after']}"
    )
    assert [r["delivery_id"] for r in then["rows"]] == [r["delivery_id"] for r in rows[10:20]]
