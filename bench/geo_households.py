"""Households-in-area queries and isolation traces against naive baselines, same run.

    python -m bench.geo_households [--households N] [--traces N] [--repeat N]

Area queries: ours is one STRtree query with a Shapely 2 predicate over an index built once
(:func:`incident.households.households_in_area`); the baseline is the per-household loop
``polygon.contains(Point)`` over points made in advance. Areas: the sample's pressure
zones and DMAs, gas-leak radii, and isolation bands.

Isolation: ours builds the valve segments once (:func:`build_segments`) and traces each
broken pipe (:func:`isolate`); the baseline, when ``wntr`` is installed, is
``wntr.metrics.valve_segments`` once plus a networkx search per pipe over WNTR's model.
Both answer the same question; the two are checked to agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import shapely

from incident.geo import (
    Area,
    LinkKind,
    Network,
    Valve,
    area_around_point,
    area_around_trace,
    area_from_zones,
    build_segments,
    isolate,
)
from incident.households import (
    Household,
    HouseholdIndex,
    Priority,
    households_in_area,
    read_layers,
    read_network,
    read_valves,
)
from incident.settings import BUNDLED_DIR

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = BUNDLED_DIR / "sample"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_generate", ROOT / "tools" / "generate_sample.py")
    if spec is None or spec.loader is None:
        raise SystemExit("tools/generate_sample.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _households(network: Network, count: int) -> list[Household]:
    rows = _generator().synthesize_households(network, count, seed=7)
    return [
        Household(
            r["account_id"], float(r["lon"]), float(r["lat"]), r["address"], r["language"], r["sms"],
            r["voice"], r["app_token"], Priority(r["priority"]) if r["priority"] else None, frozenset(),
        )
        for r in rows
    ]  # fmt: skip


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_areas(network: Network, valves: Sequence[Valve], count: int, repeat: int) -> None:
    zones, _ = read_layers(SAMPLE / "layers")
    started = time.perf_counter()
    households = _households(network, count)
    made = time.perf_counter() - started
    started = time.perf_counter()
    index = HouseholdIndex.build(households)
    built = time.perf_counter() - started
    print(f"{count} households (synthesised in {made:.2f} s); index built in {built * 1000:.1f} ms")

    segments = build_segments(network, valves)
    areas: list[tuple[str, Area]] = [(z.id, area_from_zones(zones, [z.id])) for z in zones.zones]
    for node, radius in [("J-100", 300.0), ("J-500", 800.0), ("J-10", 1500.0)]:
        lon, lat = network.node(node).lon, network.node(node).lat
        areas.append((f"radius {radius:.0f} m", area_around_point(lon, lat, radius)))
    for pipe in ("P-100", "P-500", "P-1000"):
        areas.append((f"isolate {pipe}", area_around_trace(network, isolate(segments, pipe), 30.0)))

    points = [shapely.Point(h.lon, h.lat) for h in households]
    ours_total = naive_total = 0.0
    print(f"{'area':<18}{'inside':>8}{'index ms':>11}{'naive ms':>11}{'ratio':>9}")
    for name, area in areas:
        found = households_in_area(index, area)
        ours = _best(lambda area=area: households_in_area(index, area), repeat)
        # A fresh copy: households_in_area prepares the area's geometry, and the baseline
        # is the plain per-point loop without that help.
        polygon = shapely.from_wkb(shapely.to_wkb(area.geometry))
        started = time.perf_counter()
        naive = [i for i, p in enumerate(points) if polygon.contains(p)]
        baseline = time.perf_counter() - started
        if found.positions.tolist() != naive:
            raise SystemExit(f"{name}: index and naive loop disagree")
        ours_total += ours
        naive_total += baseline
        print(
            f"{name:<18}{len(found):>8}{ours * 1000:>11.2f}{baseline * 1000:>11.1f}{baseline / ours:>8.0f}x"
        )
    n = len(areas)
    print(
        f"{'mean per query':<18}{'':>8}{ours_total / n * 1000:>11.2f}{naive_total / n * 1000:>11.1f}"
        f"{naive_total / ours_total:>8.0f}x"
    )


def _naive_trace(wn: Any, layer: Any, segs: Any, pipe: str) -> tuple[set[str], set[str]]:
    import networkx as nx
    from wntr.network import LinkStatus

    node_seg, link_seg, _ = segs
    s = link_seg[pipe]
    seg_nodes = {str(n) for n, v in node_seg.items() if v == s}
    seg_links = {str(k) for k, v in link_seg.items() if v == s}
    close = {str(i) for i, r in layer.iterrows() if (r["link"] in seg_links) != (r["node"] in seg_nodes)}
    controlled = {a.target()[0].name for _, c in wn.controls() for a in c.actions()}
    g = nx.DiGraph()
    g.add_nodes_from(n for n in wn.node_name_list if n not in seg_nodes)
    for name, link in wn.links():
        a, b = link.start_node_name, link.end_node_name
        if name in seg_links or a in seg_nodes or b in seg_nodes:
            continue
        if link.initial_status == LinkStatus.Closed and name not in controlled:
            continue
        g.add_edge(a, b)
        one_way = link.link_type == "Pump" or getattr(link, "check_valve", False)
        if not (one_way or (link.link_type == "Valve" and link.valve_type in ("PRV", "PSV"))):
            g.add_edge(b, a)
    wet: set[str] = set()
    for src in [*wn.reservoir_name_list, *wn.tank_name_list]:
        wet |= {src, *nx.descendants(g, src)}
    return close, {n for n in wn.node_name_list if n not in wet and n not in seg_nodes}


def bench_isolation(network: Network, valves: Sequence[Valve], traces: int, repeat: int) -> None:
    pipes = random.Random(3).sample(sorted(k.id for k in network.links if k.kind is LinkKind.pipe), traces)
    build = _best(lambda: build_segments(network, valves), repeat)
    segments = build_segments(network, valves)
    started = time.perf_counter()
    ours = [isolate(segments, p) for p in pipes]
    per_trace = (time.perf_counter() - started) / len(pipes)
    print(f"\nisolation on the sample network ({len(network.nodes)} nodes, {len(network.links)} links, "
          f"{len(valves)} valves), {len(pipes)} broken pipes")  # fmt: skip
    print(f"ours:  segments {build * 1000:.2f} ms, trace {per_trace * 1000:.3f} ms per pipe")
    try:
        import pandas as pd
        import wntr
    except ImportError:
        print("wntr is not installed: no baseline (pip install wntr)")
        return
    wn = wntr.network.WaterNetworkModel(str(SAMPLE / "network.inp"))
    layer = pd.DataFrame({"link": [v.pipe for v in valves], "node": [v.node for v in valves]})
    started = time.perf_counter()
    segs = wntr.metrics.valve_segments(wn.to_graph(), layer)
    wntr_build = time.perf_counter() - started
    ids = {i: v.id for i, v in enumerate(valves)}
    started = time.perf_counter()
    for pipe, trace in zip(pipes, ours, strict=True):
        close, dry = _naive_trace(wn, layer, segs, pipe)
        if {ids[int(i)] for i in close} != set(trace.valves_to_close) or dry != set(trace.unsupplied_nodes):
            raise SystemExit(f"pipe {pipe}: ours and the baseline disagree")
    naive_trace = (time.perf_counter() - started) / len(pipes)
    print(
        f"wntr:  valve_segments {wntr_build * 1000:.1f} ms, naive trace {naive_trace * 1000:.2f} ms per pipe"
    )
    first = (wntr_build + naive_trace) / (build + per_trace)
    print(f"ratio: segments {wntr_build / build:.0f}x, trace {naive_trace / per_trace:.0f}x, ", end="")
    print(f"first answer (segments + 1 trace) {first:.0f}x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--traces", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    network = read_network(SAMPLE / "network.inp")
    valves, rejected = read_valves(SAMPLE / "valves.csv", network)
    if rejected:
        raise SystemExit(f"sample valves.csv has {len(rejected)} bad rows")
    bench_areas(network, valves, args.households, args.repeat)
    bench_isolation(network, valves, args.traces, args.repeat)
    print(f"\n(ours: best of {args.repeat}; each baseline: one pass)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
