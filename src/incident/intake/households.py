"""Household registry flows: import a households file into the store, load the service area.

The store's registry is the truth (re-imports update by ``account_id``; opt-outs made by
reply will live there too). Households that signed themselves up (source ``self``) are
never overwritten by an import. At start the service imports ``[area] households`` if the file
changed since the last import, then builds the in-memory service area from the registry.
Every import that changes the registry writes a new ``households.version`` to the store; a
running service polls it and rebuilds its service area (see :mod:`incident.reload`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from incident.core.errors import ConfigError
from incident.geo import Extent, GeoError, RejectedRow, RowNote, Valve, ZoneSet
from incident.geo.network import Network
from incident.households import (
    Household,
    LoadReport,
    PhoneRules,
    ServiceArea,
    build_service_area,
    iter_households_file,
    read_layers,
    read_network,
    read_valves,
    service_extent,
)
from incident.households.files import Progress
from incident.households.table import HouseholdTable, HouseholdTableBuilder
from incident.settings import AreaSettings
from incident.store import Store

log = logging.getLogger(__name__)


def _source_key(path: Path) -> str:
    """The digest of the last import, kept per file: importing another file by hand must
    not make the next start re-import (and revert to) the configured one."""
    return f"households.sha256:{path.resolve()}"


#: Changes whenever an import changes the registry; running services poll it.
VERSION_KEY = "households.version"

BATCH = 5000


@dataclass
class ImportResult:
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Rows for a household that signed itself up: never overwritten by the file.
    kept: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    #: Rows loaded with a change (a fixed-line number taken out of sms), and why.
    notes: list[RowNote] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.read:,} rows: {self.added:,} added, {self.updated:,} updated, "
            f"{self.unchanged:,} unchanged"
        )
        if self.kept:
            text += f"; {self.kept:,} kept (self-enrolled, not overwritten)"
        if self.rejected:
            text += f"; {len(self.rejected):,} rejected"
        if self.notes:
            text += f"; {len(self.notes):,} changed (fixed-line numbers moved from sms)"
        return text


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


async def _batches(
    path: Path,
    progress: Callable[[Progress], None] | None,
    extent: Extent | None,
    phones: PhoneRules | None,
    result: ImportResult,
) -> AsyncIterator[list[Household]]:
    """Read the file on a worker thread, a batch at a time (file reads stay off the loop)."""
    rows: Iterator[Household | RejectedRow] = iter_households_file(
        path, progress, extent=extent, phones=phones, notes=result.notes
    )

    def next_batch() -> list[Household | RejectedRow]:
        out: list[Household | RejectedRow] = []
        for item in rows:
            out.append(item)
            if len(out) >= BATCH:
                break
        return out

    while batch := await asyncio.to_thread(next_batch):
        good: list[Household] = []
        for item in batch:
            result.read += 1
            if isinstance(item, RejectedRow):
                result.rejected.append(item)
            else:
                good.append(item)
        yield good


async def import_households(
    store: Store,
    path: Path,
    *,
    progress: Callable[[Progress], None] | None = None,
    extent: Extent | None = None,
    phones: PhoneRules | None = None,
) -> ImportResult:
    """Validate every row of ``path``; add or update the good ones by ``account_id``.

    ``extent`` is the service area's (rows outside it are rejected); ``phones`` reads the
    numbers with ``[area] default_region``. A change to the registry gets a new version."""
    result = ImportResult()
    async for good in _batches(path, progress, extent, phones, result):
        if good:
            counts = await store.upsert_households(good)
            result.added += counts.added
            result.updated += counts.updated
            result.unchanged += counts.unchanged
            result.kept += counts.kept
    digest = await asyncio.to_thread(file_digest, path)
    key = await asyncio.to_thread(_source_key, path)
    await store.set_meta(key, digest)
    if result.added or result.updated:
        await store.set_meta(VERSION_KEY, uuid.uuid4().hex)
    return result


async def registry_version(store: Store) -> str:
    """The registry's version: a new one after every import that changed it."""
    return await store.get_meta(VERSION_KEY) or ""


async def import_if_changed(
    store: Store, path: Path, extent: Extent | None = None, phones: PhoneRules | None = None
) -> ImportResult | None:
    """Import the configured households file when it differs from the last one imported."""
    if not await asyncio.to_thread(path.is_file):
        return None
    digest = await asyncio.to_thread(file_digest, path)
    if await store.get_meta(await asyncio.to_thread(_source_key, path)) == digest:
        return None
    result = await import_households(store, path, extent=extent, phones=phones)
    log.info("imported households from %s: %s", path, result.summary())
    for what, rows in (("rejected", result.rejected), ("changed", result.notes)):
        for row in rows[:20]:
            log.warning("households file %s: %s", path, row)
        if len(rows) > 20:
            log.warning("households file %s: %d more rows %s", path, len(rows) - 20, what)
    return result


async def registry(store: Store, page: int = 10_000) -> HouseholdTable:
    """Every household in the registry, as columns (a million fit in ~150 MB)."""
    builder = HouseholdTableBuilder()
    after = ""
    while batch := await store.households_page(after, page):
        for household in batch:
            builder.add(household)
        after = batch[-1].account_id
    return builder.build()


async def _exists(path: str, *, file: bool = True) -> bool:
    p = Path(path)
    return await asyncio.to_thread(p.is_file if file else p.exists)


def phone_rules(settings: AreaSettings) -> PhoneRules:
    return PhoneRules(settings.default_region)


@dataclass(frozen=True)
class AreaFiles:
    """What the ``[area]`` files other than households gave: kept, so that the service area
    can be built again when the household registry changes."""

    network: Network | None
    zones: ZoneSet
    valves: tuple[Valve, ...]
    report: LoadReport
    #: Where the service area is (the network's extent, else the zones', with a margin):
    #: household rows outside it are rejected.
    extent: Extent | None


def _zones_extent(zones: ZoneSet) -> Extent | None:
    if not zones.zones:
        return None
    bounds = np.array([z.geometry.bounds for z in zones.zones], np.float64)
    lon = np.concatenate([bounds[:, 0], bounds[:, 2]])
    lat = np.concatenate([bounds[:, 1], bounds[:, 3]])
    return Extent.around(lon, lat)


async def read_area_files(settings: AreaSettings) -> AreaFiles:
    """Read the layer, network and valve files. Missing files leave that part empty (and say
    so); broken ones raise :class:`ConfigError` naming the file."""
    network = None
    extent = None
    crs = settings.crs or None
    try:
        if settings.network and await _exists(settings.network):
            network = await asyncio.to_thread(read_network, settings.network, crs)
            extent = service_extent(network)
        elif settings.network:
            log.warning("no pipe network at %s: isolation traces are unavailable", settings.network)
        zones = ZoneSet.build([])
        zones_rejected: list[tuple[str, RejectedRow]] = []
        if settings.layers and await _exists(settings.layers, file=False):
            zones, zones_rejected = await asyncio.to_thread(read_layers, settings.layers, None, extent=extent)
        if extent is None:
            extent = _zones_extent(zones)
        valves: list[Valve] = []
        valves_rejected: list[RejectedRow] = []
        if network is not None and settings.valves and await _exists(settings.valves):
            valves, valves_rejected = await asyncio.to_thread(read_valves, settings.valves, network)
    except GeoError as err:
        raise ConfigError(f"[area]: {err.message}") from err
    for row in valves_rejected:
        log.warning("valves file %s: %s", settings.valves, row)
    for layer, row in zones_rejected:
        log.warning("layer %s: %s", layer, row)
    report = LoadReport(valves_rejected=tuple(valves_rejected), zones_rejected=tuple(zones_rejected))
    return AreaFiles(network, zones, tuple(valves), report, extent)


async def build_area(files: AreaFiles, settings: AreaSettings, store: Store) -> ServiceArea:
    """The service area of the registry's households and the ``[area]`` files (the build
    runs on a worker thread)."""
    households = await registry(store)
    try:
        service = await asyncio.to_thread(
            build_service_area, households, files.zones, files.network, files.valves,
            max_distance_m=settings.service_distance_m, report=files.report,
        )  # fmt: skip
    except GeoError as err:
        raise ConfigError(f"[area]: {err.message}") from err
    for warning in service.report.warnings:
        log.warning("service area: %s", warning)
    network = files.network
    log.info(
        "service area: %d households, %d zones, %s",
        len(service.households), len(service.zones.zones),
        f"{len(network.nodes)} nodes and {len(files.valves)} valves" if network else "no network",
    )  # fmt: skip
    return service
