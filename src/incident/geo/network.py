"""The pipe network: nodes, links, isolation valves, and their parsers (pure: text in).

Sources of a network: an EPANET ``.inp`` file (:func:`parse_inp`, our own small parser of
the sections that matter for topology and position) or a GeoJSON FeatureCollection of
LineString links and Point nodes (:func:`network_from_features`). Coordinates in a
projected CRS are converted to lon/lat once, here.

For supply tracing each link knows whether water can pass it at all (``closed``) and in
which direction (``one_way``). Both are read conservatively: a link we cannot be sure
about passes water in fewer ways, so a doubtful household is told rather than left out.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from incident.geo.errors import FileFormatError
from incident.geo.projection import to_lonlat
from incident.geo.rows import RejectedRow


class NodeKind(StrEnum):
    junction = "junction"
    reservoir = "reservoir"
    tank = "tank"


class LinkKind(StrEnum):
    pipe = "pipe"
    pump = "pump"
    valve = "valve"


#: Sources feed the network; a node that reaches none of them is without supply.
SOURCE_KINDS = frozenset({NodeKind.reservoir, NodeKind.tank})

# EPANET valve types that pass water only from their start node to their end node.
_ONE_WAY_VALVES = frozenset({"PRV", "PSV"})


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    kind: NodeKind
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class Link:
    id: str
    kind: LinkKind
    start: str
    end: str
    #: lon/lat positions from the start node through any vertices to the end node.
    path: tuple[tuple[float, float], ...]
    #: Water can flow only start -> end (pumps, check-valve pipes, PRV and PSV).
    one_way: bool = False
    #: Closed at the start and no control or rule ever opens it.
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Valve:
    """An isolation valve on ``pipe`` next to ``node`` (closing it cuts the pipe from the node)."""

    id: str
    pipe: str
    node: str


@dataclass(frozen=True)
class Network:
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    node_index: Mapping[str, int] = field(repr=False)
    link_index: Mapping[str, int] = field(repr=False)

    @classmethod
    def build(cls, nodes: Sequence[Node], links: Sequence[Link]) -> Network:
        node_index: dict[str, int] = {}
        for i, node in enumerate(nodes):
            if node.id in node_index:
                raise FileFormatError(f"network: node id {node.id!r} appears twice")
            node_index[node.id] = i
        link_index: dict[str, int] = {}
        for i, link in enumerate(links):
            if link.id in link_index:
                raise FileFormatError(f"network: link id {link.id!r} appears twice")
            for end in (link.start, link.end):
                if end not in node_index:
                    raise FileFormatError(f"network: link {link.id!r} ends at unknown node {end!r}")
            link_index[link.id] = i
        return cls(tuple(nodes), tuple(links), node_index, link_index)

    def node(self, node_id: str) -> Node:
        return self.nodes[self.node_index[node_id]]

    def link(self, link_id: str) -> Link:
        return self.links[self.link_index[link_id]]


# -- EPANET .inp -----------------------------------------------------------------------------

_SECTION = re.compile(r"\[([A-Za-z_]+)\]")


def _inp_sections(lines: Iterable[str]) -> Iterator[tuple[str, int, list[str]]]:
    section = ""
    for number, raw in enumerate(lines, start=1):
        text = raw.split(";", 1)[0].strip()
        if not text:
            continue
        header = _SECTION.fullmatch(text)
        if header:
            section = header.group(1).upper()
            continue
        yield section, number, text.split()


def parse_inp(lines: Iterable[str], crs: str | None = None) -> Network:
    """Parse an EPANET ``.inp`` file (given as lines) into a lon/lat :class:`Network`.

    ``crs`` is the CRS of the [COORDINATES] and [VERTICES] sections; empty means lon/lat.
    """
    kinds: dict[str, NodeKind] = {}
    raw_links: list[tuple[str, LinkKind, str, str, bool, bool]] = []
    status: dict[str, str] = {}
    coords: dict[str, tuple[float, float]] = {}
    vertices: dict[str, list[tuple[float, float]]] = {}
    controlled: set[str] = set()
    in_actions = False
    node_sections = {"JUNCTIONS": NodeKind.junction, "RESERVOIRS": NodeKind.reservoir, "TANKS": NodeKind.tank}

    def need(tokens: list[str], count: int, number: int, section: str) -> None:
        if len(tokens) < count:
            raise FileFormatError(f"network line {number}: [{section}] needs at least {count} fields")

    def xy(tokens: list[str], number: int) -> tuple[float, float]:
        try:
            return float(tokens[1]), float(tokens[2])
        except (ValueError, IndexError):
            raise FileFormatError(f"network line {number}: coordinates must be two numbers") from None

    for section, number, tokens in _inp_sections(lines):
        if section in node_sections:
            if tokens[0] in kinds:
                raise FileFormatError(f"network line {number}: node id {tokens[0]!r} appears twice")
            kinds[tokens[0]] = node_sections[section]
        elif section == "PIPES":
            need(tokens, 3, number, section)
            pipe_status = tokens[7].upper() if len(tokens) > 7 else "OPEN"
            raw_links.append(
                (tokens[0], LinkKind.pipe, tokens[1], tokens[2], pipe_status == "CV", pipe_status == "CLOSED")
            )
        elif section == "PUMPS":
            need(tokens, 3, number, section)
            raw_links.append((tokens[0], LinkKind.pump, tokens[1], tokens[2], True, False))
        elif section == "VALVES":
            need(tokens, 5, number, section)
            one_way = tokens[4].upper() in _ONE_WAY_VALVES
            raw_links.append((tokens[0], LinkKind.valve, tokens[1], tokens[2], one_way, False))
        elif section == "STATUS":
            need(tokens, 2, number, section)
            status[tokens[0]] = tokens[1].upper()
        elif section == "COORDINATES":
            coords[tokens[0]] = xy(tokens, number)
        elif section == "VERTICES":
            vertices.setdefault(tokens[0], []).append(xy(tokens, number))
        elif section == "CONTROLS":
            # "LINK id status IF ...": the link may be opened at some time.
            if len(tokens) > 1 and tokens[0].upper() == "LINK":
                controlled.add(tokens[1])
        elif section == "RULES":
            word = tokens[0].upper()
            if word in ("RULE", "IF", "PRIORITY"):
                in_actions = False
            elif word in ("THEN", "ELSE"):
                in_actions = True
            if in_actions and len(tokens) > 2 and tokens[1].upper() in ("LINK", "PIPE", "PUMP", "VALVE"):
                controlled.add(tokens[2])

    missing = [n for n in kinds if n not in coords]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FileFormatError(f"network: node(s) without [COORDINATES]: {shown}")

    # One vectorised conversion for every position in the file.
    node_ids = list(kinds)
    flat: list[tuple[float, float]] = [coords[n] for n in node_ids]
    vertex_start: dict[str, int] = {}
    for link_id, points in vertices.items():
        vertex_start[link_id] = len(flat)
        flat.extend(points)
    lonlat = to_lonlat(np.array(flat, dtype=np.float64), crs).tolist() if flat else []
    node_pos = {n: (lonlat[i][0], lonlat[i][1]) for i, n in enumerate(node_ids)}
    nodes = [Node(n, kinds[n], *node_pos[n]) for n in node_ids]

    links: list[Link] = []
    for link_id, kind, start, end, one_way, closed_flag in raw_links:
        if start not in node_pos or end not in node_pos:
            unknown = start if start not in node_pos else end
            raise FileFormatError(f"network: link {link_id!r} ends at unknown node {unknown!r}")
        first = vertex_start.get(link_id)
        inner = [] if first is None else lonlat[first : first + len(vertices[link_id])]
        path = (node_pos[start], *((p[0], p[1]) for p in inner), node_pos[end])
        is_closed = closed_flag or status.get(link_id) == "CLOSED"
        if status.get(link_id) == "OPEN":
            is_closed = False
        links.append(Link(link_id, kind, start, end, path, one_way, is_closed and link_id not in controlled))
    return Network.build(nodes, links)


# -- GeoJSON network -------------------------------------------------------------------------


def _prop(properties: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = properties.get(name)
        if value is not None and value != "":
            return value
    return None


def network_from_features(features: Iterable[Mapping[str, Any]], crs: str | None = None) -> Network:
    """Build a network from GeoJSON features: LineStrings are links, Points are nodes.

    Property names follow ours (``id``, ``kind``, ``start``, ``end``, ``status``) or
    WNTR's GIS export (``name``, ``link_type``/``node_type``, ``start_node_name``,
    ``end_node_name``, ``initial_status``). A link without start/end node ids is joined to
    the node at its end position, and a new junction is made where there is none.
    """
    point_features: list[tuple[int, str, NodeKind, tuple[float, float]]] = []
    line_features: list[tuple[int, Mapping[str, Any], list[tuple[float, float]]]] = []
    for index, feature in enumerate(features):
        geometry = feature.get("geometry") or {}
        properties = feature.get("properties") or {}
        gtype = geometry.get("type")
        coordinates = geometry.get("coordinates")
        if gtype == "MultiLineString" and isinstance(coordinates, list | tuple) and len(coordinates) == 1:
            gtype, coordinates = "LineString", coordinates[0]
        try:
            if gtype == "Point" and isinstance(coordinates, list | tuple):
                node_id = _prop(properties, "id", "name") or feature.get("id")
                if node_id is None:
                    raise FileFormatError(f"network feature {index}: a node needs an id")
                kind_text = str(_prop(properties, "kind", "node_type") or "junction").lower()
                point_features.append(
                    (index, str(node_id), NodeKind(kind_text), (float(coordinates[0]), float(coordinates[1])))
                )
            elif gtype == "LineString" and isinstance(coordinates, list | tuple):
                drawn = [(float(p[0]), float(p[1])) for p in coordinates]
                if len(drawn) < 2:
                    raise FileFormatError(f"network feature {index}: a link needs two positions")
                line_features.append((index, {**properties, "_fid": feature.get("id")}, drawn))
            else:
                raise FileFormatError(
                    f"network feature {index}: geometry {gtype!r} is not a Point or LineString"
                )
        except (TypeError, ValueError, IndexError) as err:
            raise FileFormatError(f"network feature {index}: {err}") from None

    flat = [p[3] for p in point_features] + [q for _, _, path in line_features for q in path]
    lonlat = to_lonlat(np.array(flat, dtype=np.float64), crs).tolist() if flat else []
    nodes: dict[str, Node] = {}
    at_position: dict[tuple[float, float], str] = {}

    def key(x: float, y: float) -> tuple[float, float]:
        # Positions that agree to about a centimetre are the same node.
        return (round(x, 7), round(y, 7))

    for i, (index, node_id, kind, _) in enumerate(point_features):
        if node_id in nodes:
            raise FileFormatError(f"network feature {index}: node id {node_id!r} appears twice")
        lon, lat = lonlat[i]
        nodes[node_id] = Node(node_id, kind, lon, lat)
        at_position.setdefault(key(lon, lat), node_id)

    def node_at(lon: float, lat: float) -> str:
        k = key(lon, lat)
        if k not in at_position:
            node_id = f"N@{k[0]:.7f},{k[1]:.7f}"
            nodes[node_id] = Node(node_id, NodeKind.junction, lon, lat)
            at_position[k] = node_id
        return at_position[k]

    links: list[Link] = []
    cursor = len(point_features)
    for index, properties, raw_path in line_features:
        path: tuple[tuple[float, float], ...] = tuple(
            (p[0], p[1]) for p in lonlat[cursor : cursor + len(raw_path)]
        )
        cursor += len(raw_path)
        link_id = _prop(properties, "id", "name") or properties.get("_fid")
        if link_id is None:
            raise FileFormatError(f"network feature {index}: a link needs an id")
        try:
            link_kind = LinkKind(str(_prop(properties, "kind", "link_type") or "pipe").lower())
        except ValueError:
            raise FileFormatError(f"network feature {index}: link kind must be pipe, pump or valve") from None
        start = _prop(properties, "start", "start_node", "start_node_name")
        end = _prop(properties, "end", "end_node", "end_node_name")
        start = str(start) if start is not None else node_at(*path[0])
        end = str(end) if end is not None else node_at(*path[-1])
        for end_id in (start, end):
            if end_id not in nodes:
                raise FileFormatError(
                    f"network feature {index}: link {link_id!r} ends at unknown node {end_id!r}"
                )
        state = str(_prop(properties, "status", "initial_status") or "open").upper()
        valve_type = str(_prop(properties, "valve_type") or "").upper()
        one_way = link_kind is LinkKind.pump or state == "CV" or bool(properties.get("check_valve"))
        one_way = one_way or (link_kind is LinkKind.valve and valve_type in _ONE_WAY_VALVES)
        # Snap the drawn ends onto the nodes so a line drawn a little short still meets them.
        start_node, end_node = nodes[start], nodes[end]
        path = ((start_node.lon, start_node.lat), *path[1:-1], (end_node.lon, end_node.lat))
        links.append(Link(str(link_id), link_kind, start, end, path, one_way, state == "CLOSED"))
    return Network.build(list(nodes.values()), links)


# -- isolation valves ------------------------------------------------------------------------


def parse_valves_csv(lines: Iterable[str], network: Network) -> tuple[list[Valve], list[RejectedRow]]:
    """Parse a valves CSV (``valve_id,pipe,node``) against ``network``.

    A valve that names an unknown pipe, a node that is not an end of its pipe, or repeats
    an earlier valve's place is rejected with its line number, not dropped silently: a
    missing valve changes what a crew must close.
    """
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise FileFormatError("valves CSV is empty: expected the header valve_id,pipe,node") from None
    columns = ("valve_id", "pipe", "node")
    if not set(columns) <= set(header):
        raise FileFormatError("valves CSV header must name valve_id, pipe and node")
    at = [header.index(c) for c in columns]
    valves: list[Valve] = []
    rejected: list[RejectedRow] = []
    ids: set[str] = set()
    places: dict[tuple[str, str], str] = {}
    last_line = reader.line_num
    for fields in reader:
        line, last_line = last_line + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            rejected.append(
                RejectedRow("line", line, None, f"row has {len(fields)} fields, the header has {len(header)}")
            )
            continue
        valve_id, pipe, node = (fields[i].strip() for i in at)
        reason = None
        if not valve_id:
            reason = "valve_id is missing"
        elif valve_id in ids:
            reason = "valve_id appears earlier in the file"
        elif not pipe:
            reason = f"valve {valve_id!r} names no pipe"
        elif pipe not in network.link_index:
            reason = f"valve {valve_id!r} is on pipe {pipe!r}, which is not in the network"
        elif not node:
            reason = f"valve {valve_id!r} names no node"
        elif node not in (network.link(pipe).start, network.link(pipe).end):
            reason = f"node {node!r} is not an end of pipe {pipe!r}"
        elif (pipe, node) in places:
            reason = f"valve {places[(pipe, node)]!r} is already on pipe {pipe!r} next to node {node!r}"
        if reason:
            rejected.append(RejectedRow("line", line, valve_id or None, reason))
            continue
        ids.add(valve_id)
        places[(pipe, node)] = valve_id
        valves.append(Valve(valve_id, pipe, node))
    return valves, rejected
