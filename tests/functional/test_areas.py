"""Affected areas over HTTP, on the sample service area (WNTR's ky4 network in Kentucky)."""

from __future__ import annotations

import asyncio
import csv
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
import shapely
from aiohttp.web import Application
from shapely.geometry import Point, shape

import incident.api.areas
import incident.incidents.areas
from incident.core.clock import ManualClock
from incident.settings import BUNDLED_DIR, Settings
from tests.support.app import Api, Client, serve
from tests.support.env import Tokens

SAMPLE = BUNDLED_DIR / "sample"


@pytest.fixture(scope="module")
def sample_points() -> list[tuple[str, Point]]:
    with (SAMPLE / "households.csv").open(encoding="utf-8") as f:
        return [(r["account_id"], Point(float(r["lon"]), float(r["lat"]))) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def zones() -> dict[str, Any]:
    out = {}
    for path in (SAMPLE / "layers").glob("*.geojson"):
        for feature in json.loads(path.read_text())["features"]:
            out[feature["id"]] = shape(feature["geometry"])
    return out


@pytest.fixture(scope="module")
def pressure_zone(zones: dict[str, Any]) -> str:
    """A pressure zone of the sample area."""
    return next(z for z in zones if z.startswith("PZ"))


async def _api_with(
    settings: Settings, aiohttp_client: Callable[[Application], Awaitable[Client]], clock: ManualClock,
    tokens: Tokens, **area: Any,
) -> Api:  # fmt: skip
    changed = msgspec.structs.replace(settings, area=msgspec.structs.replace(settings.area, **area))
    return Api(await serve(aiohttp_client, changed, clock=clock), tokens)


@pytest.fixture
async def limited_api(
    settings: Settings, aiohttp_client: Callable[[Application], Awaitable[Client]], clock: ManualClock,
    tokens: Tokens,
) -> Api:  # fmt: skip
    """Small limits, so that a body under the tests' 4 KiB can pass them."""
    return await _api_with(settings, aiohttp_client, clock, tokens, max_vertices=30, max_parts=3)


@pytest.fixture
async def slow_api(
    settings: Settings, aiohttp_client: Callable[[Application], Awaitable[Client]], clock: ManualClock,
    tokens: Tokens,
) -> Api:  # fmt: skip
    return await _api_with(settings, aiohttp_client, clock, tokens, compute_timeout_s=0.3)


def inside(points: list[tuple[str, Point]], geometry: Any) -> set[str]:
    """The naive answer: test every household against the polygon, boundary included."""
    return {aid for aid, p in points if geometry.covers(p)}


BOX = {
    "type": "Polygon",
    "coordinates": [[[-85.56, 38.02], [-85.53, 38.02], [-85.53, 38.05], [-85.56, 38.05], [-85.56, 38.02]]],
}


async def test_a_drawn_area_counts_the_households_inside(
    api: Api, sample_points: list[tuple[str, Point]]
) -> None:
    inc = await api.declare()
    status, result = await api.call("PUT", f"/api/incidents/{inc['id']}/area", json={"geometry": BOX})
    assert status == 200, result
    expected = inside(sample_points, shape(BOX))
    assert 0 < result["households"] == len(expected)
    assert sum(result["by_language"].values()) == len(expected)
    assert result["parts"][0]["method"] == "drawn"
    _, got = await api.call("GET", f"/api/incidents/{inc['id']}")
    assert got["households"] == len(expected) and got["area"]["type"] == "Polygon"
    _, timeline = await api.call("GET", f"/api/incidents/{inc['id']}/timeline")
    [changed] = [e for e in timeline["events"] if e["type"] == "area_changed"]
    assert (changed["data"]["households_before"], changed["data"]["households_after"]) == (0, len(expected))


async def test_declare_with_an_area(api: Api, sample_points: list[tuple[str, Point]]) -> None:
    inc = await api.declare(area=BOX)
    assert inc["households"] == len(inside(sample_points, shape(BOX)))
    assert inc["last_seq"] == 2  # declared, then area_changed, in one transaction


async def test_zones_and_add_remove(
    api: Api, sample_points: list[tuple[str, Point]], zones: dict[str, Any], pressure_zone: str
) -> None:
    zone_id = pressure_zone
    path = f"/api/incidents/{(await api.declare())['id']}/area"
    status, result = await api.call("PUT", path, json={"zone": zone_id})
    assert status == 200 and result["households"] == len(inside(sample_points, zones[zone_id]))
    status, result = await api.call("PUT", path, json={"geometry": BOX, "op": "remove"})
    expected = inside(sample_points, zones[zone_id]) - inside(sample_points, shape(BOX))
    assert status == 200 and result["households"] == len(expected)
    assert [p["op"] for p in result["parts"]] == ["add", "remove"]


async def test_isolating_a_broken_pipe(api: Api) -> None:
    inc = await api.declare()
    status, result = await api.call(
        "PUT", f"/api/incidents/{inc['id']}/area", json={"isolate": {"pipe": "P-10"}}
    )
    assert status == 200, result
    assert result["valves_to_close"] and "P-10" in result["affected_pipes"]
    status, pipe = await api.call("GET", "/api/network/pipes/P-10")
    assert status == 200 and pipe["properties"]["if_broken"]["valves_to_close"] == result["valves_to_close"]
    # Households counted by their service connection: the pipe view agrees with the area.
    assert pipe["properties"]["if_broken"]["households"] <= result["households"]
    status, fc = await api.call("GET", f"/api/incidents/{inc['id']}/area", who="rita")
    roles = [f["properties"]["role"] for f in fc["features"]]
    assert roles[0] == "area" and roles.count("valve_to_close") == len(result["valves_to_close"])
    assert roles.count("affected_pipe") == len(result["affected_pipes"])
    valve = next(f for f in fc["features"] if f["properties"]["role"] == "valve_to_close")
    assert valve["geometry"]["type"] == "Point" and -86 < valve["geometry"]["coordinates"][0] < -85


async def test_a_gas_leak_radius(api: Api, sample_points: list[tuple[str, Point]]) -> None:
    inc = await api.declare(kind="gas_leak", utility="gas", title="Gas smell on Walnut Rd")
    body = {"around": {"lon": -85.545, "lat": 38.035, "radius_m": 300}}
    status, result = await api.call("PUT", f"/api/incidents/{inc['id']}/area", json=body)
    assert status == 200, result
    # Independent check in metres (UTM 16N) against the households' points.
    import pyproj

    to_m = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32616", always_xy=True).transform
    cx, cy = to_m(-85.545, 38.035)
    near = {
        aid
        for aid, p in sample_points
        if ((to_m(p.x, p.y)[0] - cx) ** 2 + (to_m(p.x, p.y)[1] - cy) ** 2) ** 0.5 < 299
    }
    far = {
        aid
        for aid, p in sample_points
        if ((to_m(p.x, p.y)[0] - cx) ** 2 + (to_m(p.x, p.y)[1] - cy) ** 2) ** 0.5 > 301
    }
    assert len(near) <= result["households"] <= len(sample_points) - len(far)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[38.02, -85.56], [38.02, -85.53], [38.05, -85.53], [38.02, -85.56]]],
                }
            },
            "coordinates_swapped",
        ),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[-85.56, 38.02], [-85.53, 38.05], [-85.53, 38.02], [-85.56, 38.05], [-85.56, 38.02]]
                    ],
                }
            },
            "self_intersecting",
        ),
        ({"zone": "PZ-NOPE"}, "unknown_zone"),
        ({"isolate": {"pipe": "P-NOPE"}}, "unknown_pipe"),
        ({"zone": "PZ-01", "isolate": {"pipe": "P-10"}}, "invalid_request"),
        ({}, "invalid_request"),
        ({"around": {"lon": -85.5, "lat": 38.0, "radius_m": -5}}, None),
    ],
    ids=["swapped", "bow-tie", "unknown-zone", "unknown-pipe", "two-ways", "none", "negative-radius"],
)
async def test_bad_areas_get_a_clear_4xx_and_change_nothing(
    api: Api, body: dict[str, Any], code: str | None
) -> None:
    inc = await api.declare()
    status, err = await api.call("PUT", f"/api/incidents/{inc['id']}/area", json=body)
    assert status == 422, err
    if code:
        assert err["error"]["code"] == code, err
    assert err["error"]["message"]
    _, again = await api.call("GET", f"/api/incidents/{inc['id']}")
    assert again["last_seq"] == 1 and again["area_parts"] == []


async def test_a_bow_tie_can_be_repaired_on_request(api: Api) -> None:
    inc = await api.declare()
    bow = {
        "type": "Polygon",
        "coordinates": [
            [[-85.56, 38.02], [-85.53, 38.05], [-85.53, 38.02], [-85.56, 38.05], [-85.56, 38.02]]
        ],
    }
    status, result = await api.call(
        "PUT", f"/api/incidents/{inc['id']}/area", json={"geometry": bow, "repair": True}
    )
    assert status == 200 and shapely.is_valid(shape(result["area"]))


async def test_only_the_owner_or_command_sets_the_area(api: Api) -> None:
    inc = await api.declare(who="alice")
    path = f"/api/incidents/{inc['id']}/area"
    assert (await api.call("PUT", path, who="bob", json={"geometry": BOX}))[0] == 403
    assert (await api.call("PUT", path, who="rita", json={"geometry": BOX}))[0] == 403
    assert (await api.call("PUT", path, who="carol", json={"geometry": BOX}))[0] == 200


async def test_layers_and_pipes(api: Api, zones: dict[str, Any]) -> None:
    status, fc = await api.call("GET", "/api/layers", who="rita")
    assert status == 200 and {f["properties"]["id"] for f in fc["features"]} == set(zones)
    status, err = await api.call("GET", "/api/network/pipes/P-NOPE")
    assert status == 404 and "no pipe P-NOPE" in err["error"]["message"]


async def test_add_remove_add_keeps_polygon_and_households_in_step(
    api: Api, sample_points: list[tuple[str, Point]], zones: dict[str, Any], pressure_zone: str
) -> None:
    zone_id = pressure_zone
    path = f"/api/incidents/{(await api.declare())['id']}/area"
    small = {
        "type": "Polygon",
        "coordinates": [
            [[-85.55, 38.03], [-85.54, 38.03], [-85.54, 38.04], [-85.55, 38.04], [-85.55, 38.03]]
        ],
    }
    await api.call("PUT", path, json={"zone": zone_id})
    await api.call("PUT", path, json={"geometry": BOX, "op": "remove"})
    status, result = await api.call("PUT", path, json={"geometry": small, "op": "add"})
    assert status == 200, result
    expected = (inside(sample_points, zones[zone_id]) - inside(sample_points, shape(BOX))) | inside(
        sample_points, shape(small)
    )
    assert result["households"] == len(expected)
    # The stored polygon holds exactly those households (boundary included).
    assert inside(sample_points, shape(result["area"])) == expected


@pytest.mark.parametrize(
    ("radius", "code"),
    [(2e7, "radius_too_large"), (1e308, "radius_too_large"), (60_000, "radius_too_large"), (0, "bad_radius")],
    ids=["2e7", "1e308", "60km", "zero"],
)
async def test_a_radius_must_fit_the_service_area(api: Api, radius: float, code: str) -> None:
    inc = await api.declare(kind="gas_leak", utility="gas", title="Gas smell on Walnut Rd")
    body = {"around": {"lon": -85.545, "lat": 38.035, "radius_m": radius}}
    status, err = await api.call("PUT", f"/api/incidents/{inc['id']}/area", json=body)
    assert status == 422, err
    assert err["error"]["code"] == code, err
    if code == "radius_too_large":  # the message names the limit, the service area's size
        assert "at most" in err["error"]["message"] and " m " in err["error"]["message"]
    _, again = await api.call("GET", f"/api/incidents/{inc['id']}")
    assert again["last_seq"] == 1 and again["area_parts"] == []
    # The whole service area is still within reach of one radius.
    body["around"]["radius_m"] = 20_000
    assert (await api.call("PUT", f"/api/incidents/{inc['id']}/area", json=body))[0] == 200


def _ring(n: int) -> list[list[float]]:
    """A closed ring of ``n`` distinct vertices around the middle of BOX."""
    import math

    pts = [[-85.545 + 0.01 * math.cos(2 * math.pi * i / n), 38.035 + 0.01 * math.sin(2 * math.pi * i / n)]
           for i in range(n)]  # fmt: skip
    return [*pts, pts[0]]


@pytest.mark.parametrize(
    ("geometry", "code"),
    [
        ({"type": "Polygon", "coordinates": [_ring(40)]}, "area_too_complex"),
        (
            {"type": "MultiPolygon", "coordinates": [[_ring(12)], [_ring(12)], [_ring(12)]]},
            "area_too_complex",
        ),
        ({"type": "Polygon", "coordinates": [[_ring(4)]]}, "geometry_invalid"),  # nested one level too deep
        ({"type": "Polygon", "coordinates": [[[-85.5, 38.0, 1, 2, 3]] * 4]}, "geometry_invalid"),
        ({"type": "Polygon", "coordinates": [[["-85.5", "38.0"]] * 4]}, "geometry_invalid"),
        (
            {
                "type": "Polygon",
                "coordinates": [[[-85.5, 1e308], [-85.4, 38.0], [-85.4, 38.1], [-85.5, 1e308]]],
            },
            "not_lonlat",
        ),
        (
            {"type": "GeometryCollection", "geometries": [{"type": "Polygon", "coordinates": [_ring(4)]}]},
            "not_a_polygon",
        ),
    ],
    ids=[
        "vertices",
        "multi-vertices",
        "too-deep",
        "long-position",
        "text-position",
        "huge-lat",
        "collection",
    ],
)
async def test_a_drawn_area_is_bounded(limited_api: Api, geometry: dict[str, Any], code: str) -> None:
    inc = await limited_api.declare()
    status, err = await limited_api.call(
        "PUT", f"/api/incidents/{inc['id']}/area", json={"geometry": geometry}
    )
    assert status == 422, err
    assert err["error"]["code"] == code, err
    # The same checks on a declaration with an area.
    body = {"kind": "main_break", "utility": "water", "title": "t", "severity": "high", "area": geometry}
    status, err = await limited_api.call("POST", "/api/incidents", json=body)
    assert status == 422 and err["error"]["code"] == code, err


async def test_an_area_has_a_bounded_number_of_parts(limited_api: Api) -> None:
    inc = await limited_api.declare()
    path = f"/api/incidents/{inc['id']}/area"
    assert (await limited_api.call("PUT", path, json={"geometry": BOX}))[0] == 200
    for _ in range(2):  # limit 3 parts
        status, _ = await limited_api.call("PUT", path, json={"zone": "PZ-01", "op": "add"})
        assert status == 200
    status, err = await limited_api.call("PUT", path, json={"zone": "PZ-01", "op": "remove"})
    assert status == 422 and err["error"]["code"] == "area_too_many_parts", err
    assert "3" in err["error"]["message"]
    status, _ = await limited_api.call("PUT", path, json={"zone": "PZ-01"})  # replace starts afresh
    assert status == 200


async def test_the_pipe_look_up_takes_valves_that_cannot_be_closed(api: Api) -> None:
    _, plain = await api.call("GET", "/api/network/pipes/P-10")
    seized = plain["properties"]["if_broken"]["valves_to_close"][0]
    inc = await api.declare()
    body = {"isolate": {"pipe": "P-10", "inoperable": [seized]}}
    status, area = await api.call("PUT", f"/api/incidents/{inc['id']}/area", json=body)
    assert status == 200, area
    assert seized not in area["valves_to_close"]
    status, pipe = await api.call("GET", f"/api/network/pipes/P-10?inoperable={seized}", who="rita")
    assert status == 200, pipe
    if_broken = pipe["properties"]["if_broken"]
    assert if_broken["valves_to_close"] == area["valves_to_close"]
    assert if_broken["affected_pipes"] == len(area["affected_pipes"])
    assert if_broken["inoperable"] == [seized]
    # Repeated parameter: two valves that cannot be closed.
    second = area["valves_to_close"][0]
    body = {"isolate": {"pipe": "P-10", "inoperable": [seized, second]}}
    _, area2 = await api.call("PUT", f"/api/incidents/{inc['id']}/area", json=body)
    _, pipe2 = await api.call("GET", f"/api/network/pipes/P-10?inoperable={seized}&inoperable={second}")
    assert pipe2["properties"]["if_broken"]["valves_to_close"] == area2["valves_to_close"]
    status, err = await api.call("GET", "/api/network/pipes/P-10?inoperable=V-NOPE")
    assert status == 422 and err["error"]["code"] == "unknown_valve", err


class Stuck:
    """Stands in for a geometry function that takes very long: it blocks its thread until
    released (at most 10 s, so a test of the old code fails instead of hanging)."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.loop = asyncio.get_running_loop()
        self.entered = asyncio.Event()
        self.release = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.loop.call_soon_threadsafe(self.entered.set)
        self.release.wait(10)
        return self.real(*args, **kwargs)


async def _while_stuck(api: Api, stuck: Stuck, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Send the slow request; while its geometry is stuck, other requests must answer."""
    slow = asyncio.create_task(api.call(method, path, json=body))
    try:
        async with asyncio.timeout(10):
            await stuck.entered.wait()
        status, _ = await api.call("GET", "/healthz", who=None)
        assert status == 200 and not stuck.release.is_set()
        status, listed = await api.call("GET", "/api/incidents", who="rita")
        assert status == 200 and listed["incidents"] and not stuck.release.is_set()
        async with asyncio.timeout(10):
            answer = await slow
        assert not stuck.release.is_set()  # it answered while the geometry was still at work
        return answer
    finally:
        stuck.release.set()
        slow.cancel()


async def test_a_slow_area_is_cut_off_and_the_service_keeps_answering(
    slow_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = Stuck(incident.incidents.areas.area_around_point)
    monkeypatch.setattr(incident.incidents.areas, "area_around_point", stuck)
    inc = await slow_api.declare(kind="gas_leak", utility="gas", title="Gas smell on Walnut Rd")
    body = {"around": {"lon": -85.545, "lat": 38.035, "radius_m": 300}}
    status, err = await _while_stuck(slow_api, stuck, "PUT", f"/api/incidents/{inc['id']}/area", body)
    assert status == 422 and err["error"]["code"] == "area_too_complex", err
    assert "0.3 s" in err["error"]["message"]
    _, again = await slow_api.call("GET", f"/api/incidents/{inc['id']}")
    assert again["last_seq"] == 1 and again["area_parts"] == []


async def test_a_slow_pipe_look_up_is_cut_off_and_the_service_keeps_answering(
    slow_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = Stuck(incident.api.areas.isolate)
    monkeypatch.setattr(incident.api.areas, "isolate", stuck)
    await slow_api.declare()
    status, err = await _while_stuck(slow_api, stuck, "GET", "/api/network/pipes/P-10")
    assert status == 422 and err["error"]["code"] == "area_too_complex", err
