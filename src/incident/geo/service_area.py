"""A loaded service area: network, valve segments, zones and the household index (pure).

:func:`build_service_area` assembles parsed data once at start; the functions below are
what the API calls per incident.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from incident.geo.area import Area, area_around_trace
from incident.geo.errors import UnknownReference
from incident.geo.household import Household
from incident.geo.index import (
    Attachment,
    HouseholdIndex,
    Selection,
    attach_households,
    households_affected,
    households_in_area,
)
from incident.geo.layers import ZoneSet
from incident.geo.network import Network, Valve
from incident.geo.rows import RejectedRow
from incident.geo.segments import IsolationTrace, SegmentMap, build_segments, isolate


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Everything that was not loaded as asked, for the operator to fix (never dropped silently)."""

    households_rejected: tuple[RejectedRow, ...] = ()
    valves_rejected: tuple[RejectedRow, ...] = ()
    #: (layer name, rejected feature)
    zones_rejected: tuple[tuple[str, RejectedRow], ...] = ()
    #: Account ids of households with no pipe within reach; they are still in the index.
    unattached: tuple[str, ...] = ()
    #: Zone ids whose polygon was repaired.
    zones_repaired: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceArea:
    households: HouseholdIndex
    zones: ZoneSet
    network: Network | None = field(repr=False, default=None)
    segments: SegmentMap | None = field(repr=False, default=None)
    attachment: Attachment | None = field(repr=False, default=None)
    report: LoadReport = field(default_factory=LoadReport)


def build_service_area(
    households: Sequence[Household],
    zones: ZoneSet,
    network: Network | None = None,
    valves: Sequence[Valve] = (),
    *,
    max_distance_m: float = 100.0,
    report: LoadReport | None = None,
) -> ServiceArea:
    """Index the households, attach them to pipes and segment the network, once."""
    base = report or LoadReport()
    attachment = attach_households(network, households, max_distance_m) if network else None
    index = HouseholdIndex.build(households, network, attachment)
    unattached = tuple(households[i].account_id for i in attachment.unattached) if attachment else ()
    repaired = tuple(z.id for z in zones.zones if z.repaired)
    full_report = LoadReport(
        base.households_rejected, base.valves_rejected, base.zones_rejected, unattached, repaired
    )
    segments = build_segments(network, valves) if network else None
    return ServiceArea(index, zones, network, segments, attachment, full_report)


@dataclass(frozen=True, slots=True)
class Isolation:
    trace: IsolationTrace
    area: Area
    households: Selection


def isolate_pipe(
    service: ServiceArea, pipe: str, inoperable: Collection[str] = (), buffer_m: float = 30.0
) -> Isolation:
    """Isolate broken ``pipe``: the trace, a band around the dry pipes, and the households.

    The households are those on a dry pipe, plus households with no pipe within reach
    that lie inside the band: they cannot be traced, and leaving them out is the worse error.
    """
    if service.segments is None or service.network is None:
        raise UnknownReference("no pipe network is loaded", code="no_network")
    trace = isolate(service.segments, pipe, inoperable)
    area = area_around_trace(service.network, trace, buffer_m)
    on_pipes = households_affected(service.households, trace)
    loose = service.households.pipe_position < 0
    inside = households_in_area(service.households, area)
    loose_inside = Selection(inside.positions[loose[inside.positions]].astype(np.int64))
    return Isolation(trace, area, on_pipes | loose_inside)
