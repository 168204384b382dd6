"""The SQLite fan-out statements find deliveries by their primary key. By the state index,
the planner would walk every delivery in that state (thousands, mid fan-out) for each one
named: correct, and a hundred times slower. Plans are behaviour a schema or statement
change can break silently, so they are pinned here."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from incident.core.clock import ManualClock
from incident.deliveries.records import DeliveryChange
from incident.deliveries.states import DeliveryState
from incident.settings import StoreSettings
from incident.store import open_store
from incident.store.common import change_groups
from incident.store.sqlite import _QUEUE, _QUEUE_PICK, _change_sql

S = DeliveryState
AT = "2026-11-25T08:00:00.000000+00:00"


@pytest.fixture
async def db(tmp_path: Path, clock: ManualClock) -> Path:
    path = tmp_path / "plans.db"
    store = open_store(StoreSettings(url=f"sqlite:///{path}"), clock)
    await store.open()  # the schema, as migrated
    await store.close()
    return path


def plan(path: Path, sql: str) -> str:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", [None] * sql.count("?")).fetchall()
    finally:
        conn.close()
    return " / ".join(str(r[3]) for r in rows)


def changes() -> list[str]:
    sending = frozenset({S.sending})
    groups = change_groups(
        [
            DeliveryChange(delivery_id="d1", expect=sending, to=S.accepted, carrier_sid="SM1"),
            DeliveryChange(
                delivery_id="d2", expect=sending, to=S.retry, error_code="20429", next_attempt_at=AT
            ),
            DeliveryChange(delivery_id="d3", expect=frozenset({S.queued}), to=S.sending, count_attempt=True),
        ],
        AT,
    )
    return [sql for group in groups for sql in _change_sql(group)]


@pytest.mark.parametrize("statement", [_QUEUE_PICK, _QUEUE, *changes()])
def test_fan_out_statements_look_deliveries_up_by_id(db: Path, statement: str) -> None:
    found = plan(db, statement)
    assert "deliveries USING INDEX sqlite_autoindex_deliveries_1 (delivery_id=?)" in found, found
    assert "deliveries_due_in_order" not in found and "deliveries_by_incident" not in found, found
