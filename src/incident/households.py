"""Household registry flows: import a households file into the store, load the service area.

The store's registry is the truth (re-imports update by ``account_id``; opt-outs made by
reply will live there too). At start the service imports ``[area] households`` if the file
changed since the last import, then builds the in-memory service area from the registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from incident.errors import ConfigError
from incident.geo import (
    Extent,
    GeoError,
    Household,
    LoadReport,
    RejectedRow,
    ServiceArea,
    Valve,
    ZoneSet,
    build_service_area,
    iter_households_file,
    read_layers,
    read_network,
    read_valves,
    service_extent,
)
from incident.geo.files import Progress
from incident.geo.table import HouseholdTable, HouseholdTableBuilder
from incident.notify.audience import prepare_address_keys
from incident.settings import AreaSettings
from incident.store import Store

log = logging.getLogger(__name__)


def _source_key(path: Path) -> str:
    """The digest of the last import, kept per file: importing another file by hand must
    not make the next start re-import (and revert to) the configured one."""
    return f"households.sha256:{path.resolve()}"


BATCH = 5000


@dataclass
class ImportResult:
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.read:,} rows: {self.added:,} added, {self.updated:,} updated, "
            f"{self.unchanged:,} unchanged"
        )
        if self.rejected:
            text += f"; {len(self.rejected):,} rejected"
        return text


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


async def _batches(
    path: Path, progress: Callable[[Progress], None] | None, extent: Extent | None, result: ImportResult
) -> AsyncIterator[list[Household]]:
    """Read the file on a worker thread, a batch at a time (file reads stay off the loop)."""
    rows: Iterator[Household | RejectedRow] = iter_households_file(path, progress, extent=extent)

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
) -> ImportResult:
    """Validate every row of ``path``; add or update the good ones by ``account_id``."""
    result = ImportResult()
    async for good in _batches(path, progress, extent, result):
        if good:
            counts = await store.upsert_households(good)
            result.added += counts.added
            result.updated += counts.updated
            result.unchanged += counts.unchanged
    digest = await asyncio.to_thread(file_digest, path)
    key = await asyncio.to_thread(_source_key, path)
    await store.set_meta(key, digest)
    return result


async def import_if_changed(store: Store, path: Path, extent: Extent | None = None) -> ImportResult | None:
    """Import the configured households file when it differs from the last one imported."""
    if not await asyncio.to_thread(path.is_file):
        return None
    digest = await asyncio.to_thread(file_digest, path)
    if await store.get_meta(await asyncio.to_thread(_source_key, path)) == digest:
        return None
    result = await import_households(store, path, extent=extent)
    log.info("imported households from %s: %s", path, result.summary())
    for row in result.rejected[:20]:
        log.warning("households file %s: %s", path, row)
    if len(result.rejected) > 20:
        log.warning("households file %s: %d more rows rejected", path, len(result.rejected) - 20)
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


async def load_service_area(settings: AreaSettings, store: Store) -> ServiceArea:
    """Import the configured households file if it changed, then build the service area from
    the registry and the layer, network and valve files. Missing files leave that part empty
    (and say so); broken ones stop start-up with the file named."""
    network = None
    extent = None
    crs = settings.crs or None
    try:
        if settings.network and await _exists(settings.network):
            network = await asyncio.to_thread(read_network, settings.network, crs)
            extent = service_extent(network)
        elif settings.network:
            log.warning("no pipe network at %s: isolation traces are unavailable", settings.network)
        if settings.households:
            await import_if_changed(store, Path(settings.households), extent)
        households = await registry(store)
        zones = ZoneSet.build([])
        zones_rejected: list[tuple[str, RejectedRow]] = []
        if settings.layers and await _exists(settings.layers, file=False):
            zones, zones_rejected = await asyncio.to_thread(read_layers, settings.layers, None, extent=extent)
        valves: list[Valve] = []
        valves_rejected: list[RejectedRow] = []
        if network is not None and settings.valves and await _exists(settings.valves):
            valves, valves_rejected = await asyncio.to_thread(read_valves, settings.valves, network)
        report = LoadReport(valves_rejected=tuple(valves_rejected), zones_rejected=tuple(zones_rejected))
        service = await asyncio.to_thread(
            build_service_area, households, zones, network, valves,
            max_distance_m=settings.service_distance_m, report=report,
        )  # fmt: skip
        # Notice previews count audiences over integer address keys: made once, here.
        await asyncio.to_thread(prepare_address_keys, service.households.households)
    except GeoError as err:
        raise ConfigError(f"[area]: {err.message}") from err
    for warning in service.report.warnings:
        log.warning("service area: %s", warning)
    for row in valves_rejected:
        log.warning("valves file %s: %s", settings.valves, row)
    for layer, row in zones_rejected:
        log.warning("layer %s: %s", layer, row)
    log.info(
        "service area: %d households, %d zones, %s",
        len(service.households), len(service.zones.zones),
        f"{len(network.nodes)} nodes and {len(valves)} valves" if network else "no network",
    )  # fmt: skip
    return service
