"""Zone layers: named polygons with ids (pressure zones, district metered areas, ...) (pure).

Each GeoJSON feature becomes a :class:`Zone`. An invalid polygon (self-intersecting ring,
bow-tie, ...) is repaired with ``shapely.make_valid`` keeping only its polygonal parts; a
feature that has no area left, or is not a polygon at all, is rejected with a reason that
names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from incident.geo.errors import FileFormatError, InvalidGeometry, UnknownReference
from incident.geo.extent import Extent, check_lonlat
from incident.geo.projection import to_lonlat
from incident.geo.rows import RejectedRow

Polygonal = Polygon | MultiPolygon


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    layer: str
    name: str
    geometry: Polygonal = field(repr=False)
    #: The drawn geometry was invalid and this is its repaired form.
    repaired: bool = False
    #: The name per language tag, from properties ``name:zh-CN`` (OSM style) or ``names``
    #: (``{"zh-CN": ...}``); public notices say it for "where".
    names: Mapping[str, str] = field(default_factory=dict)

    def name_in(self, language: str) -> str:
        return self.names.get(language) or self.name


def polygonal(geometry: BaseGeometry) -> Polygonal | None:
    """The polygonal part of ``geometry`` made valid, or None when it has no area."""
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    parts = [p for p in shapely.get_parts(geometry).tolist() if isinstance(p, Polygon | MultiPolygon)]
    polygons = [
        q for p in parts for q in shapely.get_parts(p).tolist() if isinstance(q, Polygon) and q.area > 0
    ]
    if not polygons:
        return None
    if len(polygons) == 1:
        only: Polygon = polygons[0]
        return only
    merged = shapely.union_all(polygons)
    if isinstance(merged, Polygon | MultiPolygon):
        return merged
    return None  # pragma: no cover - a union of polygons is polygonal


def geometry_from_geojson(geometry: Mapping[str, Any], crs: str | None = None) -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry object, converted to lon/lat."""
    try:
        geom = shape(dict(geometry))
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, shapely.errors.ShapelyError) as err:
        raise InvalidGeometry(f"not a GeoJSON geometry: {err}", code="geometry_invalid") from None
    coords = shapely.get_coordinates(geom)
    if len(coords) == 0:
        raise InvalidGeometry("the geometry is empty", code="geometry_empty")
    if not np.isfinite(coords).all():
        raise InvalidGeometry("the geometry has a coordinate that is not a number", code="not_lonlat")
    if not crs:
        check_lonlat(coords, "the geometry")
        return geom
    out: BaseGeometry = shapely.transform(geom, lambda xy: to_lonlat(xy, crs))
    return out


def zones_from_features(
    features: Iterable[Mapping[str, Any]], layer: str, crs: str | None = None, *, extent: Extent | None = None
) -> tuple[list[Zone], list[RejectedRow]]:
    """Read the zones of one layer; bad features come back as rejected rows.

    With the service area's ``extent``, a zone wholly outside it is rejected, and named as
    swapped when it would lie inside with lon and lat exchanged."""
    zones: list[Zone] = []
    rejected: list[RejectedRow] = []
    seen: set[str] = set()
    for index, feature in enumerate(features):
        properties = feature.get("properties") or {}
        raw_id = feature.get("id")
        if raw_id is None:
            raw_id = properties.get("id", properties.get("zone_id"))
        zone_id = str(raw_id).strip() if raw_id is not None else ""
        name = str(properties.get("name") or zone_id)
        label = f"{layer} feature {index}" + (f" ({zone_id})" if zone_id else "")
        if not zone_id:
            rejected.append(RejectedRow("feature", index, None, f"{label} has no id"))
            continue
        if zone_id in seen:
            rejected.append(
                RejectedRow("feature", index, zone_id, f"{label}: id appears earlier in the layer")
            )
            continue
        try:
            geom = geometry_from_geojson(feature.get("geometry") or {}, crs)
            check_lonlat(shapely.get_coordinates(geom), "the zone", extent)
        except InvalidGeometry as err:
            rejected.append(RejectedRow("feature", index, zone_id, f"{label}: {err.message}"))
            continue
        if not isinstance(geom, Polygon | MultiPolygon):
            rejected.append(
                RejectedRow("feature", index, zone_id, f"{label}: {geom.geom_type} is not a polygon")
            )
            continue
        valid = polygonal(geom)
        if valid is None:
            rejected.append(
                RejectedRow("feature", index, zone_id, f"{label}: polygon has no area, even repaired")
            )
            continue
        seen.add(zone_id)
        zones.append(Zone(zone_id, layer, name, valid, repaired=not geom.is_valid, names=_names(properties)))
    return zones, rejected


def _names(properties: Mapping[str, Any]) -> dict[str, str]:
    names = {k[5:]: str(v).strip() for k, v in properties.items() if k.startswith("name:") and str(v).strip()}
    given = properties.get("names")
    if isinstance(given, Mapping):
        names.update({str(k): str(v).strip() for k, v in given.items() if str(v).strip()})
    return names


@dataclass(frozen=True)
class ZoneSet:
    """Zones of every layer, found by id (ids are unique across layers)."""

    zones: tuple[Zone, ...]
    by_id: Mapping[str, Zone] = field(repr=False)

    @classmethod
    def build(cls, zones: Sequence[Zone]) -> ZoneSet:
        by_id: dict[str, Zone] = {}
        for zone in zones:
            if zone.id in by_id:
                first = by_id[zone.id]
                raise FileFormatError(
                    f"zone id {zone.id!r} is in layer {first.layer!r} and in layer {zone.layer!r}; "
                    "zone ids must be unique across layers"
                )
            by_id[zone.id] = zone
        return cls(tuple(zones), by_id)

    def get(self, zone_id: str) -> Zone:
        try:
            return self.by_id[zone_id]
        except KeyError:
            raise UnknownReference(f"zone {zone_id!r} is in no layer", code="unknown_zone") from None

    def get_all(self, zone_ids: Sequence[str]) -> list[Zone]:
        """The named zones; every unknown id is named in one error (code ``unknown_zone``)."""
        unknown = sorted({z for z in zone_ids if z not in self.by_id})
        if unknown:
            shown = ", ".join(repr(z) for z in unknown[:10]) + (" and more" if len(unknown) > 10 else "")
            raise UnknownReference(f"zone(s) in no layer: {shown}", code="unknown_zone")
        return [self.by_id[z] for z in zone_ids]

    def layers(self) -> dict[str, list[str]]:
        """Zone ids per layer name."""
        out: dict[str, list[str]] = {}
        for zone in self.zones:
            out.setdefault(zone.layer, []).append(zone.id)
        return out
