"""Isolation of a broken pipe on a 12,527-node network: ours against WNTR, same run.

    python -m bench.geo_isolation [--breaks N]

Network: BWSN Network 2 (12,523 junctions, 4 sources, 14,831 links) from the network
library shipped in the ``epyt`` package (a bench dependency). Its coordinates are planar
feet of no stated CRS; they are read as EPSG:3089 (positions do not enter a trace). Valve
layer: WNTR's ``generate_valve_layer(wn, "strategic", 1, seed=5)`` (N-1: every link but one
at each node).

- Segmentation of the whole network: ours (:func:`build_segments`) against
  ``wntr.metrics.valve_segments`` on the same network and valve layer; the partitions are
  checked to be equal.
- Time per break: :func:`isolate` (segment, valves to close, nodes and links that lose
  supply) over random pipes.
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

from incident.geo import LinkKind, Valve, build_segments, isolate
from incident.households import read_network


def network_path() -> Path:
    spec = find_spec("epyt")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("this benchmark needs the epyt package (pip install epyt)")
    return (
        Path(next(iter(spec.submodule_search_locations))) / "networks" / "asce-tf-wdst" / "BWSN_Network_2.inp"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--breaks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    import wntr

    path = network_path()
    network = read_network(path, "EPSG:3089")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wn = wntr.network.WaterNetworkModel(str(path))
    layer = wntr.network.generate_valve_layer(wn, "strategic", 1, seed=5)
    valves = [Valve(str(i), str(row["link"]), str(row["node"])) for i, row in layer.iterrows()]
    print(f"{path.name}: {len(network.nodes):,} nodes, {len(network.links):,} links, {len(valves):,} valves")

    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        segments = build_segments(network, valves)
        times.append(time.perf_counter() - started)
    ours = min(times)
    graph = wn.to_graph()
    started = time.perf_counter()
    node_seg, link_seg, _ = wntr.metrics.valve_segments(graph, layer)
    theirs = time.perf_counter() - started
    groups: dict[int, tuple[set[str], set[str]]] = {}
    for node, s in node_seg.items():
        groups.setdefault(int(s), (set(), set()))[0].add(str(node))
    for link, s in link_seg.items():
        groups.setdefault(int(s), (set(), set()))[1].add(str(link))
    if {(frozenset(a), frozenset(b)) for a, b in groups.values()} != set(segments.segments()):
        raise SystemExit("ours and WNTR's segments disagree")
    print(f"\nsegment the whole network ({segments.count:,} segments, equal to WNTR's)")
    print(f"  wntr.metrics.valve_segments  {theirs * 1000:>10.0f} ms")
    print(
        f"  ours: build_segments         {ours * 1000:>10.1f} ms   ratio {theirs / ours:,.0f}x (goal: 100x)"
    )

    pipes = random.Random(3).sample([k.id for k in network.links if k.kind is LinkKind.pipe], args.breaks)
    started = time.perf_counter()
    traces = [isolate(segments, p) for p in pipes]
    per_break = (time.perf_counter() - started) / len(pipes)
    dry = sum(1 for t in traces if t.unsupplied_nodes)
    print(f"\nisolate {len(pipes)} random broken pipes ({dry} leave nodes beyond the segment dry)")
    print(f"  ours: isolate                {per_break * 1000:>10.2f} ms per break (goal: under 5 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
