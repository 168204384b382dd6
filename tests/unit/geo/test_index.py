from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pyproj
import pytest
from shapely.geometry import LineString, Point

from incident.geo import (
    Valve,
    area_around_point,
    area_from_geojson,
    build_segments,
    isolate,
    parse_inp,
    union,
)
from incident.households import (
    Household,
    HouseholdIndex,
    Priority,
    attach_households,
    count_by_language,
    count_by_priority,
    households_affected,
    households_in_area,
    households_on_links,
    iter_households,
)

LANGS = ["en", "en", "en", "es", "zh-CN", "vi"]
PRIOS: list[Priority | None] = [None] * 12 + list(Priority)


def households(n: int, seed: int = 0) -> list[Household]:
    rng = random.Random(seed)
    return [
        Household(
            f"H{i}", rng.uniform(-85.7, -85.5), rng.uniform(38.0, 38.1), "", rng.choice(LANGS),
            "", "", "", rng.choice(PRIOS), frozenset(),
        )
        for i in range(n)
    ]  # fmt: skip


RING = [[-85.66, 38.02], [-85.55, 38.03], [-85.56, 38.09], [-85.62, 38.08], [-85.66, 38.02]]
HOLE = [[-85.61, 38.05], [-85.59, 38.05], [-85.59, 38.06], [-85.61, 38.05]]


def test_households_in_area_equal_a_naive_loop() -> None:
    homes = households(5000)
    index = HouseholdIndex.build(homes)
    drawn = area_from_geojson({"type": "Polygon", "coordinates": [RING, HOLE]})
    area = union(drawn, area_around_point(-85.69, 38.09, 1500))
    got = households_in_area(index, area)
    naive = [i for i, h in enumerate(homes) if area.geometry.covers(Point(h.lon, h.lat))]
    assert got.positions.tolist() == naive
    assert 0 < len(naive) < len(homes)
    sel = index.all()
    assert count_by_priority(index, got) == {
        (p.value if p else "none"): sum(homes[i].priority == p for i in naive) for p in [*Priority, None]
    }
    assert count_by_language(index, got) == dict(Counter(homes[i].language for i in naive).most_common())
    assert sum(count_by_priority(index, sel).values()) == len(homes)


def test_a_household_on_the_boundary_is_inside() -> None:
    homes = [*households(3), Household("edge", -85.6, 38.05, "", "en", "", "", "", None, frozenset())]
    square = {
        "type": "Polygon",
        "coordinates": [[[-85.6, 38.0], [-85.5, 38.0], [-85.5, 38.1], [-85.6, 38.1], [-85.6, 38.0]]],
    }
    got = households_in_area(HouseholdIndex.build(homes), area_from_geojson(square))
    assert 3 in got.positions.tolist()


def test_iterator_gives_priority_first_in_file_order() -> None:
    homes = households(300, seed=2)
    index = HouseholdIndex.build(homes)
    out = list(iter_households(index, index.all()))
    rank = {Priority.medical: 0, Priority.critical_facility: 1, Priority.vulnerable: 2, None: 3}
    expected = sorted(homes, key=lambda h: rank[h.priority])  # sorted() is stable
    assert [h.account_id for h in out] == [h.account_id for h in expected]


NET = """
[JUNCTIONS]
J1 0
J2 0
J3 0
[RESERVOIRS]
R1 9
[PIPES]
P1 R1 J1 1 1 1
P2 J1 J2 1 1 1
P3 J2 J3 1 1 1
[PUMPS]
U1 J3 R1 HEAD c
[COORDINATES]
R1 -85.62 38.04
J1 -85.61 38.04
J2 -85.60 38.04
J3 -85.60 38.05
"""


def test_attachment_is_the_nearest_pipe_within_reach() -> None:
    net = parse_inp(NET.splitlines())
    homes = households(400, seed=3)
    got = attach_households(net, homes, max_distance_m=300.0)
    # Independent check in another projection (UTM 16N) by brute force over the pipes.
    utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32616", always_xy=True)
    pipes = [k for k in net.links if k.kind.value == "pipe"]
    lines = [LineString([utm.transform(*p) for p in k.path]) for k in pipes]
    attached = 0
    for h, pipe, dist in zip(homes, got.pipe, got.distance_m, strict=True):
        point = Point(utm.transform(h.lon, h.lat))
        distances = [line.distance(point) for line in lines]
        best = int(np.argmin(distances))
        if distances[best] < 299.0:
            assert pipe == pipes[best].id and dist == pytest.approx(distances[best], rel=2e-3, abs=0.05)
            attached += 1
        elif distances[best] > 301.0:
            assert pipe is None and dist is None
    assert 0 < attached < len(homes)
    assert set(got.unattached) == {i for i, p in enumerate(got.pipe) if p is None}
    assert "U1" not in got.pipe  # a pump is no service connection


def test_households_affected_by_an_isolation() -> None:
    net = parse_inp(NET.splitlines())
    homes = households(400, seed=4)
    attachment = attach_households(net, homes, 500.0)
    index = HouseholdIndex.build(homes, net, attachment)
    # Worked by hand: segments {R1, J1, P1, U1} and {J2, J3, P2, P3}; the pump U1 draws
    # from J3, which is cut out, so it runs dry too (no household hangs on a pump).
    trace = isolate(build_segments(net, [Valve("V", "P2", "J1"), Valve("W", "U1", "J3")]), "P3")
    assert (trace.valves_to_close, trace.affected_links) == (("V", "W"), ("P2", "P3", "U1"))
    got = households_affected(index, trace)
    assert got.positions.tolist() == [i for i, p in enumerate(attachment.pipe) if p in ("P2", "P3")]
    assert len(got) > 0
    assert (households_on_links(index, ["P1"]) | got).positions.tolist() == sorted(
        i for i, p in enumerate(attachment.pipe) if p in ("P1", "P2", "P3")
    )
    assert len(index.grid.order) + len(index.grid.stray) == len(homes)
