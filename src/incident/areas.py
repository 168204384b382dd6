"""An incident's affected area: parts added and removed, resolved against the service area.

An area is a list of parts, each added or removed: a drawn polygon, zones, a disc around a
point, or an isolation trace from a broken pipe. The households affected are those inside
the added polygons or on the pipes an isolation leaves dry, less those inside a removed
part. Pure: the service area and the parts in, geometry and households out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import shapely
from shapely.geometry import mapping

from incident.errors import InvalidInput
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

#: A language tag as the templates use them: en, zh-CN, pt-BR.
LanguageTag = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$", max_length=35)]
#: How households know the place, in one language.
AreaText = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
#: The public description of an area, per language: ``{"en": "Maple St 1-99", "zh-CN": "枫树街1-99号"}``.
AreaDescription = Annotated[dict[LanguageTag, AreaText], msgspec.Meta(min_length=1, max_length=20)]


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


def make_part(service: ServiceArea, request: AreaRequest, op: Op, buffer_m: float) -> dict[str, Any]:
    """The stored form of one part: how it was derived and its polygon (lon/lat GeoJSON)."""
    method = request.method()
    try:
        part: dict[str, Any]
        if method == "geometry":
            assert request.geometry is not None
            area = area_from_geojson(request.geometry, extent=service.extent, repair=request.repair)
            part = {"method": "drawn", "repaired": request.repair and area.geometry.is_valid}
        elif method in ("zone", "zones"):
            ids = [request.zone] if request.zone is not None else list(request.zones or [])
            area = area_from_zones(service.zones, ids)
            part = {"method": "zones", "zones": ids}
        elif method == "around":
            assert request.around is not None
            a = request.around
            area = area_around_point(a.lon, a.lat, a.radius_m, extent=service.extent)
            part = {"method": "around", "lon": a.lon, "lat": a.lat, "radius_m": a.radius_m}
        else:
            assert request.isolate is not None
            iso = isolate_pipe(service, request.isolate.pipe, request.isolate.inoperable, buffer_m)
            area = iso.area
            part = {
                "method": "isolation",
                "pipe": request.isolate.pipe,
                "inoperable": list(request.isolate.inoperable),
                "valves_to_close": list(iso.trace.valves_to_close),
                "affected_pipes": list(iso.trace.affected_links),
            }
    except GeoError as err:
        raise _geo(err) from err
    return {"op": op, **part, "geometry": mapping(area.geometry)}


def resolve(service: ServiceArea, parts: Sequence[dict[str, Any]], buffer_m: float) -> Resolved:
    """The geometry and households of all ``parts`` together."""
    index = service.households
    chosen = Selection(np.empty(0, dtype=np.int64))
    merged: Any = None
    valves: set[str] = set()
    pipes: set[str] = set()
    try:
        # Parts apply in order, to the households and to the polygon alike, so the two agree.
        for part in parts:
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
    current: Sequence[dict[str, Any]], request: AreaRequest, service: ServiceArea, buffer_m: float
) -> list[dict[str, Any]]:
    if request.op == "replace":
        return [make_part(service, request, "add", buffer_m)]
    if request.op == "remove" and not current:
        raise InvalidInput("the incident has no area to remove a part from")
    return [*current, make_part(service, request, request.op, buffer_m)]
