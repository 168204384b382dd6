"""Areas: a polygon in lon/lat plus a record of how it was derived (pure).

An area comes from a drawn polygon, from zones, from an isolation trace (a band around the
pipes out of water) or from a radius around a point (gas-leak evacuation); areas combine by
union and difference. Metre distances are applied in a local equidistant projection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Point, mapping
from shapely.geometry.base import BaseGeometry

from incident.geo.errors import InvalidGeometry
from incident.geo.extent import Extent, check_lonlat
from incident.geo.layers import Polygonal, ZoneSet, geometry_from_geojson, polygonal
from incident.geo.network import Network
from incident.geo.projection import LocalMetric
from incident.geo.segments import IsolationTrace

Param = str | float | int | bool | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Derivation:
    """How an area was made: ``op`` with its parameters and the derivations it combines.

    ``op`` is one of ``drawn``, ``zones``, ``isolation``, ``radius``, ``union``,
    ``difference``.
    """

    op: str
    params: tuple[tuple[str, Param], ...] = ()
    parts: tuple[Derivation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the timeline."""
        out: dict[str, Any] = {"op": self.op}
        out.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.params})
        if self.parts:
            out["parts"] = [p.to_dict() for p in self.parts]
        return out


@dataclass(frozen=True, slots=True)
class Area:
    geometry: Polygonal = field(repr=False)
    derivation: Derivation

    def to_geojson(self) -> dict[str, Any]:
        return dict(mapping(self.geometry))


def _area(geometry: BaseGeometry, derivation: Derivation, what: str) -> Area:
    result = polygonal(geometry)
    if result is None:
        raise InvalidGeometry(f"{what}: the area is empty", code="area_empty")
    return Area(result, derivation)


def area_from_geojson(
    geometry: Mapping[str, Any], *, extent: Extent | None = None, repair: bool = False
) -> Area:
    """A drawn Polygon or MultiPolygon (lon/lat).

    A self-intersecting polygon is refused (code ``self_intersecting``, with where it
    crosses) unless ``repair`` is set: how a bow-tie or a loop drawn twice was meant is a
    guess, and the dispatcher should see the repaired shape before households are counted.
    With the service area's ``extent``, an area that lies wholly outside it is refused, and
    one whose lon/lat are swapped is named as such (code ``coordinates_swapped``).
    """
    if isinstance(geometry, Mapping) and geometry.get("type") in ("Polygon", "MultiPolygon"):
        raw = geometry.get("coordinates")
        if not raw or (isinstance(raw, list) and not any(raw)):
            raise InvalidGeometry("the drawn area is empty: it has no coordinates", code="geometry_empty")
    geom = geometry_from_geojson(geometry)
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidGeometry(
            f"a drawn area must be a Polygon or MultiPolygon, not a {geom.geom_type}", code="not_a_polygon"
        )
    check_lonlat(shapely.get_coordinates(geom), "the drawn area", extent)
    if polygonal(geom) is None:
        raise InvalidGeometry("the drawn area has no area (its points lie on a line)", code="area_empty")
    valid = geom.is_valid
    if not valid and not repair:
        reason = shapely.is_valid_reason(geom)
        raise InvalidGeometry(
            f"the drawn area is not a simple polygon ({reason}): redraw it without crossing "
            "its own outline, or ask for it to be repaired",
            code="self_intersecting",
        )
    return _area(geom, Derivation("drawn", (("repaired", not valid),)), "drawn area")


def area_from_zones(zones: ZoneSet, zone_ids: Sequence[str]) -> Area:
    """The union of the named zones."""
    if not zone_ids:
        raise InvalidGeometry("name at least one zone", code="area_empty")
    picked = zones.get_all(zone_ids)
    merged = shapely.union_all([z.geometry for z in picked])
    return _area(merged, Derivation("zones", (("zones", tuple(zone_ids)),)), "zones")


def area_around_trace(network: Network, trace: IsolationTrace, buffer_m: float = 30.0) -> Area:
    """A band of ``buffer_m`` metres around every link and node the isolation leaves dry."""
    if not buffer_m > 0:
        raise InvalidGeometry("the buffer around an isolation trace must be more than 0 m", code="bad_buffer")
    lines = [LineString(network.link(k).path) for k in trace.affected_links]
    points = [Point(network.node(n).lon, network.node(n).lat) for n in trace.affected_nodes]
    shapes = shapely.GeometryCollection([*lines, *points])
    local = LocalMetric.around(shapes)
    band = local.unproject(shapely.buffer(local.project(shapes), buffer_m, quad_segs=8))
    derivation = Derivation(
        "isolation",
        (
            ("pipe", trace.pipe),
            ("buffer_m", float(buffer_m)),
            ("valves_to_close", trace.valves_to_close),
            ("inoperable", trace.inoperable_passed),
        ),
    )
    return _area(band, derivation, f"isolation of pipe {trace.pipe}")


def area_around_point(lon: float, lat: float, radius_m: float, *, extent: Extent | None = None) -> Area:
    """A disc of ``radius_m`` metres around a point (e.g. a gas-leak evacuation radius).

    With the service area's ``extent``, a point far outside it is refused, and a point whose
    lon and lat are swapped is named as such (code ``coordinates_swapped``)."""
    check_lonlat(np.array([[lon, lat]], np.float64), f"point ({lon}, {lat})", extent)
    if not radius_m > 0:
        raise InvalidGeometry("the radius must be more than 0 m", code="bad_radius")
    local = LocalMetric(lon, lat)
    disc = local.unproject(Point(0.0, 0.0).buffer(radius_m, quad_segs=16))
    derivation = Derivation("radius", (("lon", lon), ("lat", lat), ("radius_m", float(radius_m))))
    return _area(disc, derivation, "radius")


def union(*areas: Area) -> Area:
    if not areas:
        raise InvalidGeometry("a union needs at least one area", code="area_empty")
    merged = shapely.union_all([a.geometry for a in areas])
    return _area(merged, Derivation("union", parts=tuple(a.derivation for a in areas)), "union")


def difference(area: Area, *minus: Area) -> Area:
    """``area`` without the parts covered by ``minus`` (e.g. a zone less a drawn exception)."""
    rest = (
        shapely.difference(area.geometry, shapely.union_all([m.geometry for m in minus]))
        if minus
        else area.geometry
    )
    derivation = Derivation("difference", parts=(area.derivation, *(m.derivation for m in minus)))
    return _area(rest, derivation, "difference")
