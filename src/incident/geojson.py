"""Just enough GeoJSON checking to refuse a broken drawn area at the door (pure)."""

from __future__ import annotations

from typing import Any

from incident.errors import InvalidInput


def _ring(ring: Any, where: str) -> None:
    if not isinstance(ring, list) or len(ring) < 4:
        raise InvalidInput(f"{where}: a ring needs at least 4 positions")
    for pos in ring:
        if (
            not isinstance(pos, list)
            or len(pos) < 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos[:2])
        ):
            raise InvalidInput(f"{where}: each position is [lon, lat]")
        lon, lat = pos[0], pos[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise InvalidInput(f"{where}: position [{lon}, {lat}] is not a lon/lat pair")
    if ring[0][:2] != ring[-1][:2]:
        raise InvalidInput(f"{where}: a ring must end where it starts")


def check_area_geometry(geometry: dict[str, Any], where: str = "area") -> None:
    """Raise :class:`InvalidInput` unless ``geometry`` is a lon/lat Polygon or MultiPolygon."""
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon" and isinstance(coords, list):
        polygons = coords
    else:
        raise InvalidInput(f"{where}: must be a GeoJSON Polygon or MultiPolygon, got type {kind!r}")
    if not polygons:
        raise InvalidInput(f"{where}: has no polygons")
    for p, polygon in enumerate(polygons):
        if not isinstance(polygon, list) or not polygon:
            raise InvalidInput(f"{where}: polygon {p} has no rings")
        for r, ring in enumerate(polygon):
            _ring(ring, f"{where}: polygon {p} ring {r}")
