"""Columnar households, the point grid, re-import merge, and the two graph searches."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

import incident.geo.segments as segments_module
from incident.geo import LinkKind, PointGrid, RejectedRow, build_segments, isolate
from incident.households import (
    Channel,
    Household,
    HouseholdSource,
    HouseholdTable,
    Need,
    Priority,
    load_household_table,
    load_households,
    merge_households,
    read_network,
    read_valves,
)

from .conftest import SAMPLE

SECRET = "+15025550142"


def home(i: int, **changes: object) -> Household:
    values: dict[str, object] = {
        "account_id": f"A-{i}", "lon": -85.6 + i * 1e-4, "lat": 38.0, "address": f"{i} Elm St",
        "language": ["en", "es", "zh-CN"][i % 3], "sms": SECRET if i % 2 else "", "voice": "",
        "app_token": "", "priority": [None, Priority.medical][i % 2],
        "opt_out": frozenset({Channel.voice}) if i % 4 == 0 else frozenset(),
        "email": f"h{i}@example.org" if i % 3 == 0 else "",
        "needs": [frozenset(), frozenset({Need.deaf_or_hard_of_hearing}),
                  frozenset({Need.blind_or_low_vision, Need.medical_equipment})][i % 3],
        "priority_confirmed": i % 10 != 1,
    }  # fmt: skip
    values.update(changes)
    return Household(**values)  # type: ignore[arg-type]


def test_table_is_a_sequence_of_the_same_households() -> None:
    homes = [home(i) for i in range(50)]
    table = HouseholdTable.from_households(homes)
    assert len(table) == 50 and list(table) == homes
    assert table[-1] == homes[-1] and list(table[10:13]) == homes[10:13]
    assert list(table.iter_rows(np.array([7, 3], np.int64))) == [homes[7], homes[3]]
    with pytest.raises(IndexError):
        table[50]
    assert SECRET not in repr(table) and "example.org" not in repr(table)
    assert table[3].channels()[-1] is Channel.email and table[11].priority_confirmed is False


def test_grid_equals_a_full_scan_on_edges_vertices_and_strays() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 10, 20_000)
    y = rng.uniform(0, 5, 20_000)
    # Points on a lattice hit polygon edges and vertices exactly; a few far-off strays.
    gx, gy = np.meshgrid(np.arange(0, 10.01, 0.25), np.arange(0, 5.01, 0.25))
    x = np.concatenate([x, gx.ravel(), [200.0, -50.0, 3.0]])
    y = np.concatenate([y, gy.ravel(), [2.0, 2.5, 80.0]])
    grid = PointGrid.build(x, y, per_cell=3)
    assert len(grid.stray) >= 3
    holed = Polygon([(1, 1), (6, 1), (6, 4), (1, 4)], [[(2, 2), (3, 2), (3, 3), (2, 3)]])
    shapes = [
        holed,
        MultiPolygon([box(7, 0.5, 8, 1.5), box(8.5, 3, 9.75, 4.75)]),
        shapely.Point(4.1, 2.2).buffer(1.7),
        Polygon([(0, 0), (10, 5), (10, 0)]),
        Polygon([(0, 0), (250, 0), (250, 90), (0, 90)]),  # reaches the strays
        box(20, 20, 30, 30),  # nothing there
    ]
    for shape in shapes:
        expected = np.flatnonzero(shapely.intersects_xy(shape, x, y))
        got = grid.query(shapely.from_wkb(shapely.to_wkb(shape)))
        assert got.tolist() == expected.tolist(), shape.wkt[:60]
    assert len(PointGrid.build(np.empty(0), np.empty(0)).query(holed)) == 0


def test_table_load_matches_the_row_loader(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    lines = (SAMPLE / "households.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    # A repeat, a bad row, then the repeated id again.
    path.write_text("".join([*lines[:200], lines[5], "X,1,2,,en,,,,bad,\n", lines[9], *lines[200:]]))
    rows = load_households(path)
    table = load_household_table(path)
    assert list(table.households) == list(rows.households)
    assert table.rejected == rows.rejected
    assert [r.number for r in table.rejected] == [201, 202, 203]


def test_merge_updates_by_account_without_duplicates() -> None:
    existing = [home(i) for i in range(6)]
    bad = RejectedRow("line", 9, "A-99", "lat is missing")
    new_rows: list[Household | RejectedRow] = [
        home(2, address="2 Oak St"),  # updated
        home(3),  # unchanged
        home(4, language="fr"),  # updated: only the language differs
        home(7),  # added
        bad,
    ]
    merged = merge_households(existing, new_rows)
    assert merged.counts() == {"added": 1, "updated": 2, "unchanged": 1, "removed": 0, "rejected": 1}
    assert (merged.added, merged.updated, merged.rejected) == (("A-7",), ("A-2", "A-4"), (bad,))
    # Independent answer: a dict update keeps the first position and appends new ids.
    expected = {h.account_id: h for h in existing}
    expected.update({h.account_id: h for h in new_rows if isinstance(h, Household)})
    assert list(merged.households) == list(expected.values())
    full = merge_households(merged.households, [home(2), home(7)], remove_missing=True)
    assert [h.account_id for h in full.households] == ["A-2", "A-7"]
    assert full.removed == ("A-0", "A-1", "A-3", "A-4", "A-5") and full.updated == ("A-2",)
    assert merge_households([], [home(1)]).added == ("A-1",)
    with pytest.raises(ValueError, match="A-1"):
        merge_households(existing, [home(1), home(1)])


def test_merge_never_replaces_or_drops_a_self_enrolled_household() -> None:
    mine = home(1, source=HouseholdSource.self_enrolled, sms=SECRET)
    existing = [home(0), mine]
    from_file = home(1, source=HouseholdSource.file, sms="", address="elsewhere")
    merged = merge_households(existing, [from_file], remove_missing=True)
    assert list(merged.households) == [mine]
    assert merged.updated == () and merged.unchanged == 1 and merged.removed == ("A-0",)
    # The resident's own change does replace it.
    moved = home(1, source=HouseholdSource.self_enrolled, address="2 New St")
    assert list(merge_households(existing, [moved]).households) == [home(0), moved]


def test_python_search_gives_the_same_traces_as_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    net = read_network(SAMPLE / "network.inp")
    valves, _ = read_valves(SAMPLE / "valves.csv", net)
    pipes = random.Random(2).sample([k.id for k in net.links if k.kind is LinkKind.pipe], 40)
    fast = build_segments(net, valves)
    expected = [isolate(fast, p) for p in pipes]
    monkeypatch.setattr(segments_module, "HAVE_SCIPY", False)
    slow = build_segments(net, valves)
    assert set(slow.segments()) == set(fast.segments())
    assert [isolate(slow, p) for p in pipes] == expected
    assert any(t.unsupplied_nodes for t in expected)
