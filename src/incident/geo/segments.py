"""Valve segments and the isolation trace of a broken pipe (pure).

A *segment* is the smallest part of the network that closing valves can cut out. With an
isolation valve on pipe P next to node N meaning "closing it separates P from N", the
segments are (as in WNTR's ``wntr.metrics.valve_segments``):

- the nodes joined by links that carry no valve form one segment each (connected
  components);
- a link with one valve belongs to the segment of its other, unvalved end;
- a link with a valve at both ends is a segment of its own.

:func:`build_segments` computes this once per network and valve layer. :func:`isolate`
then answers for one broken pipe: the segment to cut out (widened across valves that
cannot be operated), the valves on its boundary to close, and the nodes and links beyond it
that lose every path from a source (reservoir or tank) once those valves are closed.

Removing a valve from the layer merges exactly the two segments it separates, so an
inoperable valve is handled by merging segments, without recomputing the partition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from incident.geo.errors import UnknownReference
from incident.geo.network import SOURCE_KINDS, Network, Valve

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class SegmentMap:
    """The valve segments of a network; arrays are indexed like ``network.nodes``/``links``."""

    network: Network = field(repr=False)
    valves: tuple[Valve, ...] = field(repr=False)
    count: int
    node_segment: IntArray = field(repr=False)
    link_segment: IntArray = field(repr=False)
    #: Per valve: the segment of its link and the segment of its node.
    valve_link_segment: IntArray = field(repr=False)
    valve_node_segment: IntArray = field(repr=False)
    valve_index: Mapping[str, int] = field(repr=False)
    # Directed "water can go from node a to node b" edges as CSR: for node a, the slice
    # flow_ptr[a]:flow_ptr[a+1] of flow_to (b) and flow_link (the link).
    flow_ptr: IntArray = field(repr=False)
    flow_to: IntArray = field(repr=False)
    flow_link: IntArray = field(repr=False)
    sources: IntArray = field(repr=False)
    link_start: IntArray = field(repr=False)
    link_end: IntArray = field(repr=False)
    link_one_way: BoolArray = field(repr=False)
    link_closed: BoolArray = field(repr=False)

    def segments(self) -> list[tuple[frozenset[str], frozenset[str]]]:
        """Every segment as (node ids, link ids), in segment number order."""
        nodes: list[set[str]] = [set() for _ in range(self.count)]
        links: list[set[str]] = [set() for _ in range(self.count)]
        for node, s in zip(self.network.nodes, self.node_segment.tolist(), strict=True):
            nodes[s].add(node.id)
        for link, s in zip(self.network.links, self.link_segment.tolist(), strict=True):
            links[s].add(link.id)
        return [(frozenset(n), frozenset(k)) for n, k in zip(nodes, links, strict=True)]


@dataclass(frozen=True, slots=True)
class IsolationTrace:
    """What isolating a broken pipe means. Ids are sorted for stable output."""

    pipe: str
    #: Valves a crew closes to cut the segment out.
    valves_to_close: tuple[str, ...]
    #: Valves named as inoperable that the segment had to be widened across.
    inoperable_passed: tuple[str, ...]
    segment_nodes: tuple[str, ...]
    segment_links: tuple[str, ...]
    #: Outside the segment, without any path from a source once the valves are closed.
    unsupplied_nodes: tuple[str, ...]
    unsupplied_links: tuple[str, ...]

    @property
    def affected_links(self) -> tuple[str, ...]:
        """Links out of water: the segment's and the unsupplied ones (households on these)."""
        return tuple(sorted((*self.segment_links, *self.unsupplied_links)))

    @property
    def affected_nodes(self) -> tuple[str, ...]:
        return tuple(sorted((*self.segment_nodes, *self.unsupplied_nodes)))


def _find(parent: list[int], a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def build_segments(network: Network, valves: Iterable[Valve]) -> SegmentMap:
    """Compute the valve segments of ``network`` for the valve layer ``valves``."""
    valve_list = tuple(valves)
    n_nodes, n_links = len(network.nodes), len(network.links)
    starts = np.fromiter((network.node_index[k.start] for k in network.links), np.int64, n_links)
    ends = np.fromiter((network.node_index[k.end] for k in network.links), np.int64, n_links)

    valve_index: dict[str, int] = {}
    v_link = np.empty(len(valve_list), np.int64)
    v_node = np.empty(len(valve_list), np.int64)
    for i, valve in enumerate(valve_list):
        if valve.pipe not in network.link_index:
            raise UnknownReference(
                f"valve {valve.id!r} is on pipe {valve.pipe!r}, which is not in the network"
            )
        if valve.node not in network.node_index:
            raise UnknownReference(
                f"valve {valve.id!r} is next to node {valve.node!r}, which is not in the network"
            )
        valve_index[valve.id] = i
        v_link[i] = network.link_index[valve.pipe]
        v_node[i] = network.node_index[valve.node]
    valved_start = np.zeros(n_links, np.bool_)
    valved_end = np.zeros(n_links, np.bool_)
    valved_start[v_link[v_node == starts[v_link]]] = True
    valved_end[v_link[v_node == ends[v_link]]] = True
    unvalved = ~(valved_start | valved_end)

    parent = list(range(n_nodes))
    for a, b in zip(starts[unvalved].tolist(), ends[unvalved].tolist(), strict=True):
        ra, rb = _find(parent, a), _find(parent, b)
        if ra != rb:
            parent[ra] = rb
    roots = np.fromiter((_find(parent, i) for i in range(n_nodes)), np.int64, n_nodes)
    _, node_segment = np.unique(roots, return_inverse=True)
    node_segment = node_segment.astype(np.int64)
    count = int(node_segment.max()) + 1 if n_nodes else 0

    link_segment = np.where(valved_start, node_segment[ends], node_segment[starts])
    both = valved_start & valved_end
    link_segment[both] = np.arange(count, count + int(both.sum()), dtype=np.int64)
    count += int(both.sum())

    one_way = np.fromiter((k.one_way for k in network.links), np.bool_, n_links)
    closed = np.fromiter((k.closed for k in network.links), np.bool_, n_links)
    flow_ptr, flow_to, flow_link = _flow_graph(n_nodes, starts, ends, one_way, closed)
    sources = np.array([i for i, n in enumerate(network.nodes) if n.kind in SOURCE_KINDS], np.int64)
    return SegmentMap(
        network=network,
        valves=valve_list,
        count=count,
        node_segment=node_segment,
        link_segment=link_segment,
        valve_link_segment=link_segment[v_link],
        valve_node_segment=node_segment[v_node],
        valve_index=valve_index,
        flow_ptr=flow_ptr,
        flow_to=flow_to,
        flow_link=flow_link,
        sources=sources,
        link_start=starts,
        link_end=ends,
        link_one_way=one_way,
        link_closed=closed,
    )


def _flow_graph(
    n_nodes: int, starts: IntArray, ends: IntArray, one_way: BoolArray, closed: BoolArray
) -> tuple[IntArray, IntArray, IntArray]:
    links = np.arange(len(starts), dtype=np.int64)
    forward = ~closed
    backward = ~closed & ~one_way
    src = np.concatenate([starts[forward], ends[backward]])
    dst = np.concatenate([ends[forward], starts[backward]])
    via = np.concatenate([links[forward], links[backward]])
    order = np.argsort(src, kind="stable")
    ptr = np.zeros(n_nodes + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n_nodes), out=ptr[1:])
    return ptr, dst[order], via[order]


def isolate(segments: SegmentMap, pipe: str, inoperable: Collection[str] = ()) -> IsolationTrace:
    """Trace the isolation of broken ``pipe``; valves in ``inoperable`` cannot be closed."""
    network = segments.network
    if pipe not in network.link_index:
        raise UnknownReference(f"pipe {pipe!r} is not in the network", code="unknown_pipe")
    unknown = sorted(v for v in inoperable if v not in segments.valve_index)
    if unknown:
        raise UnknownReference(
            f"inoperable valve(s) not in the valve layer: {', '.join(unknown)}", code="unknown_valve"
        )
    stuck = np.zeros(len(segments.valves), np.bool_)
    stuck[[segments.valve_index[v] for v in inoperable]] = True

    # Widen across stuck valves: a fixpoint over the few of them.
    in_cut = np.zeros(segments.count, np.bool_)
    in_cut[segments.link_segment[network.link_index[pipe]]] = True
    side_a, side_b = segments.valve_link_segment[stuck], segments.valve_node_segment[stuck]
    while True:
        grow = in_cut[side_a] != in_cut[side_b]
        if not grow.any():
            break
        in_cut[side_a[grow]] = True
        in_cut[side_b[grow]] = True
    node_cut = in_cut[segments.node_segment]
    link_cut = in_cut[segments.link_segment]

    on_boundary = in_cut[segments.valve_link_segment] != in_cut[segments.valve_node_segment]
    touches = in_cut[segments.valve_link_segment] | in_cut[segments.valve_node_segment]
    close = np.flatnonzero(on_boundary & ~stuck)
    passed = np.flatnonzero(stuck & touches)

    supplied = _supplied(segments, node_cut, link_cut)
    node_lost = ~supplied & ~node_cut
    link_lost = _links_without_supply(segments, supplied) & ~link_cut

    def ids(mask: BoolArray, items: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(i for i, m in zip(items, mask.tolist(), strict=True) if m))

    node_ids = [n.id for n in network.nodes]
    link_ids = [k.id for k in network.links]
    return IsolationTrace(
        pipe=pipe,
        valves_to_close=tuple(sorted(segments.valves[i].id for i in close.tolist())),
        inoperable_passed=tuple(sorted(segments.valves[i].id for i in passed.tolist())),
        segment_nodes=ids(node_cut, node_ids),
        segment_links=ids(link_cut, link_ids),
        unsupplied_nodes=ids(node_lost, node_ids),
        unsupplied_links=ids(link_lost, link_ids),
    )


def _supplied(segments: SegmentMap, node_cut: BoolArray, link_cut: BoolArray) -> BoolArray:
    """Nodes that water reaches from a source without entering the cut-out part."""
    reached = node_cut.copy()  # seeded as "visited" so the search never enters the cut
    ptr, to, via = segments.flow_ptr.tolist(), segments.flow_to.tolist(), segments.flow_link.tolist()
    cut_links = link_cut.tolist()
    queue: deque[int] = deque()
    for s in segments.sources.tolist():
        if not reached[s]:
            reached[s] = True
            queue.append(s)
    seen = reached.tolist()
    while queue:
        a = queue.popleft()
        for j in range(ptr[a], ptr[a + 1]):
            b = to[j]
            if not seen[b] and not cut_links[via[j]]:
                seen[b] = True
                queue.append(b)
    return np.array(seen, np.bool_) & ~node_cut


def _links_without_supply(segments: SegmentMap, supplied: BoolArray) -> BoolArray:
    a, b = supplied[segments.link_start], supplied[segments.link_end]
    two_way_dry = ~(a | b)
    # Which side a closed pipe's households hang on is unknown: either dry end counts.
    closed_dry = ~(a & b)
    return np.where(segments.link_closed, closed_dry, np.where(segments.link_one_way, ~a, two_way_dry))
