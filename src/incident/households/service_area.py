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
from incident.geo.extent import Extent
from incident.geo.layers import ZoneSet
from incident.geo.network import Network, Valve
from incident.geo.rows import RejectedRow
from incident.geo.segments import IsolationTrace, SegmentMap, build_segments, isolate, unsourced_parts
from incident.households.index import (
    Attachment,
    HouseholdIndex,
    Selection,
    attach_households,
    households_affected,
    households_in_area_among,
)
from incident.households.model import Household
from incident.households.table import HouseholdTable


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
    #: Parts of the network that no reservoir or tank feeds (node ids, largest first).
    unsourced_parts: tuple[tuple[str, ...], ...] = ()
    #: Plain-language warnings for the operator, one per problem (no personal data).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceArea:
    households: HouseholdIndex
    zones: ZoneSet
    network: Network | None = field(repr=False, default=None)
    segments: SegmentMap | None = field(repr=False, default=None)
    attachment: Attachment | None = field(repr=False, default=None)
    report: LoadReport = field(default_factory=LoadReport)
    #: Where the service area is (network, else households, with slack): pass it to
    #: ``area_from_geojson``/``area_around_point`` to catch swapped lon/lat.
    extent: Extent | None = field(repr=False, default=None)


def service_extent(network: Network | None, households: HouseholdTable | None = None) -> Extent | None:
    """The network's extent, or the households' when there is no network, with slack."""
    if network is not None and network.nodes:
        lon = np.array([n.lon for n in network.nodes], np.float64)
        lat = np.array([n.lat for n in network.nodes], np.float64)
        return Extent.around(lon, lat)
    if households is not None and len(households):
        return Extent.around(households.lon, households.lat)
    return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def build_service_area(
    households: Sequence[Household],
    zones: ZoneSet,
    network: Network | None = None,
    valves: Sequence[Valve] = (),
    *,
    max_distance_m: float = 100.0,
    report: LoadReport | None = None,
) -> ServiceArea:
    """Index the households, attach them to pipes and segment the network, once.

    ``max_distance_m`` is ``[area] service_distance_m``: how far a household may be from
    its pipe. Problems found here land in the report: households with no pipe within
    reach, repaired zones, parts of the network without a source.
    """
    base = report or LoadReport()
    attachment = attach_households(network, households, max_distance_m) if network else None
    index = HouseholdIndex.build(households, network, attachment)
    unattached = (
        tuple(index.households.account_id[np.flatnonzero(attachment.link_position < 0)].tolist())
        if attachment
        else ()
    )
    repaired = tuple(z.id for z in zones.zones if z.repaired)
    segments = build_segments(network, valves) if network else None
    index.by_link  # noqa: B018 - made now, so the first isolation does not wait for it
    parts = unsourced_parts(segments) if segments else ()
    warnings = list(base.warnings)
    for part in parts:
        shown = ", ".join(part[:5]) + (f" and {len(part) - 5} more" if len(part) > 5 else "")
        warnings.append(
            f"network: {_plural(len(part), 'node')} ({shown}) connected to no reservoir or tank: "
            "a break there names the valves but counts the whole part as affected"
        )
    if unattached:
        warnings.append(
            f"households: {_plural(len(unattached), 'household')} with no pipe within "
            f"{max_distance_m:g} m (counted by area in an isolation, never dropped)"
        )
    warnings.extend(f"zone {z}: the polygon was invalid and has been repaired" for z in repaired)
    full_report = LoadReport(
        base.households_rejected,
        base.valves_rejected,
        base.zones_rejected,
        unattached,
        repaired,
        parts,
        tuple(warnings),
    )
    extent = service_extent(network, index.households)
    return ServiceArea(index, zones, network, segments, attachment, full_report, extent)


@dataclass(frozen=True, slots=True)
class Isolation:
    trace: IsolationTrace
    area: Area
    households: Selection


def isolate_pipe(
    service: ServiceArea, pipe: str, inoperable: Collection[str] = (), buffer_m: float = 30.0
) -> Isolation:
    """Isolate broken ``pipe``: the trace, a band around the dry pipes, and the households.

    ``buffer_m`` is ``[area] isolation_buffer_m``. The households are those on a dry pipe,
    plus households with no pipe within reach that lie inside the band: they cannot be
    traced, and leaving them out is the worse error. Unknown pipe or valve ids raise
    :class:`UnknownReference` (codes ``unknown_pipe``, ``unknown_valve``).
    """
    if service.segments is None or service.network is None:
        raise UnknownReference("no pipe network is loaded", code="no_network")
    trace = isolate(service.segments, pipe, inoperable)
    area = area_around_trace(service.network, trace, buffer_m)
    on_pipes = households_affected(service.households, trace)
    loose_inside = households_in_area_among(service.households, area, service.households.unattached)
    return Isolation(trace, area, on_pipes | loose_inside)
