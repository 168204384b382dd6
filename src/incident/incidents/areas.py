"""An incident's affected area: parts added and removed, resolved against the service area.

An area is a list of parts, each added or removed: a drawn polygon, zones, a disc around a
point, or an isolation trace from a broken pipe. The households affected are those inside
the added polygons or on the pipes an isolation leaves dry, less those inside a removed
part. Pure: the service area and the parts in, geometry and households out.

Everything here is CPU work: callers run it in a worker thread with a :class:`Deadline`
(:mod:`incident.incidents.area_worker`), and an area from a request is bounded by :class:`AreaLimits`
before any geometry is built.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import shapely
from shapely.geometry import mapping

from incident.core.domain import ONE_LINE_PATTERN
from incident.core.errors import AreaTooComplex, InvalidInput
from incident.geo import GeoError, area_around_point, area_from_geojson, area_from_zones
from incident.households import (
    Isolation,
    Selection,
    ServiceArea,
    count_by_language,
    count_by_priority,
    households_in_area,
    isolate_pipe,
)

Op = Literal["add", "remove"]

#: A language tag as the templates use them: en, zh-CN, pt-BR.
LanguageTag = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$", max_length=35)]
#: How households know the place, in one language.
AreaText = Annotated[str, msgspec.Meta(min_length=1, max_length=300, pattern=ONE_LINE_PATTERN)]
#: The public description of an area, per language: ``{"en": "Maple St 1-99", "zh-CN": "枫树街1-99号"}``.
AreaDescription = Annotated[dict[LanguageTag, AreaText], msgspec.Meta(min_length=1, max_length=20)]


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


@dataclass(frozen=True)
class Piece:
    """One part resolved: whether it adds or removes, its households and polygon, and for an
    isolation its valves to close and dry pipes."""

    op: Op
    selection: Selection
    geometry: Any
    valves: tuple[str, ...] = ()
    pipes: tuple[str, ...] = ()


def _isolated(op: Op, iso: Isolation) -> Piece:
    return Piece(op, iso.households, iso.area.geometry, iso.trace.valves_to_close, iso.trace.affected_links)


def make_part(
    service: ServiceArea, request: AreaRequest, op: Op, buffer_m: float, limits: AreaLimits = DEFAULT_LIMITS
) -> tuple[dict[str, Any], Piece]:
    """The stored form of one part (how it was derived and its polygon, lon/lat GeoJSON),
    and the part resolved."""
    method = request.method()
    index = service.households
    try:
        part: dict[str, Any]
        if method == "isolate":
            assert request.isolate is not None
            inoperable = list(dict.fromkeys(request.isolate.inoperable))
            iso = isolate_pipe(service, request.isolate.pipe, inoperable, buffer_m)
            piece = _isolated(op, iso)
            part = {
                "method": "isolation",
                "pipe": request.isolate.pipe,
                "inoperable": inoperable,
                "valves_to_close": list(iso.trace.valves_to_close),
                "affected_pipes": list(iso.trace.affected_links),
            }
        else:
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
            else:
                assert request.around is not None
                a = request.around
                area = area_around_point(a.lon, a.lat, a.radius_m, extent=service.extent)
                part = {"method": "around", "lon": a.lon, "lat": a.lat, "radius_m": a.radius_m}
            piece = Piece(op, households_in_area(index, area), area.geometry)
    except GeoError as err:
        raise _geo(err) from err
    return {"op": op, **part, "geometry": mapping(piece.geometry)}, piece


def _piece(service: ServiceArea, part: dict[str, Any], buffer_m: float) -> Piece:
    """A stored part resolved again (an isolation is traced again: the network may be new)."""
    op: Op = part["op"]
    if part["method"] == "isolation":
        iso = isolate_pipe(service, part["pipe"], part.get("inoperable", []), buffer_m)
        return _isolated(op, iso)
    area = area_from_geojson(part["geometry"], repair=True)
    return Piece(op, households_in_area(service.households, area), area.geometry)


def pieces(
    service: ServiceArea, parts: Sequence[dict[str, Any]], buffer_m: float, deadline: Deadline = NO_DEADLINE
) -> list[Piece]:
    out = []
    try:
        for part in parts:
            deadline.check()
            out.append(_piece(service, part, buffer_m))
    except GeoError as err:
        raise _geo(err) from err
    return out


def households_of(resolved: Sequence[Piece]) -> Selection:
    """The households of parts applied in order (without the polygon: cheaper)."""
    chosen = Selection(np.empty(0, dtype=np.int64))
    for piece in resolved:
        chosen = chosen | piece.selection if piece.op == "add" else chosen - piece.selection
    return chosen


def combine(resolved: Sequence[Piece]) -> Resolved:
    """The geometry and households of resolved parts together."""
    merged: Any = None
    valves: set[str] = set()
    pipes: set[str] = set()
    # Parts apply in order, to the households and to the polygon alike, so the two agree.
    for piece in resolved:
        valves.update(piece.valves)
        pipes.update(piece.pipes)
        if piece.op == "add":
            merged = piece.geometry if merged is None else shapely.union(merged, piece.geometry)
        else:
            merged = None if merged is None else shapely.difference(merged, piece.geometry)
    shape = None if merged is None or merged.is_empty else mapping(merged)
    return Resolved(shape, households_of(resolved), tuple(sorted(valves)), tuple(sorted(pipes)))


def resolve(
    service: ServiceArea, parts: Sequence[dict[str, Any]], buffer_m: float, deadline: Deadline = NO_DEADLINE
) -> Resolved:
    """The geometry and households of all ``parts`` together."""
    return combine(pieces(service, parts, buffer_m, deadline))


@dataclass(frozen=True)
class Change:
    parts: list[dict[str, Any]]
    after: Resolved
    households_before: int


def change(
    service: ServiceArea,
    current: Sequence[dict[str, Any]],
    request: AreaRequest,
    buffer_m: float,
    limits: AreaLimits = DEFAULT_LIMITS,
    deadline: Deadline = NO_DEADLINE,
) -> Change:
    """The area after ``request``: its parts and what they resolve to, and the households of
    the area before. Each part is resolved once (the new one as it is made)."""
    if request.op == "remove" and not current:
        raise InvalidInput("the incident has no area to remove a part from")
    if request.op != "replace" and len(current) >= limits.max_parts:
        raise InvalidInput(
            f"the area already has {len(current)} parts, the most allowed ([area] max_parts = "
            f"{limits.max_parts}): replace it with a simpler area (op replace, or zones)",
            code="area_too_many_parts",
        )
    old = pieces(service, current, buffer_m, deadline)
    before = len(households_of(old)) if old else 0
    deadline.check()
    op: Op = "add" if request.op == "replace" else request.op
    part, piece = make_part(service, request, op, buffer_m, limits)
    deadline.check()
    if request.op == "replace":
        return Change([part], combine([piece]), before)
    return Change([*current, part], combine([*old, piece]), before)


def counts(service: ServiceArea, selection: Selection) -> dict[str, Any]:
    index = service.households
    return {
        "households": len(selection),
        "by_priority": count_by_priority(index, selection),
        "by_language": count_by_language(index, selection),
    }


# --- an incident's area as GeoJSON, for the console's map ------------------------------------


def _point(lon: float, lat: float, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}


def pipe_feature(service: ServiceArea, pipe_id: str, **props: Any) -> dict[str, Any]:
    """A pipe of the network as a GeoJSON Feature (for the console's map)."""
    assert service.network is not None
    link = service.network.link(pipe_id)
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [list(p) for p in link.path]},
        "properties": {"id": link.id, "kind": link.kind.value, "start": link.start, "end": link.end, **props},
    }


def area_features(service: ServiceArea, incident: Any) -> dict[str, Any]:
    """An incident's area for the map: the area polygon, the valves to close and the dry pipes,
    as one GeoJSON FeatureCollection."""
    features: list[dict[str, Any]] = []
    if incident.area is not None:
        features.append({
            "type": "Feature", "geometry": incident.area,
            "properties": {"role": "area", "households": incident.households, "parts": [
                {k: v for k, v in p.items() if k != "geometry"} for p in incident.area_parts
            ]},
        })  # fmt: skip
    network = service.network
    if network is not None and service.segments is not None:
        valves = {v.id: v for v in service.segments.valves}
        for part in incident.area_parts:
            if part.get("method") != "isolation" or part.get("op") != "add":
                continue
            for valve_id in part.get("valves_to_close", []):
                if valve_id in valves:
                    node = network.node(valves[valve_id].node)
                    features.append(_point(node.lon, node.lat, role="valve_to_close", id=valve_id,
                                           pipe=valves[valve_id].pipe))  # fmt: skip
            for pipe_id in part.get("affected_pipes", []):
                if pipe_id in network.link_index:
                    features.append(pipe_feature(service, pipe_id, role="affected_pipe"))
    return {"type": "FeatureCollection", "features": features}
