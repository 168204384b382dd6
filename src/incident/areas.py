"""An incident's affected area: parts added and removed, resolved against the service area.

An area is a list of parts, each added or removed: a drawn polygon, zones, a disc around a
point, or an isolation trace from a broken pipe. The households affected are those inside
the added polygons or on the pipes an isolation leaves dry, less those inside a removed
part. Pure: the service area and the parts in, geometry and households out.

Everything here is CPU work: callers run it in a worker thread with a :class:`Deadline`
(:mod:`incident.area_worker`), and an area from a request is bounded by :class:`AreaLimits`
before any geometry is built.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import numpy as np
import shapely
from shapely.geometry import mapping

from incident.errors import AreaTooComplex, InvalidInput
from incident.geo import (
    GeoError,
    Selection,
    ServiceArea,
    area_around_point,
    area_from_geojson,
    area_from_zones,
    count_by_language,
    count_by_priority,
    households_in_area,
    isolate_pipe,
)

Op = Literal["add", "remove"]


@dataclass(frozen=True)
class AreaLimits:
    """Bounds on an area from a request (``[area] max_vertices``, ``max_parts``)."""

    max_vertices: int = 10_000
    max_parts: int = 20


DEFAULT_LIMITS = AreaLimits()


class Deadline:
    """When an area computation must give up; checked between its steps, so a thread that
    ran over its time limit stops at the next step instead of running on unseen."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self._at:
            raise too_complex(self.seconds)


#: No time limit (benchmarks, loading).
NO_DEADLINE = Deadline(float("inf"))


def too_complex(seconds: float) -> AreaTooComplex:
    return AreaTooComplex(
        f"the area took longer than the limit of {seconds:g} s to compute ([area] compute_timeout_s): "
        "use fewer parts, zones, or a simpler drawing"
    )


class Around(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    lon: float
    lat: float
    radius_m: float


class Isolate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pipe: str
    #: Valves that cannot be closed (stuck, paved over): the segment widens across them.
    inoperable: list[str] = msgspec.field(default_factory=list)


class AreaRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Exactly one way to give the area, and what to do with the incident's current one."""

    geometry: dict[str, Any] | None = None
    zone: str | None = None
    zones: list[str] | None = None
    around: Around | None = None
    isolate: Isolate | None = None
    #: replace (default) the area, add this part to it, or remove this part from it.
    op: Literal["replace", "add", "remove"] = "replace"
    #: Repair a self-intersecting drawn polygon instead of refusing it.
    repair: bool = False

    def method(self) -> str:
        given = [
            name
            for name in ("geometry", "zone", "zones", "around", "isolate")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise InvalidInput(
                "give exactly one of geometry, zone, zones, around or isolate"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return given[0]


@dataclass(frozen=True)
class Resolved:
    geometry: dict[str, Any] | None
    selection: Selection
    valves_to_close: tuple[str, ...]
    affected_pipes: tuple[str, ...]


def _geo(err: GeoError) -> InvalidInput:
    return InvalidInput(err.message, code=err.code)


def make_part(
    service: ServiceArea, request: AreaRequest, op: Op, buffer_m: float, limits: AreaLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """The stored form of one part: how it was derived and its polygon (lon/lat GeoJSON)."""
    method = request.method()
    try:
        part: dict[str, Any]
        if method == "geometry":
            assert request.geometry is not None
            area = area_from_geojson(
                request.geometry,
                extent=service.extent,
                repair=request.repair,
                max_vertices=limits.max_vertices,
            )
            part = {"method": "drawn", "repaired": request.repair and area.geometry.is_valid}
        elif method in ("zone", "zones"):
            # A zone named twice is the same zone (and a long list of repeats no extra work).
            ids = list(dict.fromkeys([request.zone] if request.zone is not None else request.zones or []))
            area = area_from_zones(service.zones, ids)
            part = {"method": "zones", "zones": ids}
        elif method == "around":
            assert request.around is not None
            a = request.around
            area = area_around_point(a.lon, a.lat, a.radius_m, extent=service.extent)
            part = {"method": "around", "lon": a.lon, "lat": a.lat, "radius_m": a.radius_m}
        else:
            assert request.isolate is not None
            inoperable = list(dict.fromkeys(request.isolate.inoperable))
            iso = isolate_pipe(service, request.isolate.pipe, inoperable, buffer_m)
            area = iso.area
            part = {
                "method": "isolation",
                "pipe": request.isolate.pipe,
                "inoperable": inoperable,
                "valves_to_close": list(iso.trace.valves_to_close),
                "affected_pipes": list(iso.trace.affected_links),
            }
    except GeoError as err:
        raise _geo(err) from err
    return {"op": op, **part, "geometry": mapping(area.geometry)}


def resolve(
    service: ServiceArea, parts: Sequence[dict[str, Any]], buffer_m: float, deadline: Deadline = NO_DEADLINE
) -> Resolved:
    """The geometry and households of all ``parts`` together."""
    index = service.households
    chosen = Selection(np.empty(0, dtype=np.int64))
    merged: Any = None
    valves: set[str] = set()
    pipes: set[str] = set()
    try:
        # Parts apply in order, to the households and to the polygon alike, so the two agree.
        for part in parts:
            deadline.check()
            if part["method"] == "isolation":
                iso = isolate_pipe(service, part["pipe"], part.get("inoperable", []), buffer_m)
                selection, geometry = iso.households, iso.area.geometry
                valves.update(iso.trace.valves_to_close)
                pipes.update(iso.trace.affected_links)
            else:
                area = area_from_geojson(part["geometry"], repair=True)
                selection, geometry = households_in_area(index, area), area.geometry
            if part["op"] == "add":
                chosen = chosen | selection
                merged = geometry if merged is None else shapely.union(merged, geometry)
            else:
                chosen = chosen - selection
                merged = None if merged is None else shapely.difference(merged, geometry)
    except GeoError as err:
        raise _geo(err) from err
    shape = None if merged is None or merged.is_empty else mapping(merged)
    return Resolved(shape, chosen, tuple(sorted(valves)), tuple(sorted(pipes)))


def counts(service: ServiceArea, selection: Selection) -> dict[str, Any]:
    index = service.households
    return {
        "households": len(selection),
        "by_priority": count_by_priority(index, selection),
        "by_language": count_by_language(index, selection),
    }


def new_parts(
    current: Sequence[dict[str, Any]],
    request: AreaRequest,
    service: ServiceArea,
    buffer_m: float,
    limits: AreaLimits = DEFAULT_LIMITS,
) -> list[dict[str, Any]]:
    if request.op == "replace":
        return [make_part(service, request, "add", buffer_m, limits)]
    if request.op == "remove" and not current:
        raise InvalidInput("the incident has no area to remove a part from")
    if len(current) >= limits.max_parts:
        raise InvalidInput(
            f"the area already has {len(current)} parts, the most allowed ([area] max_parts = "
            f"{limits.max_parts}): replace it with a simpler area (op replace, or zones)",
            code="area_too_many_parts",
        )
    return [*current, make_part(service, request, request.op, buffer_m, limits)]
