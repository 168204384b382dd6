"""The residents' side, pure parts: the point check, the budget per address, languages, numbers."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from incident.api.endpoint import parse_number
from incident.api.public import ClientLimiter, accepted_languages, client_address, overall, trusted_networks
from incident.core.domain import Kind, Status, Utility
from incident.geo.projection import LocalMetric
from incident.notices.public import Answer, ProjectedKey, PublicIncident, area_shape, check_point

BOX: dict[str, Any] = {
    "type": "Polygon",
    "coordinates": [[[-85.56, 38.02], [-85.53, 38.02], [-85.53, 38.05], [-85.56, 38.05], [-85.56, 38.02]]],
}
#: Two squares 1 km apart, one with a hole.
MULTI: dict[str, Any] = {
    "type": "MultiPolygon",
    "coordinates": [
        [[[0.0, 0.0], [0.01, 0.0], [0.01, 0.01], [0.0, 0.01], [0.0, 0.0]],
         [[0.004, 0.004], [0.006, 0.004], [0.006, 0.006], [0.004, 0.006], [0.004, 0.004]]],
        [[[0.02, 0.0], [0.03, 0.0], [0.03, 0.01], [0.02, 0.01], [0.02, 0.0]]],
    ],
}  # fmt: skip


def _incident(id_: str, area: dict[str, Any] | None) -> PublicIncident:
    return PublicIncident(
        id=id_, kind=Kind.main_break, utility=Utility.water, status=Status.active, area=area,
        area_description={}, etr=None, start=None, end=None, households=3,
        declared_at="2026-11-22T08:00:00+00:00", updated_at="2026-11-22T08:00:00+00:00", advice=None, seq=1,
    )  # fmt: skip


def _check(
    area: dict[str, object], lon: float, lat: float, near_m: float = 250.0
) -> tuple[Answer, float | None]:
    incident = _incident("INC-2026-000001", area)
    geometry = area_shape(area)
    assert geometry is not None
    [found] = check_point([incident], {incident.id: geometry}, lon, lat, near_m)
    return found.answer, found.distance_m


def test_inside_near_and_far() -> None:
    assert _check(BOX, -85.545, 38.035) == (Answer.affected, 0.0)
    assert _check(BOX, -85.53, 38.035)[0] is Answer.affected  # on the edge counts as inside
    answer, distance = _check(BOX, -85.5285, 38.035)
    assert answer is Answer.near and distance is not None and 125 < distance < 140  # 0.0015° lon here
    assert _check(BOX, -85.527, 38.035)[0] is Answer.not_affected  # ~260 m
    assert _check(BOX, -85.527, 38.035, near_m=300)[0] is Answer.near
    assert _check(BOX, 10.0, 50.0) == (Answer.not_affected, None)


def test_holes_and_parts_of_a_multipolygon() -> None:
    assert _check(MULTI, 0.005, 0.005)[0] is Answer.near  # in the hole: ~110 m from its edge
    assert _check(MULTI, 0.025, 0.005)[0] is Answer.affected
    assert _check(MULTI, 0.015, 0.005)[0] is Answer.not_affected  # between the parts: ~550 m


@pytest.mark.parametrize("lat", [0.0, 38.0, 60.0, 75.0])
def test_the_quick_far_test_never_hides_a_near_point(lat: float) -> None:
    """Points just inside near_m of the area (measured exactly) are "near" at any latitude."""
    area: dict[str, Any] = {"type": "Polygon", "coordinates": [[[10.0, lat], [10.01, lat], [10.01, lat + 0.01],
                                                [10.0, lat + 0.01], [10.0, lat]]]}  # fmt: skip
    metric = LocalMetric.near(10.0, lat)
    projected = metric.project(shape(area))
    for bearing in range(0, 360, 45):
        # Around the box at 1.5 times its half-size from its centre, along every bearing.
        x0, y0 = projected.centroid.x, projected.centroid.y
        half = max(projected.bounds[2] - projected.bounds[0], projected.bounds[3] - projected.bounds[1]) / 2
        r = half * 1.5
        x, y = x0 + r * math.cos(math.radians(bearing)), y0 + r * math.sin(math.radians(bearing))
        distance = projected.distance(Point(x, y))
        [[lon, lat_]] = metric.lonlat(np.array([[x, y]]))
        answer, found = _check(area, float(lon), float(lat_), near_m=distance + 5)
        assert answer is Answer.near and found is not None and abs(found - distance) < 2


def test_the_overall_answer_is_the_worst() -> None:
    inc = _incident("INC-2026-000001", BOX)
    geometry = area_shape(BOX)
    assert geometry is not None
    checks = check_point([inc, _incident("INC-2026-000002", None)], {inc.id: geometry}, -85.545, 38.035, 250)
    assert [c.incident.id for c in checks] == [inc.id]  # no area, no answer
    assert overall(checks) is Answer.affected and overall([]) is Answer.not_affected


def test_an_area_that_is_not_one_is_left_out() -> None:
    assert area_shape(None) is None and area_shape({}) is None
    assert area_shape({"type": "Polygon", "coordinates": []}) is None
    assert area_shape({"type": "Nonsense"}) is None


def test_a_budget_per_address_per_minute() -> None:
    now = [0.0]
    limiter = ClientLimiter(2, max_clients=3, now=lambda: now[0])
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 60.0]
    assert limiter.wait_s("b") == 0.0  # another address has its own
    now[0] = 59.5
    assert limiter.wait_s("a") == 1.0  # at least a second
    now[0] = 60.0
    assert limiter.wait_s("a") == 0.0  # a new minute
    assert ClientLimiter(0).wait_s("a") == 0.0  # 0: no limit


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    limiter = ClientLimiter(2, now=lambda: 0.0)
    assert limiter.wait_s("2001:db8:1:2::1") == limiter.wait_s("2001:db8:1:2:ffff::9") == 0.0
    assert limiter.wait_s("2001:db8:1:2::abcd") == 60.0  # the same /64: one budget
    assert limiter.wait_s("2001:db8:1:3::1") == 0.0  # the next /64 is another household
    assert limiter.wait_s("::ffff:198.51.100.7") == limiter.wait_s("198.51.100.7") == 0.0
    assert limiter.wait_s("198.51.100.7") == 60.0  # IPv4 written as IPv6 is the same address


def test_a_flood_of_addresses_neither_grows_the_table_nor_frees_a_blocked_client() -> None:
    now = [0.0]
    limiter = ClientLimiter(2, max_clients=3, now=lambda: now[0])
    assert [limiter.wait_s("198.51.100.1") for _ in range(3)] == [0.0, 0.0, 60.0]
    for n in range(100):
        now[0] = n * 0.1
        limiter.wait_s(f"10.0.{n}.1")
        assert len(limiter._windows) <= 3
    assert limiter.wait_s("198.51.100.1") > 0  # still blocked: the flood did not reset it
    now[0] = 60.0
    assert limiter.wait_s("198.51.100.1") == 0.0  # its minute is over


def test_the_client_behind_our_proxy() -> None:
    trusted = trusted_networks(["10.0.0.1"])
    assert client_address("198.51.100.7", ["1.2.3.4"], trusted) == "198.51.100.7"  # not via our proxy
    assert client_address("10.0.0.1", ["6.6.6.6, 203.0.113.9"], trusted) == "203.0.113.9"
    assert client_address("10.0.0.1", ["203.0.113.9, 10.0.0.1"], trusted) == "203.0.113.9"
    assert client_address("10.0.0.1", [], trusted) == "10.0.0.1"
    assert client_address(None, [], trusted_networks([])) == "unknown"


def test_proxies_by_network_and_hops_with_ports() -> None:
    trusted = trusted_networks(["10.0.0.0/8", "fd00::/8"])
    assert client_address("10.9.8.7", ["203.0.113.9, 10.1.1.1"], trusted) == "203.0.113.9"
    assert client_address("fd00::5", ["203.0.113.9:51234"], trusted) == "203.0.113.9"
    assert client_address("fd00::5", ["[2001:db8::7]:443, 10.2.2.2:80"], trusted) == "2001:db8::7"
    assert client_address("::ffff:10.0.0.3", ["2001:db8::8"], trusted) == "2001:db8::8"
    assert client_address("10.0.0.3", ["not-an-address"], trusted) == "unknown"
    assert client_address("11.0.0.1", ["203.0.113.9"], trusted) == "11.0.0.1"  # not ours


def test_accept_language_order() -> None:
    assert accepted_languages("fr;q=0.5, zh-CN, en;q=0.8") == ["zh-CN", "en", "fr"]
    assert accepted_languages("*, en;q=0") == []
    assert accepted_languages("x" * 10_000) == ["x" * 500]
    assert accepted_languages("en;q=nan, de;q=1e999, zh") == ["zh"]


@pytest.mark.parametrize(
    ("raw", "value"),
    [("38.035", 38.035), ("-85.5", -85.5), ("+1", 1.0), (".5", 0.5), ("1e-3", 0.001), ("5.", 5.0),
     ("nan", None), ("inf", None), ("1e999", None), ("0x10", None), ("1_000", None), ("", None),
     (" 1", None), ("1" * 41, None), ("--1", None), ("1e", None)],
)  # fmt: skip
def test_numbers_as_a_person_types_them(raw: str, value: float | None) -> None:
    assert parse_number(raw) == value


def test_an_area_is_projected_once_per_neighbourhood_and_again_when_it_changes() -> None:
    geometry = area_shape(BOX)
    assert geometry is not None
    projected: dict[ProjectedKey, BaseGeometry] = {}
    inc = _incident("INC-2026-000001", BOX)
    first = check_point([inc], {inc.id: geometry}, -85.5285, 38.035, 250, projected)
    again = check_point([inc], {inc.id: geometry}, -85.5284, 38.0351, 250, projected)
    assert len(projected) == 1 and first[0].answer is again[0].answer is Answer.near
    moved = msgspec.structs.replace(inc, seq=2)
    check_point([moved], {inc.id: geometry}, -85.5285, 38.035, 250, projected)
    assert len(projected) == 2  # a new timeline position: projected afresh, never a stale area
