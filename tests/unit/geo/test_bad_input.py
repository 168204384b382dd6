"""Bad input is a clear error with a code, or an import message; never a wrong answer."""

from __future__ import annotations

import io

import numpy as np
import pytest

from incident.geo import (
    Extent,
    InvalidGeometry,
    RejectedRow,
    UnknownReference,
    Valve,
    ZoneSet,
    area_around_point,
    area_from_geojson,
    area_from_zones,
    build_segments,
    isolate,
    parse_inp,
    parse_valves_csv,
    unsourced_parts,
    zones_from_features,
)
from incident.households import (
    Household,
    build_service_area,
    households_affected,
    isolate_pipe,
    iter_households_csv,
)

# Around the sample network (lon -85.6, lat 38.04).
EXTENT = Extent.around(np.array([-85.70, -85.50]), np.array([37.98, 38.10]))
RING = [[-85.66, 38.02], [-85.55, 38.03], [-85.56, 38.09], [-85.66, 38.02]]
HEADER = "account_id,lon,lat,address,language,sms,voice,app_token,priority,opt_out\n"


def code_of(fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(InvalidGeometry) as err:
        fn(*args, **kwargs)  # type: ignore[operator]
    return err.value.code


def test_self_intersecting_drawn_area_is_refused_with_where() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    with pytest.raises(InvalidGeometry) as err:
        area_from_geojson(bowtie)
    assert err.value.code == "self_intersecting" and "[1 1]" in err.value.message
    repaired = area_from_geojson(bowtie, repair=True)
    assert repaired.geometry.area == pytest.approx(2.0)
    assert repaired.derivation.to_dict() == {"op": "drawn", "repaired": True}


@pytest.mark.parametrize(
    ("geometry", "code"),
    [
        ({"type": "Polygon", "coordinates": []}, "geometry_empty"),
        ({"type": "Polygon", "coordinates": [[]]}, "geometry_empty"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "area_empty"),
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "not_a_polygon"),
        ({"type": "Nope"}, "geometry_invalid"),
    ],
)
def test_empty_or_flat_areas_are_refused(geometry: dict[str, object], code: str) -> None:
    assert code_of(area_from_geojson, geometry) == code


def test_swapped_coordinates_are_named() -> None:
    swapped = [[lat, lon] for lon, lat in RING]
    # Near lon -85.6 the swap is a valid position (in Antarctica): only the extent tells.
    assert area_from_geojson({"type": "Polygon", "coordinates": [swapped]}).geometry.area > 0
    with pytest.raises(InvalidGeometry) as err:
        area_from_geojson({"type": "Polygon", "coordinates": [swapped]}, extent=EXTENT)
    assert err.value.code == "coordinates_swapped" and "[lon, lat]" in err.value.message
    assert area_from_geojson({"type": "Polygon", "coordinates": [RING]}, extent=EXTENT).geometry.area > 0
    # Seattle as (lat, lon): the latitude is beyond ±90, which tells without an extent.
    seattle = {
        "type": "Polygon",
        "coordinates": [[[47.6, -122.3], [47.7, -122.3], [47.7, -122.2], [47.6, -122.3]]],
    }
    assert code_of(area_from_geojson, seattle) == "coordinates_swapped"
    assert code_of(area_around_point, 38.04, -85.61, 500.0, extent=EXTENT) == "coordinates_swapped"
    assert code_of(area_around_point, 10.0, 50.0, 500.0, extent=EXTENT) == "outside_service_area"
    assert code_of(area_around_point, 500.0, 50.0, 500.0) == "not_lonlat"
    assert area_around_point(-85.61, 38.04, 500.0, extent=EXTENT).geometry.area > 0


def test_swapped_household_rows_are_rejected_with_the_reason() -> None:
    text = HEADER + "A,-85.61,38.04,,en,,,,,\nB,38.04,-85.61,,en,,,,,\nC,47.6,-122.3,,en,,,,,\n"
    rows = list(iter_households_csv(io.StringIO(text, newline=""), extent=EXTENT))
    assert isinstance(rows[0], Household)
    assert isinstance(rows[1], RejectedRow) and rows[1].number == 3 and "look swapped" in rows[1].reason
    assert isinstance(rows[2], RejectedRow) and rows[2].number == 4 and "look swapped" in rows[2].reason
    # Without the extent only the impossible latitude is caught.
    plain = list(iter_households_csv(io.StringIO(text, newline="")))
    assert isinstance(plain[1], Household) and isinstance(plain[2], RejectedRow)


def test_swapped_or_far_zones_are_rejected_on_import() -> None:
    def feature(fid: str, ring: list[list[float]]) -> dict[str, object]:
        return {
            "type": "Feature",
            "id": fid,
            "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }

    swapped = [[lat, lon] for lon, lat in RING]
    far = [[lon + 40, lat] for lon, lat in RING]
    zones, rejected = zones_from_features(
        [feature("OK", RING), feature("SW", swapped), feature("FAR", far)], "dmas", extent=EXTENT
    )
    assert [z.id for z in zones] == ["OK"]
    reasons = {r.ref: r.reason for r in rejected}
    assert "look swapped" in reasons["SW"] and "outside the service area" in reasons["FAR"]


def test_unknown_zones_are_all_named() -> None:
    zones, _ = zones_from_features(
        [
            {
                "type": "Feature",
                "id": "A",
                "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [RING]},
            }
        ],
        "x",
    )
    with pytest.raises(UnknownReference) as err:
        area_from_zones(ZoneSet.build(zones), ["A", "Y", "X"])
    assert err.value.code == "unknown_zone" and "'X', 'Y'" in err.value.message


# R1 feeds J1..J3; J8-J9-J10 is an island with no source; J7 hangs on a closed pipe only.
ISLAND = """
[JUNCTIONS]
J1 0
J2 0
J3 0
J7 0
J8 0
J9 0
J10 0
[RESERVOIRS]
R1 9
[PIPES]
P1 R1 J1 1 1 1
P2 J1 J2 1 1 1
P3 J2 J3 1 1 1
P7 J3 J7 1 1 1 0 Closed
P8 J8 J9 1 1 1
P10 J8 J10 1 1 1
[COORDINATES]
R1 -85.62 38.04
J1 -85.61 38.04
J2 -85.60 38.04
J3 -85.60 38.05
J7 -85.59 38.05
J8 -85.61 38.06
J9 -85.60 38.06
J10 -85.62 38.06
"""
ISLAND_VALVES = [Valve("V1", "P2", "J1"), Valve("V8", "P8", "J8")]


def test_parts_without_a_source_are_reported_and_never_counted_as_dry() -> None:
    net = parse_inp(ISLAND.splitlines())
    segments = build_segments(net, ISLAND_VALVES)
    assert unsourced_parts(segments) == (("J10", "J8", "J9"), ("J7",))
    # A break in the fed part: by hand, J2 and J3 lose water; the island and J7, which
    # never had any, are not "unsupplied" by this break.
    trace = isolate(segments, "P1")
    assert trace.valves_to_close == ("V1",)
    assert trace.unsupplied_nodes == ("J2", "J3")
    assert trace.unsupplied_links == ("P2", "P3")
    assert not trace.source_unknown
    # A break on the island: the valve is named, and the rest of the island is undetermined.
    trace = isolate(segments, "P8")
    assert trace.valves_to_close == ("V8",)
    assert (trace.segment_nodes, trace.segment_links) == (("J9",), ("P8",))
    assert trace.source_unknown
    assert (trace.undetermined_nodes, trace.undetermined_links) == (("J10", "J8"), ("P10",))
    assert trace.affected_links == ("P10", "P8")
    assert trace.unsupplied_nodes == ()


def test_service_area_reports_unsourced_parts_and_counts_their_households() -> None:
    net = parse_inp(ISLAND.splitlines())
    homes = [
        Household("H-ISLAND", -85.605, 38.0601, "", "en", "", "", "", None, frozenset()),
        Household("H-MAIN", -85.605, 38.0401, "", "en", "", "", "", None, frozenset()),
    ]
    service = build_service_area(homes, ZoneSet.build([]), net, ISLAND_VALVES)
    assert service.report.unsourced_parts == (("J10", "J8", "J9"), ("J7",))
    assert any("J10, J8, J9" in w and "no reservoir or tank" in w for w in service.report.warnings)
    iso = isolate_pipe(service, "P8")
    assert [service.households.households[i].account_id for i in iso.households.positions] == ["H-ISLAND"]
    assert households_affected(service.households, isolate(service.segments, "P1")).positions.tolist() == [1]  # type: ignore[arg-type]
    with pytest.raises(UnknownReference) as err:
        isolate_pipe(service, "P-NONE")
    assert err.value.code == "unknown_pipe"


def test_valve_on_a_missing_pipe_names_valve_and_line() -> None:
    net = parse_inp(ISLAND.splitlines())
    valves, rejected = parse_valves_csv(io.StringIO("valve_id,pipe,node\nV1,P2,J1\nV2,P-GONE,J1\n"), net)
    assert [v.id for v in valves] == ["V1"]
    assert str(rejected[0]) == "line 3 (V2): valve 'V2' is on pipe 'P-GONE', which is not in the network"
    with pytest.raises(UnknownReference) as err:
        build_segments(net, [Valve("V2", "P-GONE", "J1")])
    assert err.value.code == "unknown_pipe" and "V2" in err.value.message
