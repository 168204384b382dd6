"""Where the service area is, and the check that coordinates are lon/lat and not swapped (pure).

Latitude and longitude given the wrong way round are the commonest coordinate mistake
(many tools write "lat, lon"; GeoJSON and this service take ``[lon, lat]``). Around
lon -85.6, lat 38.0 a swap is silent: (38.0, -85.6) is a valid position, in Antarctica.
So a position is checked twice: against ±180/±90, and, when the service area is known,
against its extent. If the position fails and its swap passes, the error says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from incident.geo.errors import InvalidGeometry

#: Metres of slack around the network's extent (a zone or a radius may reach a little beyond).
MARGIN_M = 5000.0
_M_PER_DEG = 111_320.0
_EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class Extent:
    """A lon/lat bounding box, slack included."""

    west: float
    south: float
    east: float
    north: float

    @classmethod
    def around(cls, lon: NDArray[np.float64], lat: NDArray[np.float64], margin_m: float = MARGIN_M) -> Extent:
        if not len(lon):
            raise ValueError("an extent needs at least one position")
        south, north = float(lat.min()), float(lat.max())
        dlat = margin_m / _M_PER_DEG
        cos = max(math.cos(math.radians(max(abs(south), abs(north)))), 0.01)
        dlon = margin_m / (_M_PER_DEG * cos)
        return cls(
            float(lon.min()) - dlon,
            max(south - dlat, -90.0),
            float(lon.max()) + dlon,
            min(north + dlat, 90.0),
        )

    def diagonal_m(self) -> float:
        """Great-circle distance from the south-west corner to the north-east one, in metres:
        the service area's size (a radius larger than this covers all of it)."""
        lat0, lat1 = math.radians(self.south), math.radians(self.north)
        dlat, dlon = lat1 - lat0, math.radians(self.east - self.west)
        h = math.sin(dlat / 2) ** 2 + math.cos(lat0) * math.cos(lat1) * math.sin(dlon / 2) ** 2
        return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))

    def intersects_box(self, west: float, south: float, east: float, north: float) -> bool:
        return west <= self.east and east >= self.west and south <= self.north and north >= self.south

    def __str__(self) -> str:
        return f"lon {self.west:.4f}..{self.east:.4f}, lat {self.south:.4f}..{self.north:.4f}"


def check_lonlat(coords: NDArray[np.float64], what: str, extent: Extent | None = None) -> None:
    """Raise :class:`InvalidGeometry` unless the (n, 2) ``coords`` are lon/lat positions
    and, given an ``extent``, at least touch it. The code is ``coordinates_swapped`` when
    the positions fit once lon and lat are exchanged, else ``not_lonlat`` or
    ``outside_service_area``."""
    coords = np.asarray(coords, np.float64).reshape(-1, 2)
    if not len(coords):
        raise InvalidGeometry(f"{what} has no coordinates", code="geometry_empty")
    if not np.isfinite(coords).all():
        raise InvalidGeometry(f"{what} has a coordinate that is not a number", code="not_lonlat")
    lon, lat = coords[:, 0], coords[:, 1]
    if np.abs(lon).max() > 180 or np.abs(lat).max() > 90:
        if np.abs(lat).max() <= 180 and np.abs(lon).max() <= 90:
            raise InvalidGeometry(
                f"{what}: latitude beyond ±90; the coordinates look swapped (lat, lon): "
                "give positions as [lon, lat]",
                code="coordinates_swapped",
            )
        raise InvalidGeometry(f"{what}: coordinates are not lon/lat (beyond ±180/±90)", code="not_lonlat")
    if extent is None:
        return
    box = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    if extent.intersects_box(*box):
        return
    if extent.intersects_box(box[1], box[0], box[3], box[2]):
        raise InvalidGeometry(
            f"{what} lies outside the service area ({extent}), but would lie inside with lon and "
            "lat exchanged: the coordinates look swapped; give positions as [lon, lat]",
            code="coordinates_swapped",
        )
    raise InvalidGeometry(
        f"{what} lies entirely outside the service area ({extent})", code="outside_service_area"
    )


def swapped_into(lon: float, lat: float, extent: Extent) -> bool:
    """The position is outside ``extent`` and (lat, lon) read as (lon, lat) is inside."""
    return not extent.intersects_box(lon, lat, lon, lat) and extent.intersects_box(lat, lon, lat, lon)
