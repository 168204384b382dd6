"""Errors of the geo package.

    GeoError                  base; ``code`` is stable and machine-readable
    ├── FileFormatError       a households, layer, network or valves file cannot be read at all
    ├── InvalidGeometry       a geometry is not usable (and could not be repaired)
    ├── UnknownReference      a pipe, valve, node or zone id that the loaded data does not have
    └── ProjectionError       a CRS is unknown or coordinates do not fit it

Row-level problems in a households or valves file are not raised: they come back as
rejected rows so one bad line never stops a load. Messages never contain phone numbers.
"""

from __future__ import annotations

from incident.core.errors import InvalidInput


class GeoError(InvalidInput):
    """Base of every error the geo package raises on purpose: bad input (a 4xx), part of
    the service's one hierarchy (:mod:`incident.core.errors`)."""

    code: str = "geo_error"


class FileFormatError(GeoError):
    code = "geo_file_format"


class InvalidGeometry(GeoError):
    code = "geo_invalid_geometry"


class UnknownReference(GeoError):
    code = "geo_unknown_reference"


class ProjectionError(GeoError):
    code = "geo_projection"
