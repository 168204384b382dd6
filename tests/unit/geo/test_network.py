from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyproj
import pytest

from incident.geo import (
    FileFormatError,
    LinkKind,
    NodeKind,
    ProjectionError,
    network_from_features,
    parse_inp,
    parse_valves_csv,
)
from incident.households import read_network

SMALL = """
[TITLE]
hand-made ; with a comment

[JUNCTIONS]
;ID  Elev Demand
 J1  10   1   ; first
 J2  10   1
 J3  10   1
[RESERVOIRS]
 R1  50
[TANKS]
 T1  40 1 0 5 10 0
[PIPES]
 P1  R1  J1  100 6 100 0 Open
 P2  J1  J2  100 6 100 0 CV
 P3  J2  J3  100 6 100 0 Closed
 P4  J3  T1  100 6 100 0
 P5  J1  J3  100 6 100 0 Closed
[PUMPS]
 PU1 J3  J2  HEAD c1
[VALVES]
 V1  J1  J2  6  PRV 30 0
 V2  J2  J3  6  TCV 30 0
[STATUS]
 V2  Closed
[CONTROLS]
 LINK P5 OPEN AT TIME 2
[COORDINATES]
 J1  -85.60  38.00
 J2  -85.59  38.00
 J3  -85.58  38.00
 R1  -85.61  38.00
 T1  -85.57  38.00
[VERTICES]
 P1  -85.605 38.001
 P1  -85.603 38.002
[END]
"""


def test_small_inp_topology_and_flags() -> None:
    net = parse_inp(SMALL.splitlines())
    assert {n.id: n.kind for n in net.nodes} == {
        "J1": NodeKind.junction,
        "J2": NodeKind.junction,
        "J3": NodeKind.junction,
        "R1": NodeKind.reservoir,
        "T1": NodeKind.tank,
    }
    kinds = {k.id: k.kind for k in net.links}
    assert kinds["PU1"] is LinkKind.pump and kinds["V1"] is LinkKind.valve and kinds["P1"] is LinkKind.pipe
    flags = {k.id: (k.one_way, k.closed) for k in net.links}
    assert flags == {
        "P1": (False, False),
        "P2": (True, False),  # check valve
        "P3": (False, True),  # closed, no control opens it
        "P4": (False, False),
        "P5": (False, False),  # closed, but a control opens it
        "PU1": (True, False),
        "V1": (True, False),  # PRV
        "V2": (False, True),  # closed in [STATUS]
    }
    p1 = net.link("P1")
    assert p1.path == ((-85.61, 38.0), (-85.605, 38.001), (-85.603, 38.002), (-85.60, 38.0))
    assert (p1.start, p1.end) == ("R1", "J1")


def test_projected_coordinates_are_converted() -> None:
    to_ft = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3089", always_xy=True)
    lines = []
    section = ""
    for line in SMALL.splitlines():
        if line.startswith("["):
            section = line
        parts = line.split()
        if section in ("[COORDINATES]", "[VERTICES]") and len(parts) == 3:
            x, y = to_ft.transform(float(parts[1]), float(parts[2]))
            line = f"{parts[0]} {x:.4f} {y:.4f}"
        lines.append(line)
    net = parse_inp(lines, "EPSG:3089")
    plain = parse_inp(SMALL.splitlines())
    for a, b in zip(net.links, plain.links, strict=True):
        assert np.allclose(a.path, b.path, atol=1e-7)
    with pytest.raises(ProjectionError, match="CRS"):
        parse_inp(lines)  # feet read as lon/lat
    with pytest.raises(ProjectionError, match="unknown CRS"):
        parse_inp(lines, "EPSG:999999")


def test_missing_coordinates_and_unknown_nodes_fail() -> None:
    with pytest.raises(FileFormatError, match="J9"):
        parse_inp(["[JUNCTIONS]", "J9 1", "[COORDINATES]"])
    with pytest.raises(FileFormatError, match="unknown node 'J2'"):
        parse_inp(["[JUNCTIONS]", "J1 1", "[PIPES]", "P J1 J2 1 1 1", "[COORDINATES]", "J1 0 0"])


def test_geojson_network_matches_the_inp_one() -> None:
    net = parse_inp(SMALL.splitlines())
    features = [
        {
            "type": "Feature",
            "properties": {"name": n.id, "node_type": n.kind.value.capitalize()},
            "geometry": {"type": "Point", "coordinates": [n.lon, n.lat]},
        }
        for n in net.nodes
    ]
    for k in net.links:
        properties: dict[str, object] = {"id": k.id, "kind": k.kind.value}
        if k.id != "P4":  # this one is joined by position
            properties |= {"start_node_name": k.start, "end_node_name": k.end}
        properties["status"] = (
            "Closed" if k.closed else ("CV" if k.one_way and k.kind is LinkKind.pipe else "")
        )
        if k.kind is LinkKind.valve:
            properties["valve_type"] = "PRV" if k.one_way else "TCV"
        features.append(
            {
                "type": "Feature",
                "properties": properties,
                "geometry": {"type": "LineString", "coordinates": k.path},
            }
        )
    again = network_from_features(features)
    assert again.nodes == net.nodes
    assert {(k.id, k.start, k.end, k.one_way, k.closed, k.path) for k in again.links} == {
        (k.id, k.start, k.end, k.one_way, k.closed, k.path) for k in net.links
    }


def test_geojson_lines_without_nodes_get_junctions_at_shared_ends() -> None:
    def line(i: str, *pts: tuple[float, float]) -> dict[str, object]:
        return {"type": "Feature", "id": i, "geometry": {"type": "LineString", "coordinates": list(pts)}}

    net = network_from_features(
        [line("a", (0, 0), (1, 0)), line("b", (1, 0), (1, 1)), line("c", (1, 0), (2, 0))]
    )
    assert len(net.nodes) == 4
    middle = {net.link(k).end if k == "a" else net.link(k).start for k in "abc"}
    assert len(middle) == 1


def test_read_network_accepts_latin1(tmp_path: Path) -> None:
    path = tmp_path / "n.inp"
    path.write_bytes(SMALL.replace("J1", "J\xe91").encode("latin-1"))
    assert "J\xe91" in read_network(path).node_index


def test_valves_csv_rejects_with_reasons() -> None:
    net = parse_inp(SMALL.splitlines())
    text = "valve_id,pipe,node\nA,P1,J1\nB,P1,J2\nC,PX,J1\nA,P2,J1\nD,P1,J1\n,P2,J1\nE,P2\nF,P2,J2\n"
    valves, rejected = parse_valves_csv(io.StringIO(text), net)
    assert [(v.id, v.pipe, v.node) for v in valves] == [("A", "P1", "J1"), ("F", "P2", "J2")]
    reasons = {r.number: r.reason for r in rejected}
    assert set(reasons) == {3, 4, 5, 6, 7, 8}
    assert "not an end of pipe" in reasons[3]
    assert "not in the network" in reasons[4]
    assert "earlier" in reasons[5]
    assert "already on pipe" in reasons[6]
    assert "missing" in reasons[7]
    assert "fields" in reasons[8]
    with pytest.raises(FileFormatError):
        parse_valves_csv(io.StringIO("id,pipe\n"), net)


@pytest.mark.parametrize(("name", "crs"), [("Net1.inp", None), ("Net3.inp", None), ("ky4.inp", "EPSG:3089")])
def test_inp_parser_agrees_with_wntr(wntr_networks: Path, name: str, crs: str | None) -> None:
    import wntr

    path = wntr_networks / name
    wn = wntr.network.WaterNetworkModel(str(path))
    net = read_network(path, crs)
    assert {n.id for n in net.nodes} == set(wn.node_name_list)
    assert {(k.id, k.start, k.end) for k in net.links} == {
        (k, wn.get_link(k).start_node_name, wn.get_link(k).end_node_name) for k in wn.link_name_list
    }
    assert {n.id for n in net.nodes if n.kind is NodeKind.reservoir} == set(wn.reservoir_name_list)
    assert {n.id for n in net.nodes if n.kind is NodeKind.tank} == set(wn.tank_name_list)
    assert {k.id for k in net.links if k.kind is LinkKind.pump} == set(wn.pump_name_list)
    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True) if crs else None
    for node_id in wn.node_name_list[:50]:
        x, y = wn.get_node(node_id).coordinates
        if to_lonlat is not None:
            x, y = to_lonlat.transform(x, y)
        node = net.node(node_id)
        assert (node.lon, node.lat) == pytest.approx((x, y), abs=1e-9)
