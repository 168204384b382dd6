"""Affected areas over HTTP, on the sample service area (WNTR's ky4 network in Kentucky)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import Point, shape

from tests.functional.conftest import Api

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "sample"


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
    api: Api, sample_points: list[tuple[str, Point]], zones: dict[str, Any]
) -> None:
    inc = await api.declare()
    path = f"/api/incidents/{inc['id']}/area"
    zone_id = next(z for z in zones if z.startswith("PZ"))
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
    api: Api, sample_points: list[tuple[str, Point]], zones: dict[str, Any]
) -> None:
    inc = await api.declare()
    path = f"/api/incidents/{inc['id']}/area"
    zone_id = next(z for z in zones if z.startswith("PZ"))
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
