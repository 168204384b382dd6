"""Areas: a polygon in lon/lat plus a record of how it was derived (pure).

An area comes from a drawn polygon, from zones, from an isolation trace (a band around the
pipes out of water) or from a radius around a point (gas-leak evacuation); areas combine by
union and difference. Metre distances are applied in a local equidistant projection.
"""

from __future__ import annotations

import math
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

#: Largest radius around a point when the service area's extent is unknown (metres).
MAX_RADIUS_M = 100_000.0


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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_polygon_json(geometry: Mapping[str, Any], max_vertices: int) -> None:
    """Check the shape of a GeoJSON Polygon or MultiPolygon before Shapely sees it: the
    nesting of its coordinates, positions of 2 (or 3) numbers, rings of at least 3 positions,
    and at most ``max_vertices`` positions in all (code ``area_too_complex``). The work is
    bounded by ``max_vertices``, whatever the request holds."""
    kind = geometry.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        what = kind if isinstance(kind, str) else "geometry without a type"
        raise InvalidGeometry(
            f"a drawn area must be a Polygon or MultiPolygon, not a {what}", code="not_a_polygon"
        )
    raw = geometry.get("coordinates")
    polygons = [raw] if kind == "Polygon" else raw
    bad = InvalidGeometry(
        f"not a GeoJSON {kind}: coordinates must be "
        + ("" if kind == "Polygon" else "a list of polygons, each ")
        + "a list of rings, each a list of [lon, lat] positions",
        code="geometry_invalid",
    )
    if not isinstance(polygons, list | tuple):
        raise bad
    count = 0
    for polygon in polygons:
        if not isinstance(polygon, list | tuple) or not polygon:
            raise bad
        for ring in polygon:
            if not isinstance(ring, list | tuple) or len(ring) < 3:
                raise bad
            count += len(ring)
            if count > max_vertices:
                raise InvalidGeometry(
                    f"the drawn area has more than {max_vertices:,} vertices: draw it with fewer "
                    "points, or use zones",
                    code="area_too_complex",
                )
            for position in ring:
                if not (
                    isinstance(position, list | tuple)
                    and 2 <= len(position) <= 3
                    and all(map(_is_number, position))
                ):
                    raise bad


def area_from_geojson(
    geometry: Mapping[str, Any],
    *,
    extent: Extent | None = None,
    repair: bool = False,
    max_vertices: int | None = None,
) -> Area:
    """A drawn Polygon or MultiPolygon (lon/lat).

    A self-intersecting polygon is refused (code ``self_intersecting``, with where it
    crosses) unless ``repair`` is set: how a bow-tie or a loop drawn twice was meant is a
    guess, and the dispatcher should see the repaired shape before households are counted.
    With the service area's ``extent``, an area that lies wholly outside it is refused, and
    one whose lon/lat are swapped is named as such (code ``coordinates_swapped``). More than
    ``max_vertices`` positions is refused (code ``area_too_complex``) before any geometry work;
    give it for every area that comes from a request.
    """
    if isinstance(geometry, Mapping) and geometry.get("type") in ("Polygon", "MultiPolygon"):
        raw = geometry.get("coordinates")
        if not raw or (isinstance(raw, list) and not any(raw)):
            raise InvalidGeometry("the drawn area is empty: it has no coordinates", code="geometry_empty")
    if not isinstance(geometry, Mapping):
        raise InvalidGeometry("a drawn area must be a GeoJSON object", code="geometry_invalid")
    if max_vertices is not None:  # from a request: check its shape before Shapely builds it
        check_polygon_json(geometry, max_vertices)
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
    lon and lat are swapped is named as such (code ``coordinates_swapped``); so is a radius
    larger than the service area (the diagonal of its extent; :data:`MAX_RADIUS_M` without
    one), code ``radius_too_large``: buffering a huge radius is slow and means a typo."""
    check_lonlat(np.array([[lon, lat]], np.float64), f"point ({lon}, {lat})", extent)
    if not (math.isfinite(radius_m) and radius_m > 0):
        raise InvalidGeometry("the radius must be a number of metres more than 0", code="bad_radius")
    limit = extent.diagonal_m() if extent is not None else MAX_RADIUS_M
    if radius_m > limit:
        raise InvalidGeometry(
            f"a radius of {radius_m:.6g} m is larger than the service area: give at most "
            f"{limit:,.0f} m (the diagonal of its extent)",
            code="radius_too_large",
        )
    local = LocalMetric.near(lon, lat)
    disc = local.unproject(local.project(Point(lon, lat)).buffer(radius_m, quad_segs=16))
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
