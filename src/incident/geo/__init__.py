"""Geometry of an incident: households, zone layers, the pipe network, isolation, areas.

Pure and vectorised (Shapely 2, NumPy): data in, data out. Only :mod:`incident.geo.files`
reads files. Errors derive from :class:`GeoError`; row-level problems in input files come
back as :class:`RejectedRow` values instead of being raised.
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
from incident.geo.errors import (
    FileFormatError,
    GeoError,
    InvalidGeometry,
    ProjectionError,
    UnknownReference,
)
from incident.geo.extent import Extent, check_lonlat
from incident.geo.files import (
    HouseholdLoad,
    HouseholdTableLoad,
    Progress,
    iter_households_file,
    load_household_table,
    load_households,
    load_service_area,
    read_layers,
    read_network,
    read_valves,
)
from incident.geo.grid import PointGrid
from incident.geo.household import (
    Channel,
    Household,
    Priority,
    iter_households_csv,
    iter_households_geojson,
)
from incident.geo.index import (
    Attachment,
    HouseholdIndex,
    Selection,
    attach_households,
    count_by_language,
    count_by_priority,
    households_affected,
    households_in_area,
    households_in_area_among,
    households_on_links,
    iter_households,
)
from incident.geo.layers import Zone, ZoneSet, zones_from_features
from incident.geo.merge import HouseholdMerge, merge_households
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
from incident.geo.phones import PhoneRules
from incident.geo.rows import RejectedRow, RowNote
from incident.geo.segments import IsolationTrace, SegmentMap, build_segments, isolate, unsourced_parts
from incident.geo.service_area import (
    Isolation,
    LoadReport,
    ServiceArea,
    build_service_area,
    isolate_pipe,
    service_extent,
)
from incident.geo.table import HouseholdTable

__all__ = [
    "Area",
    "Attachment",
    "Channel",
    "Derivation",
    "Extent",
    "FileFormatError",
    "GeoError",
    "Household",
    "HouseholdIndex",
    "HouseholdLoad",
    "HouseholdMerge",
    "HouseholdTable",
    "HouseholdTableLoad",
    "InvalidGeometry",
    "Isolation",
    "IsolationTrace",
    "Link",
    "LinkKind",
    "LoadReport",
    "Network",
    "Node",
    "NodeKind",
    "PhoneRules",
    "PointGrid",
    "Priority",
    "Progress",
    "ProjectionError",
    "RejectedRow",
    "RowNote",
    "SegmentMap",
    "Selection",
    "ServiceArea",
    "UnknownReference",
    "Valve",
    "Zone",
    "ZoneSet",
    "area_around_point",
    "area_around_trace",
    "area_from_geojson",
    "area_from_zones",
    "attach_households",
    "build_segments",
    "build_service_area",
    "check_lonlat",
    "count_by_language",
    "count_by_priority",
    "difference",
    "households_affected",
    "households_in_area",
    "households_in_area_among",
    "households_on_links",
    "isolate",
    "isolate_pipe",
    "iter_households",
    "iter_households_csv",
    "iter_households_file",
    "iter_households_geojson",
    "load_household_table",
    "load_households",
    "load_service_area",
    "merge_households",
    "network_from_features",
    "parse_inp",
    "parse_valves_csv",
    "read_layers",
    "read_network",
    "read_valves",
    "service_extent",
    "union",
    "unsourced_parts",
    "zones_from_features",
]
