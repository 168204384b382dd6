"""Coordinate conversions: a configured CRS to lon/lat, and local metric projections.

Everything the geo package keeps is lon/lat (WGS 84). Distances in metres (service
connection reach, buffers) are computed in an azimuthal equidistant projection centred on
the data at hand, which is exact enough (well under 0.1 %) over a service area.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from incident.geo.errors import ProjectionError

G = TypeVar("G", bound=BaseGeometry)
Coords = NDArray[np.float64]


@lru_cache(maxsize=16)
def _to_lonlat(crs: str) -> pyproj.Transformer:
    try:
        return pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(crs), "EPSG:4326", always_xy=True)
    except CRSError as err:
        raise ProjectionError(f"unknown CRS {crs!r}: {err}") from None


def to_lonlat(xy: Coords, crs: str | None) -> Coords:
    """Convert an (n, 2) array of coordinates in ``crs`` to lon/lat; empty ``crs`` means
    they already are lon/lat, which is then checked."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if crs:
        lon, lat = _to_lonlat(crs).transform(xy[:, 0], xy[:, 1])
        out = np.column_stack([lon, lat])
        if not np.isfinite(out).all():
            raise ProjectionError(f"some coordinates cannot be converted from {crs}")
        return out
    if len(xy) and not (np.abs(xy[:, 0]).max() <= 180 and np.abs(xy[:, 1]).max() <= 90):
        raise ProjectionError(
            "coordinates are not lon/lat (values beyond ±180/±90): set the network's CRS, "
            'e.g. [area] crs = "EPSG:3089"'
        )
    return xy


class LocalMetric:
    """Forward and back between lon/lat and metres around a centre point."""

    def __init__(self, lon: float, lat: float) -> None:
        aeqd = pyproj.CRS.from_proj4(
            f"+proj=aeqd +lat_0={lat:.8f} +lon_0={lon:.8f} +datum=WGS84 +units=m +no_defs"
        )
        self._fwd = pyproj.Transformer.from_crs("EPSG:4326", aeqd, always_xy=True)
        self._back = pyproj.Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True)

    @classmethod
    def near(cls, lon: float, lat: float) -> LocalMetric:
        """A shared projection centred on the nearest quarter degree to (lon, lat). Making one
        costs ~4 ms in pyproj, most of an isolation's time; an azimuthal equidistant
        projection stretches distances d away from its centre by about (d/R)^2/6, under 1e-5
        within 50 km, so one centre serves a whole neighbourhood."""
        return _near(round(lon * 4) / 4, round(lat * 4) / 4)

    @classmethod
    def around(cls, geometry: BaseGeometry) -> LocalMetric:
        xmin, ymin, xmax, ymax = shapely.bounds(geometry).tolist()
        return cls.near((xmin + xmax) / 2, (ymin + ymax) / 2)

    def xy(self, lonlat: Coords) -> Coords:
        x, y = self._fwd.transform(lonlat[:, 0], lonlat[:, 1])
        return np.column_stack([x, y])

    def lonlat(self, xy: Coords) -> Coords:
        lon, lat = self._back.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    def project(self, geometry: G) -> G:
        return _apply(geometry, self.xy)

    def unproject(self, geometry: G) -> G:
        return _apply(geometry, self.lonlat)


@lru_cache(maxsize=256)
def _near(lon: float, lat: float) -> LocalMetric:
    # pyproj (>= 3.1) gives each thread its own PROJ objects: one transformer serves all threads.
    return LocalMetric(lon, lat)


def _apply(geometry: G, fn: Callable[[Coords], Coords]) -> G:
    out: G = shapely.transform(geometry, fn)
    return out
