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


def area_from_geojson(geometry: Mapping[str, Any]) -> Area:
    """A drawn Polygon or MultiPolygon (lon/lat); an invalid one is repaired."""
    geom = geometry_from_geojson(geometry)
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidGeometry(f"a drawn area must be a Polygon or MultiPolygon, not a {geom.geom_type}")
    return _area(geom, Derivation("drawn", (("repaired", not geom.is_valid),)), "drawn area")


def area_from_zones(zones: ZoneSet, zone_ids: Sequence[str]) -> Area:
    """The union of the named zones."""
    if not zone_ids:
        raise InvalidGeometry("name at least one zone", code="area_empty")
    picked = [zones.get(z) for z in zone_ids]
    merged = shapely.union_all([z.geometry for z in picked])
    return _area(merged, Derivation("zones", (("zones", tuple(zone_ids)),)), "zones")


def area_around_trace(network: Network, trace: IsolationTrace, buffer_m: float = 30.0) -> Area:
    """A band of ``buffer_m`` metres around every link and node the isolation leaves dry."""
    if buffer_m <= 0:
        raise InvalidGeometry("the buffer around an isolation trace must be more than 0 m")
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


def area_around_point(lon: float, lat: float, radius_m: float) -> Area:
    """A disc of ``radius_m`` metres around a point (e.g. a gas-leak evacuation radius)."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90) or not np.isfinite([lon, lat]).all():
        raise InvalidGeometry(f"point ({lon}, {lat}) is not a lon/lat position")
    if not radius_m > 0:
        raise InvalidGeometry("the radius must be more than 0 m")
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
