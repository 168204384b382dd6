"""Correlation: does a new report belong to an open incident, open one, or wait in triage?

Pure. The store hands over the open incidents with what is known of where and when
(:class:`Candidate`), and a batch of new reports; :func:`decide` answers per report, in
order, so a report can join an incident that an earlier report of the same batch opened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import shapely
from shapely.geometry import shape

from incident.core.domain import SEVERITY_ORDER, Incident, Kind, Utility
from incident.reports.model import Report
from incident.settings import AutoDeclareRule, CorrelationSettings

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Sighting:
    """One linked report's place and time."""

    report_id: str
    observed_at: datetime
    lon: float | None = None
    lat: float | None = None
    asset: tuple[str, str] | None = None


@dataclass
class Candidate:
    """An open incident (or one this batch opened: ``ref`` starts with ``new:``)."""

    ref: str
    kind: Kind
    utility: Utility
    area: Any = None  # shapely geometry in lon/lat
    sightings: list[Sighting] = field(default_factory=list)

    @classmethod
    def of(cls, incident: Incident, sightings: list[Sighting]) -> Candidate:
        area = shape(incident.area) if incident.area else None
        return cls(incident.id, incident.kind, incident.utility, area, sightings)


@dataclass(frozen=True)
class Link:
    ref: str
    reason: str


@dataclass(frozen=True)
class Declare:
    ref: str
    rule: AutoDeclareRule


@dataclass(frozen=True)
class Unassigned:
    pass


Decision = Link | Declare | Unassigned


def sighting_of(report: Report) -> Sighting:
    loc = report.location
    return Sighting(
        report_id=report.report_id,
        observed_at=report.observed_at,
        lon=loc.lon if loc else None,
        lat=loc.lat if loc else None,
        asset=(report.asset.type, report.asset.id) if report.asset else None,
    )


def _area_distance_m(area: Any, lon: float, lat: float) -> float:
    if area.contains(shapely.Point(lon, lat)):
        return 0.0
    # Equirectangular metres around the report: accurate to well under 1% at incident scale.
    kx = math.cos(math.radians(lat)) * math.pi * EARTH_RADIUS_M / 180
    ky = math.pi * EARTH_RADIUS_M / 180
    local = shapely.transform(area, lambda xy: (xy - (lon, lat)) * (kx, ky))
    return float(local.distance(shapely.Point(0, 0)))


def _match(
    report: Report, seen: Sighting, c: Candidate, settings: CorrelationSettings
) -> tuple[int, float, str] | None:
    """(rank, distance, reason) when the report belongs with ``c``; lower rank wins."""
    if report.utility != c.utility:
        return None
    best: tuple[int, float, str] | None = None
    if seen.asset is not None:
        for s in c.sightings:
            if s.asset == seen.asset:
                return (0, 0.0, f"same asset {seen.asset[0]} {seen.asset[1]} as report {s.report_id}")
    if c.kind not in settings.compatible.get(report.kind, []) or seen.lon is None or seen.lat is None:
        return None
    window = timedelta(minutes=settings.window_minutes)
    if c.area is not None:
        d = _area_distance_m(c.area, seen.lon, seen.lat)
        if d <= settings.distance_m:
            reason = "inside the incident area" if d == 0 else f"{d:.0f} m from the incident area"
            best = (1, d, reason)
    for s in c.sightings:
        if s.lon is None or s.lat is None or abs(s.observed_at - seen.observed_at) > window:
            continue
        d = haversine_m(seen.lon, seen.lat, s.lon, s.lat)
        if d <= settings.distance_m and (best is None or d < best[1]):
            minutes = abs(s.observed_at - seen.observed_at).total_seconds() / 60
            best = (1, d, f"{d:.0f} m and {minutes:.0f} min from report {s.report_id}")
    return best


def _rule_for(report: Report, settings: CorrelationSettings) -> AutoDeclareRule | None:
    for rule in settings.auto_declare:
        if rule.kind == report.kind and SEVERITY_ORDER[report.severity] >= SEVERITY_ORDER[rule.min_severity]:
            return rule
    return None


def decide(
    reports: list[Report], candidates: list[Candidate], settings: CorrelationSettings
) -> list[Decision]:
    """One decision per report, in order; ``candidates`` grows with what is decided."""
    decisions: list[Decision] = []
    opened = 0
    for report in reports:
        seen = sighting_of(report)
        scored = [(m, c) for c in candidates if (m := _match(report, seen, c, settings)) is not None]
        if scored:
            (_, _, reason), chosen = min(scored, key=lambda mc: (mc[0][0], mc[0][1]))
            chosen.sightings.append(seen)
            decisions.append(Link(chosen.ref, reason))
        elif (rule := _rule_for(report, settings)) is not None:
            ref = f"new:{opened}"
            opened += 1
            candidates.append(Candidate(ref, report.kind, report.utility, None, [seen]))
            decisions.append(Declare(ref, rule))
        else:
            decisions.append(Unassigned())
    return decisions
