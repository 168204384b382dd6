"""Valve segments and isolation traces, checked against hand-worked networks and WNTR."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from incident.geo import LinkKind, Network, UnknownReference, Valve, build_segments, isolate, parse_inp
from incident.households import read_network


def network(pipes: str, sources: str = "R1", extra: str = "") -> Network:
    """Pipes as 'id a b [status]' lines; every node sits on a made-up position."""
    nodes: list[str] = []
    rows = [line.split() for line in pipes.strip().splitlines()]
    for row in rows:
        nodes += [n for n in row[1:3] if n not in nodes]
    reservoirs = [n for n in nodes if n.startswith("R")]
    tanks = [n for n in nodes if n.startswith("T")]
    junctions = [n for n in nodes if n not in reservoirs and n not in tanks]
    text = ["[JUNCTIONS]", *(f"{n} 0" for n in junctions), "[RESERVOIRS]", *(f"{n} 9" for n in reservoirs)]
    text += ["[TANKS]", *(f"{n} 0 1 0 2 5 0" for n in tanks), "[PIPES]"]
    text += [
        f"{r[0]} {r[1]} {r[2]} 100 6 100 0 {r[3] if len(r) > 3 else 'Open'}" for r in rows if r[0][0] == "P"
    ]
    text += ["[PUMPS]", *(f"{r[0]} {r[1]} {r[2]} HEAD c" for r in rows if r[0][0] == "U")]
    text += extra.splitlines()
    text += ["[COORDINATES]", *(f"{n} {i * 0.001} 0" for i, n in enumerate(nodes))]
    return parse_inp(text)


CHAIN = """
P1 R1 J1
P2 J1 J2
P3 J2 J3
P4 J3 J4
P5 J2 J5
"""
CHAIN_VALVES = [
    Valve("V1", "P2", "J1"),
    Valve("V2", "P3", "J3"),
    Valve("V3", "P5", "J5"),
    Valve("V4", "P4", "J3"),
]
CHAIN_VALVES.append(Valve("V5", "P4", "J4"))


def test_segments_of_a_hand_worked_network() -> None:
    segs = build_segments(network(CHAIN), CHAIN_VALVES)
    assert set(segs.segments()) == {
        (frozenset({"R1", "J1"}), frozenset({"P1"})),
        (frozenset({"J2"}), frozenset({"P2", "P3", "P5"})),
        (frozenset({"J3"}), frozenset()),
        (frozenset({"J4"}), frozenset()),
        (frozenset({"J5"}), frozenset()),
        (frozenset(), frozenset({"P4"})),  # valved at both ends: a segment of its own
    }


def test_isolation_closes_the_boundary_and_finds_the_dry_part() -> None:
    trace = isolate(build_segments(network(CHAIN), CHAIN_VALVES), "P3")
    assert trace.valves_to_close == ("V1", "V2", "V3")
    assert (trace.segment_nodes, trace.segment_links) == (("J2",), ("P2", "P3", "P5"))
    assert trace.unsupplied_nodes == ("J3", "J4", "J5")
    assert trace.unsupplied_links == ("P4",)
    assert trace.affected_links == ("P2", "P3", "P4", "P5")


def test_a_second_source_keeps_its_side_supplied() -> None:
    trace = isolate(build_segments(network(CHAIN + "P6 J5 T1"), CHAIN_VALVES), "P3")
    assert trace.unsupplied_nodes == ("J3", "J4")
    assert trace.unsupplied_links == ("P4",)


def test_a_pipe_valved_at_both_ends_is_cut_out_alone() -> None:
    trace = isolate(build_segments(network(CHAIN), CHAIN_VALVES), "P4")
    assert trace.valves_to_close == ("V4", "V5")
    assert (trace.segment_nodes, trace.segment_links) == ((), ("P4",))
    assert trace.unsupplied_nodes == ("J4",)


@pytest.mark.parametrize(
    ("stuck", "close", "nodes", "links", "dry_nodes"),
    [
        # V1 stuck: the cut reaches back to the reservoir; J5 keeps the tank.
        (["V1"], ("V2", "V3"), ("J1", "J2", "R1"), ("P1", "P2", "P3", "P5"), ("J3", "J4")),
        # V2 stuck: J3 joins the cut and V4 must close instead.
        (["V2"], ("V1", "V3", "V4"), ("J2", "J3"), ("P2", "P3", "P5"), ("J4",)),
        # Both: the next valves out.
        (["V1", "V2"], ("V3", "V4"), ("J1", "J2", "J3", "R1"), ("P1", "P2", "P3", "P5"), ("J4",)),
    ],
)
def test_inoperable_valves_widen_the_segment(
    stuck: list[str],
    close: tuple[str, ...],
    nodes: tuple[str, ...],
    links: tuple[str, ...],
    dry_nodes: tuple[str, ...],
) -> None:
    trace = isolate(build_segments(network(CHAIN + "P6 J5 T1"), CHAIN_VALVES), "P3", stuck)
    assert trace.valves_to_close == close
    assert trace.inoperable_passed == tuple(sorted(stuck))
    assert (trace.segment_nodes, trace.segment_links) == (nodes, links)
    assert trace.unsupplied_nodes == dry_nodes


PUMPED = """
P1 R1 J1
{link}
P2 J2 J3
P3 T1 J3
"""


@pytest.mark.parametrize(
    ("link", "dry_nodes", "dry_links"),
    [
        ("U1 J1 J2", ("J1",), ("U1",)),  # the pump cannot push water back to J1
        ("U1 J2 J1", (), ()),  # the tank feeds J1 through the pump
        ("P9 J1 J2 CV", ("J1",), ("P9",)),  # check valve pipe, same as the first pump
        ("P9 J1 J2 Closed", ("J1",), ("P9",)),
        ("P9 J1 J2", (), ()),
    ],
)
def test_direction_and_closed_links_decide_supply(
    link: str, dry_nodes: tuple[str, ...], dry_links: tuple[str, ...]
) -> None:
    net = network(PUMPED.format(link=link))
    trace = isolate(build_segments(net, [Valve("A", "P1", "R1"), Valve("B", "P1", "J1")]), "P1")
    assert trace.valves_to_close == ("A", "B")
    assert trace.unsupplied_nodes == dry_nodes
    assert trace.unsupplied_links == dry_links


def test_a_control_that_opens_a_closed_pipe_counts_as_a_path() -> None:
    net = network(PUMPED.format(link="P9 J1 J2 Closed"), extra="[CONTROLS]\nLINK P9 OPEN IF NODE T1 ABOVE 3")
    trace = isolate(build_segments(net, [Valve("A", "P1", "R1"), Valve("B", "P1", "J1")]), "P1")
    assert trace.unsupplied_nodes == ()


def test_unknown_ids_are_refused() -> None:
    segs = build_segments(network(CHAIN), CHAIN_VALVES)
    with pytest.raises(UnknownReference) as err:
        isolate(segs, "P99")
    assert err.value.code == "unknown_pipe"
    with pytest.raises(UnknownReference) as err:
        isolate(segs, "P1", ["V99"])
    assert err.value.code == "unknown_valve"


# -- against WNTR ----------------------------------------------------------------------------

NETWORKS = [("Net1.inp", None), ("Net3.inp", None), ("ky4.inp", "EPSG:3089")]
LAYERS = [
    ("strategic", 0, 1),
    ("strategic", 1, 7),
    ("strategic", 2, 42),
    ("random", 0.5, 3),
    ("random", 0.9, 11),
]


def wntr_partition(wn: Any, layer: Any) -> set[tuple[frozenset[str], frozenset[str]]]:
    import wntr

    node_seg, link_seg, _ = wntr.metrics.valve_segments(wn.to_graph(), layer)
    groups: dict[int, tuple[set[str], set[str]]] = {}
    for node, s in node_seg.items():
        groups.setdefault(int(s), (set(), set()))[0].add(str(node))
    for link, s in link_seg.items():
        groups.setdefault(int(s), (set(), set()))[1].add(str(link))
    return {(frozenset(a), frozenset(b)) for a, b in groups.values()}


def make_layer(wn: Any, kind: str, n: float, seed: int) -> Any:
    import wntr

    count = int(n) if kind == "strategic" else int(n * wn.num_links)
    return wntr.network.generate_valve_layer(wn, kind, count, seed=seed)


def valves_of(layer: Any) -> list[Valve]:
    return [Valve(str(i), str(row["link"]), str(row["node"])) for i, row in layer.iterrows()]


@pytest.mark.parametrize(("name", "crs"), NETWORKS)
@pytest.mark.parametrize(("kind", "n", "seed"), LAYERS)
def test_segments_match_wntr(
    wntr_networks: Path, name: str, crs: str | None, kind: str, n: float, seed: int
) -> None:
    import wntr

    wn = wntr.network.WaterNetworkModel(str(wntr_networks / name))
    layer = make_layer(wn, kind, n, seed)
    mine = build_segments(read_network(wntr_networks / name, crs), valves_of(layer))
    assert set(mine.segments()) == wntr_partition(wn, layer)
    assert mine.count == len(wntr_partition(wn, layer))


def naive_trace(
    wn: Any, layer: Any, pipe: str, wntr_segments: Any = None
) -> tuple[set[str], set[str], set[str]]:
    """WNTR's segments, then a networkx search from the sources with WNTR's own link data."""
    import networkx as nx
    import wntr
    from wntr.network import LinkStatus

    if wntr_segments is None:
        wntr_segments = wntr.metrics.valve_segments(wn.to_graph(), layer)
    node_seg, link_seg, _ = wntr_segments
    s = link_seg[pipe]
    seg_nodes = {str(n) for n, v in node_seg.items() if v == s}
    seg_links = {str(k) for k, v in link_seg.items() if v == s}
    close = {
        str(i) for i, row in layer.iterrows() if (row["link"] in seg_links) != (row["node"] in seg_nodes)
    }
    controlled = {a.target()[0].name for _, c in wn.controls() for a in c.actions()}
    g = nx.DiGraph()
    g.add_nodes_from(n for n in wn.node_name_list if n not in seg_nodes)
    for name, link in wn.links():
        if name in seg_links or (link.initial_status == LinkStatus.Closed and name not in controlled):
            continue
        a, b = link.start_node_name, link.end_node_name
        if a in seg_nodes or b in seg_nodes:
            continue  # its valve next to the cut-out node is closed
        one_way = link.link_type == "Pump" or getattr(link, "check_valve", False)
        one_way = one_way or (link.link_type == "Valve" and link.valve_type in ("PRV", "PSV"))
        g.add_edge(a, b)
        if not one_way:
            g.add_edge(b, a)
    wet: set[str] = set()
    for src in [*wn.reservoir_name_list, *wn.tank_name_list]:
        if src in g:
            wet |= {src, *nx.descendants(g, src)}
    dry = {n for n in wn.node_name_list if n not in wet and n not in seg_nodes}
    return close, seg_nodes | seg_links, dry


@pytest.mark.parametrize(("name", "crs"), [("Net3.inp", None), ("ky4.inp", "EPSG:3089")])
def test_traces_match_a_naive_trace_on_wntr_segments(wntr_networks: Path, name: str, crs: str | None) -> None:
    import wntr

    wn = wntr.network.WaterNetworkModel(str(wntr_networks / name))
    layer = make_layer(wn, "strategic", 1, 5)
    net = read_network(wntr_networks / name, crs)
    segs = build_segments(net, valves_of(layer))
    pipes = sorted(k.id for k in net.links if k.kind is LinkKind.pipe)
    theirs = wntr.metrics.valve_segments(wn.to_graph(), layer)
    dry_seen = 0
    for pipe in random.Random(0).sample(pipes, 60):
        close, cut, dry = naive_trace(wn, layer, pipe, theirs)
        trace = isolate(segs, pipe)
        assert set(trace.valves_to_close) == close, pipe
        assert set(trace.segment_nodes) | set(trace.segment_links) == cut, pipe
        assert set(trace.unsupplied_nodes) == dry, pipe
        dry_seen += bool(dry)
    assert dry_seen, "no sampled pipe left anything dry: the comparison proved little"


def test_stuck_valves_equal_wntr_without_them(wntr_networks: Path) -> None:
    import wntr

    wn = wntr.network.WaterNetworkModel(str(wntr_networks / "ky4.inp"))
    layer = make_layer(wn, "strategic", 1, 9)
    net = read_network(wntr_networks / "ky4.inp", "EPSG:3089")
    segs = build_segments(net, valves_of(layer))
    rng = random.Random(1)
    checked = 0
    for pipe in rng.sample(sorted(k.id for k in net.links), 40):
        first = isolate(segs, pipe)
        if not first.valves_to_close:
            continue
        stuck = rng.sample(first.valves_to_close, min(2, len(first.valves_to_close)))
        widened = isolate(segs, pipe, stuck)
        reduced = layer.drop(index=[int(v) for v in stuck])
        _, cut, _ = naive_trace(wn, reduced, pipe)
        assert set(widened.segment_nodes) | set(widened.segment_links) == cut, pipe
        assert not set(widened.valves_to_close) & set(stuck)
        checked += 1
        if checked == 6:
            break
    assert checked == 6
