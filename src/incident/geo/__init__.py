"""Pure geometry: zone layers, the pipe network and its valve segments, isolation, areas,
extents and projections (Shapely 2, NumPy, SciPy): data in, data out. Opens no file (the file
layer is :mod:`incident.households.files`). Errors derive from :class:`GeoError`; row-level
problems in input files come back as :class:`RejectedRow` values instead of being raised.
"""

from incident.geo.area import (
    Area,
    Derivation,
    area_around_point,
    area_around_trace,
    area_from_geojson,
    area_from_zones,
    difference,
    union,
)
from incident.geo.errors import FileFormatError, GeoError, InvalidGeometry, ProjectionError, UnknownReference
from incident.geo.extent import Extent, check_lonlat
from incident.geo.grid import PointGrid
from incident.geo.layers import Zone, ZoneSet, zones_from_features
from incident.geo.network import (
    Link,
    LinkKind,
    Network,
    Node,
    NodeKind,
    Valve,
    network_from_features,
    parse_inp,
    parse_valves_csv,
)
from incident.geo.rows import RejectedRow, RowNote
from incident.geo.segments import IsolationTrace, SegmentMap, build_segments, isolate, unsourced_parts

__all__ = [
    "Area",
    "Derivation",
    "Extent",
    "FileFormatError",
    "GeoError",
    "InvalidGeometry",
    "IsolationTrace",
    "Link",
    "LinkKind",
    "Network",
    "Node",
    "NodeKind",
    "PointGrid",
    "ProjectionError",
    "RejectedRow",
    "RowNote",
    "SegmentMap",
    "UnknownReference",
    "Valve",
    "Zone",
    "ZoneSet",
    "area_around_point",
    "area_around_trace",
    "area_from_geojson",
    "area_from_zones",
    "build_segments",
    "check_lonlat",
    "difference",
    "isolate",
    "network_from_features",
    "parse_inp",
    "parse_valves_csv",
    "union",
    "unsourced_parts",
    "zones_from_features",
]
