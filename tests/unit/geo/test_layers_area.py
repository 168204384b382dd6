from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from incident.geo import (
    FileFormatError,
    InvalidGeometry,
    UnknownReference,
    Valve,
    ZoneSet,
    area_around_point,
    area_around_trace,
    area_from_geojson,
    area_from_zones,
    build_segments,
    difference,
    isolate,
    parse_inp,
    union,
    zones_from_features,
)
from incident.households import read_layers

GEOD = pyproj.Geod(ellps="WGS84")


def feature(fid: str | None, geometry: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {"type": "Feature", "properties": {"name": f"zone {fid}"}, "geometry": geometry}
    if fid is not None:
        out["id"] = fid
    return out


SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}


def test_zones_are_read_repaired_or_rejected_by_name() -> None:
    zones, rejected = zones_from_features(
        [
            feature("PZ-1", SQUARE),
            feature("PZ-2", BOWTIE),
            feature("PZ-3", {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
            feature(None, SQUARE),
            feature("PZ-1", SQUARE),
            feature("PZ-4", {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}),
            feature("PZ-5", {"type": "Polygon", "coordinates": [[[0, 0], [500, 0], [0, 1], [0, 0]]]}),
        ],
        "pressure_zones",
    )
    assert [z.id for z in zones] == ["PZ-1", "PZ-2"]
    bowtie = zones[1]
    assert bowtie.repaired and bowtie.geometry.is_valid
    # The bow-tie is two triangles of area 1 each; make_valid keeps both.
    assert bowtie.geometry.area == pytest.approx(2.0)
    assert {r.number: r.ref for r in rejected} == {2: "PZ-3", 3: None, 4: "PZ-1", 5: "PZ-4", 6: "PZ-5"}
    assert all("pressure_zones feature" in r.reason for r in rejected)
    assert "not a polygon" in rejected[0].reason
    assert "no area" in rejected[3].reason
    assert "lon/lat" in rejected[4].reason


def test_layers_from_a_folder_and_unique_ids(tmp_path: Path) -> None:
    for name, fid in [("dmas", "D-1"), ("pressure_zones", "P-1")]:
        (tmp_path / f"{name}.geojson").write_text(
            json.dumps({"type": "FeatureCollection", "features": [feature(fid, SQUARE)]})
        )
    zones, rejected = read_layers(tmp_path)
    assert zones.layers() == {"dmas": ["D-1"], "pressure_zones": ["P-1"]} and rejected == []
    (tmp_path / "more.json").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature("D-1", SQUARE)]})
    )
    with pytest.raises(FileFormatError, match="unique across layers"):
        read_layers(tmp_path)
    with pytest.raises(UnknownReference):
        zones.get("nope")


def test_area_from_zones_is_their_union() -> None:
    zones, _ = zones_from_features([feature("A", SQUARE), feature("B", BOWTIE)], "x")
    area = area_from_zones(ZoneSet.build(zones), ["A", "B"])
    expected = shapely.union(box(0, 0, 1, 1), shapely.make_valid(Polygon(BOWTIE["coordinates"][0])))  # type: ignore[index]
    assert area.geometry.symmetric_difference(expected).area == pytest.approx(0.0, abs=1e-12)
    assert area.derivation.to_dict() == {"op": "zones", "zones": ["A", "B"]}
    with pytest.raises(UnknownReference) as err:
        area_from_zones(ZoneSet.build(zones), ["A", "C"])
    assert err.value.code == "unknown_zone"


@pytest.mark.parametrize(("lon", "lat"), [(-85.61, 38.04), (10.0, 65.0)])
def test_radius_matches_geodesic_distance(lon: float, lat: float) -> None:
    area = area_around_point(lon, lat, 500.0)
    for azimuth in range(0, 360, 15):
        for dist, inside in [(490.0, True), (510.0, False)]:
            x, y, _ = GEOD.fwd(lon, lat, azimuth, dist)
            assert area.geometry.contains(Point(x, y)) is inside, (azimuth, dist)
    assert area.derivation.to_dict() == {"op": "radius", "lon": lon, "lat": lat, "radius_m": 500.0}


def test_drawn_area_union_and_difference() -> None:
    drawn = area_from_geojson(BOWTIE, repair=True)
    assert drawn.geometry.is_valid and drawn.derivation.to_dict() == {"op": "drawn", "repaired": True}
    square = area_from_geojson(SQUARE)
    both = union(drawn, square)
    assert both.geometry.area == pytest.approx(drawn.geometry.area + square.geometry.area - 0.5)
    rest = difference(drawn, square)
    assert rest.geometry.area == pytest.approx(drawn.geometry.area - 0.5)
    assert rest.derivation.to_dict() == {
        "op": "difference",
        "parts": [{"op": "drawn", "repaired": True}, {"op": "drawn", "repaired": False}],
    }
    with pytest.raises(InvalidGeometry) as err:
        # Square less the bow-tie's left half (x <= y) less the triangle below it: nothing left.
        difference(
            square,
            drawn,
            area_from_geojson({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}),
        )
    assert err.value.code == "area_empty"
    for bad in (
        {"type": "Point", "coordinates": [0, 0]},
        {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [0, 1], [0, 0]]]},
        {"type": "Nope"},
    ):
        with pytest.raises(InvalidGeometry):
            area_from_geojson(bad)


def test_area_around_a_trace_covers_the_dry_pipes_and_no_more() -> None:
    lines = ["[JUNCTIONS]", "J1 0", "J2 0", "J3 0", "[RESERVOIRS]", "R1 9", "[PIPES]"]
    lines += ["P1 R1 J1 1 1 1", "P2 J1 J2 1 1 1", "P3 J2 J3 1 1 1", "[COORDINATES]"]
    lines += ["R1 -85.62 38.04", "J1 -85.61 38.04", "J2 -85.60 38.04", "J3 -85.60 38.05"]
    net = parse_inp(lines)
    trace = isolate(build_segments(net, [Valve("V", "P2", "J1")]), "P3")
    assert trace.affected_links == ("P2", "P3")
    area = area_around_trace(net, trace, buffer_m=50.0)
    # Midpoints of the dry pipes inside; 40 m off a dry pipe inside, 60 m off outside.
    for lon, lat in [(-85.605, 38.04), (-85.60, 38.045)]:
        assert area.geometry.contains(Point(lon, lat))
        for azimuth, dist, inside in (
            [(0, 40, True), (180, 60, False)] if lat == 38.04 else [(90, 40, True), (270, 60, False)]
        ):
            x, y, _ = GEOD.fwd(lon, lat, azimuth, dist)
            assert area.geometry.contains(Point(x, y)) is inside
    assert not area.geometry.contains(Point(-85.615, 38.04))  # the supplied pipe P1
    assert area.derivation.to_dict()["valves_to_close"] == ["V"]
    assert np.isclose(area.geometry.bounds[1], 38.04 - 50 / 111_000, atol=2e-5)
