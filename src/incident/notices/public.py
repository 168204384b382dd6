"""What residents see: the open public incidents (the public page, its point check, the feeds).

An incident is public when a dispatcher made it so or a notice to households was approved
for it (``made_public`` on its timeline), until a dispatcher takes it off (``made_internal``);
a drill never is. Residents see only this: kind, utility, status, area, the public area
description, ETR, the planned window, how many households, when it last changed, and the text
of the last notice households were sent (per language). Never the title (it may carry
internal words), reports, notes, owners, or anything of a household.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, MutableMapping, Sequence
from enum import StrEnum
from typing import Any

import msgspec
import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from incident.core.clock import Timestamp
from incident.core.domain import OPEN_STATUSES, Incident, Kind, Status, TimelineEvent, Utility
from incident.core.errors import IncidentError
from incident.deliveries.records import Notice
from incident.geo.projection import LocalMetric
from incident.households import Channel
from incident.notices.context import NoticeContext
from incident.notices.templates import NoticeTemplates
from incident.store import Store

__all__ = [
    "Advice",
    "Answer",
    "PointCheck",
    "PublicIncident",
    "PublicView",
    "advice_of",
    "check_point",
    "public_incident",
]

log = logging.getLogger(__name__)


class Advice(msgspec.Struct, frozen=True, kw_only=True):
    """The last notice households were sent: its template and its SMS text per language."""

    template: str
    #: When it was approved (ISO, UTC).
    at: Timestamp | None
    #: ``{"en": "...", "zh-CN": "..."}``: the text as the SMS went out in each template language.
    text: dict[str, str]


class PublicIncident(msgspec.Struct, frozen=True, kw_only=True):
    """An open public incident as residents may see it."""

    id: str
    kind: Kind
    utility: Utility
    status: Status
    #: The affected area, GeoJSON in lon/lat (None until drawn).
    area: dict[str, Any] | None
    #: How households know the place, per language.
    area_description: dict[str, str]
    etr: Timestamp | None
    start: Timestamp | None
    end: Timestamp | None
    households: int | None
    declared_at: Timestamp
    updated_at: Timestamp
    advice: Advice | None
    #: The newest timeline event seen (a cache key; not shown to residents).
    seq: int


def public_incident(incident: Incident, advice: Advice | None) -> PublicIncident:
    return PublicIncident(
        id=incident.id,
        kind=incident.kind,
        utility=incident.utility,
        status=incident.status,
        area=incident.area,
        area_description=dict(incident.area_description),
        etr=incident.etr,
        start=incident.start,
        end=incident.end,
        households=incident.households,
        declared_at=incident.declared_at,
        updated_at=incident.updated_at,
        advice=advice,
        seq=incident.last_seq,
    )


def is_public(incident: Incident) -> bool:
    return incident.public and not incident.drill and incident.status in OPEN_STATUSES


def last_sent(notices: Sequence[Notice]) -> Notice | None:
    """The notice households heard last: the newest approved one."""
    approved = [n for n in notices if n.status == "approved" and n.approved_at]
    return max(approved, key=lambda n: (n.approved_at or "", n.notice_id), default=None)


def advice_of(notice: Notice, templates: NoticeTemplates) -> Advice | None:
    """The notice's SMS text in every template language (rendered again from its stored
    context, as the CAP export does), or None when it cannot be rendered."""
    try:
        context = msgspec.convert(notice.context, NoticeContext)
    except (msgspec.ValidationError, ValueError) as err:
        log.warning("public advice of %s not rendered: %s", notice.notice_id, err)
        return None
    if context.drill:
        return None
    cache = templates.cache(context)
    texts: dict[str, str] = {}
    for language in sorted(templates.languages):
        try:
            rendered = cache.render(notice.template, Channel.sms, language)
        except IncidentError as err:
            log.warning("public advice of %s in %s not rendered: %s", notice.notice_id, language, err.message)
            continue
        texts.setdefault(rendered.language_used, rendered.text)
    if not texts:
        return None
    return Advice(template=notice.template, at=notice.approved_at, text=texts)


# --- is a point affected? ------------------------------------------------------------------


class Answer(StrEnum):
    affected = "affected"
    near = "near"
    not_affected = "not_affected"


class PointCheck(msgspec.Struct, frozen=True, kw_only=True):
    incident: PublicIncident
    answer: Answer
    #: Metres from the area's edge (0 inside); None when far beyond ``near_m``.
    distance_m: float | None


#: Degrees of latitude per metre, and a margin for the quick "far away" test.
_DEG_PER_M = 1.0 / 111_000.0


def _far(geometry: BaseGeometry, lon: float, lat: float, near_m: float) -> bool:
    """Surely further than ``near_m`` (a bounding-box test in degrees, generous)."""
    xmin, ymin, xmax, ymax = geometry.bounds
    dlat = near_m * _DEG_PER_M * 1.5
    # A degree of longitude is shortest at the highest latitude the box or the point reaches.
    highest = min(max(abs(lat), abs(ymin), abs(ymax)), 89.0)
    dlon = dlat / max(math.cos(math.radians(highest)), 0.01)
    return lon < xmin - dlon or lon > xmax + dlon or lat < ymin - dlat or lat > ymax + dlat


#: A projected area: by incident, its timeline position and the projection's centre.
ProjectedKey = tuple[str, int, float, float]
_PROJECTED_MAX = 1024


def check_point(
    incidents: Sequence[PublicIncident], shapes: Mapping[str, BaseGeometry], lon: float, lat: float,
    near_m: float, projected: MutableMapping[ProjectedKey, BaseGeometry] | None = None,
) -> list[PointCheck]:  # fmt: skip
    """For each incident with an area: is (lon, lat) inside it, within ``near_m`` metres of
    it, or neither. Answers come from the incidents' areas alone, never from the household
    registry. ``shapes`` holds each incident's area geometry by id; ``projected`` keeps the
    areas projected for distances (a large area is projected once per neighbourhood)."""
    point = Point(lon, lat)
    out: list[PointCheck] = []
    for incident in incidents:
        geometry = shapes.get(incident.id)
        if geometry is None:
            continue
        if geometry.covers(point):
            out.append(PointCheck(incident=incident, answer=Answer.affected, distance_m=0.0))
            continue
        if _far(geometry, lon, lat, near_m):
            out.append(PointCheck(incident=incident, answer=Answer.not_affected, distance_m=None))
            continue
        metric = LocalMetric.near(lon, lat)
        key = (incident.id, incident.seq, round(lon * 4) / 4, round(lat * 4) / 4)
        area = projected.get(key) if projected is not None else None
        if area is None:
            area = metric.project(geometry)
            if projected is not None:
                if len(projected) >= _PROJECTED_MAX:
                    projected.clear()
                projected[key] = area
        distance = float(area.distance(metric.project(point)))
        answer = Answer.near if distance <= near_m else Answer.not_affected
        out.append(PointCheck(incident=incident, answer=answer, distance_m=round(distance, 1)))
    return out


def area_shape(area: dict[str, Any] | None) -> BaseGeometry | None:
    if not area:
        return None
    try:
        geometry = shape(area)
    except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.ShapelyError):
        return None
    if geometry.is_empty:
        return None
    shapely.prepare(geometry)
    return geometry


# --- the service -----------------------------------------------------------------------------


class PublicView:
    """The open public incidents, kept for ``ttl_s`` seconds (an instance is told of its own
    changes at once through :meth:`changed`; others' show within ``ttl_s``). Each incident is
    built again only when its timeline moved."""

    def __init__(
        self, store: Store, templates: NoticeTemplates, *, ttl_s: float = 5.0, limit: int = 500
    ) -> None:
        self._store = store
        self._templates = templates
        self._ttl_s = ttl_s
        self._limit = limit
        self._lock = asyncio.Lock()
        self._built: dict[str, PublicIncident] = {}
        self._shapes: dict[str, BaseGeometry] = {}
        self._projected: dict[ProjectedKey, BaseGeometry] = {}
        self._current: list[PublicIncident] | None = None
        self._at = 0.0
        #: Bumped on every change: a refresh that began before it is not kept as current.
        self._generation = 0

    def changed(self, incident_id: str, events: Sequence[TimelineEvent]) -> None:
        """An incident changed here (an :class:`IncidentService` listener)."""
        self._generation += 1
        self._current = None

    async def incidents(self) -> list[PublicIncident]:
        """The open public incidents, newest first."""
        current = self._current
        if current is not None and time.monotonic() - self._at < self._ttl_s:
            return current
        async with self._lock:
            current = self._current
            if current is not None and time.monotonic() - self._at < self._ttl_s:
                return current
            generation = self._generation
            fresh = await self._refresh()
            if generation == self._generation:
                self._current, self._at = fresh, time.monotonic()
            return fresh

    async def check(self, lon: float, lat: float, near_m: float) -> list[PointCheck]:
        incidents = await self.incidents()
        return check_point(incidents, self._shapes, lon, lat, near_m, self._projected)

    async def _refresh(self) -> list[PublicIncident]:
        listed = await self._store.list_incidents(OPEN_STATUSES, self._limit)
        out: list[PublicIncident] = []
        for incident in listed:
            if not is_public(incident):
                continue
            built = self._built.get(incident.id)
            if built is None or built.seq != incident.last_seq:
                built = public_incident(incident, await self._advice(incident.id))
                self._built[incident.id] = built
                geometry = area_shape(built.area)
                if geometry is None:
                    self._shapes.pop(incident.id, None)
                else:
                    self._shapes[incident.id] = geometry
            out.append(built)
        keep = {i.id for i in out}
        for gone in set(self._built) - keep:
            self._built.pop(gone, None)
            self._shapes.pop(gone, None)
        return out

    async def _advice(self, incident_id: str) -> Advice | None:
        notice = last_sent(await self._store.list_notices(incident_id))
        return None if notice is None else advice_of(notice, self._templates)
